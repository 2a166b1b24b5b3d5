import { useCallback, useState } from 'react'
import { sessionFromToken, type Session } from './api'
import { SignIn } from './SignIn'
import { Player } from './Player'

const SESSION_KEY = 'taskqueue.session'

function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(SESSION_KEY)
    if (!raw) return null
    const s = JSON.parse(raw) as Session
    if (s.expiresAt && Date.parse(s.expiresAt) < Date.now()) return null
    return sessionFromToken(s.token)
  } catch {
    return null
  }
}

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession)
  const [notice, setNotice] = useState('')

  const signIn = useCallback((s: Session) => {
    localStorage.setItem(SESSION_KEY, JSON.stringify(s))
    setNotice('')
    setSession(s)
  }, [])

  const signOut = useCallback((why = '') => {
    localStorage.removeItem(SESSION_KEY)
    setNotice(why)
    setSession(null)
  }, [])

  if (!session) return <SignIn onSignIn={signIn} notice={notice} />
  return <Player key={session.token} session={session} onSignOut={signOut} />
}
