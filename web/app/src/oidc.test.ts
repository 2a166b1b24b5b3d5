import { describe, expect, it } from 'vitest'
import { pkceChallenge, refreshDelay } from './oidc'

describe('oidc', () => {
  it('derives the S256 PKCE challenge: base64url, unpadded, of the SHA-256 of the verifier', async () => {
    // Expected value computed with Node's crypto (createHash('sha256').digest('base64url')).
    expect(await pkceChallenge('dBjftJeZ4CVP-mJ0kzXG2FXc9Opa8Ek6f-bSpa-fQ8s')).toBe('iguV8mTMB69JBOe6P_l9Fk1PrIE-Eh8D7_GUcQH0LVU')
  })
  it('refreshes a minute before a long-lived token expires, a fifth before a short one', () => {
    const now = Date.parse('2026-12-06T12:00:00Z')
    expect(refreshDelay('2026-12-06T13:00:00Z', now)).toBe(59 * 60_000)
    expect(refreshDelay('2026-12-06T12:01:40Z', now)).toBe(80_000)
    expect(refreshDelay('2026-12-06T11:00:00Z', now)).toBe(0)
  })
})
