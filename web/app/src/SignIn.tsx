import { useState, type FormEvent } from 'react'
import { Api, ApiError, NetworkError, sessionFromToken, type Session } from './api'
import type { AuthConfig } from './auth'

const NAME = /^[A-Za-z0-9_-]{1,64}$/

export function SignIn({ onSignIn, notice, auth }: { onSignIn: (s: Session) => void; notice: string; auth: AuthConfig | null }) {
  const [mode, setMode] = useState<'dev' | 'token'>('dev')
  const oidc = auth?.oidc
  // With a provider and outside dev mode, the name-only form is not offered.
  const showDev = !oidc || auth?.dev

  async function providerSignIn() {
    if (!oidc) return
    setBusy(true)
    setError('')
    try {
      await (await import('./oidc')).beginSignIn(oidc)
    } catch (err) {
      setBusy(false)
      setError(err instanceof Error ? err.message : String(err))
    }
  }
  const [name, setName] = useState('')
  const [token, setToken] = useState('')
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)
  const [admin, setAdmin] = useState(false)

  async function devSignIn(e: FormEvent) {
    e.preventDefault()
    if (!NAME.test(name)) {
      setError('A name is 1–64 letters, digits, "-" or "_".')
      return
    }
    setBusy(true)
    setError('')
    try {
      const { token, expiresAt } = await new Api(null).devToken(name, admin ? 'admin' : 'player')
      onSignIn({ ...sessionFromToken(token), expiresAt })
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        setMode('token')
        setError('This server is not in dev mode: paste a token instead.')
      } else if (err instanceof NetworkError) {
        setError('The server cannot be reached. Check your connection and try again.')
      } else {
        setError(err instanceof Error ? err.message : String(err))
      }
    } finally {
      setBusy(false)
    }
  }

  function tokenSignIn(e: FormEvent) {
    e.preventDefault()
    try {
      onSignIn(sessionFromToken(token))
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err))
    }
  }

  return (
    <main className="signin">
      <div className="signin-card card">
        <h1 className="brand brand-large">
          <img src="/icon.svg" alt="" width="40" height="40" />
          <span>taskqueue</span>
        </h1>
        <p className="muted">Queue up your work, watch it progress, come back to the rewards.</p>
        {notice && <p className="notice">{notice}</p>}
        {oidc && (
          <div className="stack">
            <button type="button" className="primary" onClick={providerSignIn} disabled={busy} data-testid="oidc-sign-in">
              {busy ? 'Signing in…' : 'Sign in'}
            </button>
            <p className="muted small">with your account at {new URL(oidc.issuer).host}</p>
          </div>
        )}
        {!showDev ? null : mode === 'dev' ? (
          <form onSubmit={devSignIn} className="stack">
            <label htmlFor="player-name">Player name</label>
            <input
              id="player-name"
              name="player"
              autoComplete="username"
              autoFocus
              value={name}
              onChange={(e) => setName(e.target.value)}
              placeholder="alice"
              maxLength={64}
            />
            <label className="check">
              <input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.target.checked)} data-testid="as-admin" /> Sign in as an admin (dev mode)
            </label>
            <button type="submit" className="primary" disabled={busy}>
              {busy ? 'Signing in…' : 'Play'}
            </button>
            <button type="button" className="link" onClick={() => setMode('token')}>
              I have a token
            </button>
          </form>
        ) : (
          <form onSubmit={tokenSignIn} className="stack">
            <label htmlFor="token">Access token (JWT)</label>
            <textarea id="token" rows={4} value={token} onChange={(e) => setToken(e.target.value)} spellCheck={false} />
            <button type="submit" className="primary">
              Sign in
            </button>
            <button type="button" className="link" onClick={() => setMode('dev')}>
              Sign in with a player name (dev mode)
            </button>
          </form>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
      </div>
    </main>
  )
}
