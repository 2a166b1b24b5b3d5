import { Suspense, lazy, useCallback, useEffect, useState } from 'react'
import { sessionFromToken, type Session } from './api'
import { SignIn } from './SignIn'
import { sendQueuedLogouts } from './signout'
import { fetchAuthConfig, refreshDelay, type AuthConfig } from './auth'

const SESSION_KEY = 'taskqueue.session'

// The player's screen is a chunk of its own: the sign-in page loads only what it needs.
const Player = lazy(() => import('./Player').then((m) => ({ default: m.Player })))
// So are the provider's sign-in flows, loaded when the server has a provider.
const oidc = () => import('./oidc')

function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(SESSION_KEY)
    if (!raw) return null
    const s = JSON.parse(raw) as Session
    if (s.expiresAt && Date.parse(s.expiresAt) < Date.now()) return null
    // A provider's session keeps the player and role the server read from its token.
    return { ...sessionFromToken(s.token), ...(s.oidc && { playerId: s.playerId, role: s.role }), oidc: s.oidc }
  } catch {
    return null
  }
}

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession)
  const [notice, setNotice] = useState('')
  const [auth, setAuth] = useState<AuthConfig | null>(null)

  const signIn = useCallback((s: Session) => {
    localStorage.setItem(SESSION_KEY, JSON.stringify(s))
    setNotice('')
    setSession(s)
  }, [])

  const signOut = useCallback(
    (why = '') => {
      localStorage.removeItem(SESSION_KEY)
      setNotice(why)
      setSession(null)
      // Signing out by hand ends the session at the provider too.
      const cfg = auth?.oidc
      if (!why && session?.oidc && cfg) {
        void oidc().then((m) => {
          const end = m.endSessionUrl(cfg, session)
          if (end) window.location.assign(end)
        })
      }
    },
    [session, auth],
  )

  // Logouts made while the server was out of reach go out now, and when the browser is back online.
  useEffect(() => {
    void sendQueuedLogouts()
    const on = () => void sendQueuedLogouts()
    window.addEventListener('online', on)
    return () => window.removeEventListener('online', on)
  }, [])

  // Learn how to sign in; finish a sign-in the provider sent us back from.
  useEffect(() => {
    let live = true
    void fetchAuthConfig().then(async (cfg) => {
      if (!live) return
      setAuth(cfg)
      if (!cfg?.oidc) return
      try {
        const s = await (await oidc()).completeSignIn(cfg.oidc)
        if (s && live) signIn(s)
      } catch (err) {
        if (live) setNotice(err instanceof Error ? err.message : String(err))
      }
    })
    return () => {
      live = false
    }
  }, [signIn])

  // Silent refresh: renew the provider's tokens before they expire.
  useEffect(() => {
    if (!session?.oidc?.refreshToken || !session.expiresAt || !auth?.oidc) return
    const cfg = auth.oidc
    const id = setTimeout(() => {
      oidc().then((m) => m.refreshSession(cfg, session)).then(signIn, () => signOut('Your session at the sign-in provider has ended: sign in again.'))
    }, refreshDelay(session.expiresAt))
    return () => clearTimeout(id)
  }, [session, auth, signIn, signOut])

  if (!session) return <SignIn onSignIn={signIn} notice={notice} auth={auth} />
  return (
    <Suspense fallback={<p className="muted loading">Loading…</p>}>
      <Player key={session.token} session={session} onSignOut={signOut} />
    </Suspense>
  )
}
