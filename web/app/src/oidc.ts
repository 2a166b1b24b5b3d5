// Sign-in with the OpenID provider the server trusts (GET /api/auth/config):
// the authorization code flow with PKCE (RFC 7636) as a public client, so no
// client secret is ever in the browser; the access token is the API's bearer
// token, renewed with the refresh token before it expires; sign-out ends the
// session at the provider when it has an end_session_endpoint.
import { Api, sessionFromToken, type Session } from './api'
import type { OidcConfig } from './auth'

export type { AuthConfig, OidcConfig } from './auth'
export { fetchAuthConfig, refreshDelay } from './auth'

const PENDING = 'taskqueue.oidc.pending'

/** Where the provider sends the player back: the app's root. */
export function redirectUri(): string {
  return window.location.origin + '/'
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

function randomString(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(32)))
}

export async function pkceChallenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))
  return base64url(new Uint8Array(digest))
}

/** Sends the browser to the provider's sign-in page. */
export async function beginSignIn(cfg: OidcConfig): Promise<void> {
  const verifier = randomString()
  const state = randomString()
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }))
  const url = new URL(cfg.authorizationEndpoint)
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: cfg.clientId,
    redirect_uri: redirectUri(),
    scope: cfg.scopes.join(' '),
    state,
    code_challenge: await pkceChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString()
  window.location.assign(url.toString())
}

interface TokenResponse {
  access_token: string
  refresh_token?: string
  id_token?: string
}

async function tokenRequest(cfg: OidcConfig, params: Record<string, string>): Promise<Session> {
  const res = await fetch(cfg.tokenEndpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: cfg.clientId, ...params }).toString(),
  })
  if (!res.ok) throw new Error(`The provider refused the sign-in (${res.status}).`)
  const t = (await res.json()) as TokenResponse
  // The player and role are the server's reading of the token (its claims and role map).
  const { playerId, role } = await new Api(t.access_token).me()
  return { ...sessionFromToken(t.access_token), playerId, role, oidc: { refreshToken: t.refresh_token, idToken: t.id_token } }
}

/** Completes a sign-in when the provider has just sent the browser back with
 * a code; null when the page was not opened by the provider. */
export async function completeSignIn(cfg: OidcConfig): Promise<Session | null> {
  const params = new URLSearchParams(window.location.search)
  const code = params.get('code')
  const error = params.get('error')
  if (!code && !error) return null
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? 'null') as { verifier: string; state: string } | null
  sessionStorage.removeItem(PENDING)
  window.history.replaceState(null, '', '/')
  if (error) throw new Error(`The provider did not sign you in: ${params.get('error_description') || error}.`)
  if (!pending || params.get('state') !== pending.state) throw new Error('The sign-in answer does not match a sign-in started here; try again.')
  return tokenRequest(cfg, { grant_type: 'authorization_code', code: code!, redirect_uri: redirectUri(), code_verifier: pending.verifier })
}

/** Renews the session's tokens with its refresh token. */
export async function refreshSession(cfg: OidcConfig, s: Session): Promise<Session> {
  if (!s.oidc?.refreshToken) throw new Error('no refresh token')
  const next = await tokenRequest(cfg, { grant_type: 'refresh_token', refresh_token: s.oidc.refreshToken })
  // A provider may keep the refresh and ID tokens: keep the ones we have then.
  return { ...next, oidc: { refreshToken: next.oidc?.refreshToken ?? s.oidc.refreshToken, idToken: next.oidc?.idToken ?? s.oidc.idToken } }
}

/** The provider's sign-out page, or null when it has none. */
export function endSessionUrl(cfg: OidcConfig, s: Session): string | null {
  if (!cfg.endSessionEndpoint) return null
  const url = new URL(cfg.endSessionEndpoint)
  const q = new URLSearchParams({ client_id: cfg.clientId, post_logout_redirect_uri: redirectUri() })
  if (s.oidc?.idToken) q.set('id_token_hint', s.oidc.idToken)
  url.search = q.toString()
  return url.toString()
}
