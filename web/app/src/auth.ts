// What the server says about signing in (GET /api/auth/config), and when to
// renew a provider's session: the little the sign-in page needs at once. The
// sign-in flows themselves (oidc.ts) are loaded when a provider is configured.

export interface OidcConfig {
  issuer: string
  clientId: string
  scopes: string[]
  authorizationEndpoint: string
  tokenEndpoint: string
  endSessionEndpoint?: string
}

export interface AuthConfig {
  dev: boolean
  oidc?: OidcConfig
}

export async function fetchAuthConfig(): Promise<AuthConfig | null> {
  try {
    const res = await fetch('/api/auth/config', { headers: { Accept: 'application/json' } })
    if (!res.ok) return null
    return (await res.json()) as AuthConfig
  } catch {
    return null
  }
}

/** How long before expiry a session is renewed: a fifth of a short lifetime,
 * a minute of a long one. */
export function refreshDelay(expiresAt: string, now = Date.now()): number {
  const left = Date.parse(expiresAt) - now
  return Math.max(0, left - Math.min(60_000, left / 5))
}
