import { Suspense, lazy, useCallback, useEffect, useRef, useState } from 'react'
import type { Session } from './api'
import { AwaySummary, useAwaySummary } from './AwaySummary'
import { CompactQueue } from './CompactQueue'
import { cacheKey } from './localdata'
import { HistoryPanel } from './HistoryPanel'
import { QueuePanel } from './QueuePanel'
import { SidePanels } from './SidePanels'
import { SignOutDialog } from './SignOutDialog'
import { signOutPlayer } from './signout'
import type { QueueView } from './types'
import { outbox, useTaskQueue, type Connection } from './useTaskQueue'

// Operators only: a chunk of its own, loaded when an admin signs in.
const AdminPanel = lazy(() => import('./AdminPanel').then((m) => ({ default: m.AdminPanel })))

const CONNECTION_LABEL: Record<Connection, string> = {
  live: 'Live',
  polling: 'Online',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
}

/** How long the screen waits for the queue and the catalog before it shows what it has. */
const READY_WAIT_MS = 3000

function lastView(playerId: string): QueueView | null {
  try {
    const raw = localStorage.getItem(cacheKey(playerId))
    return raw ? (JSON.parse(raw) as QueueView) : null
  } catch {
    return null
  }
}

export function Player({ session, onSignOut }: { session: Session; onSignOut: (why?: string) => void }) {
  const unauthorized = useCallback(() => onSignOut('Your session has ended: sign in again. Unsent commands are kept.'), [onSignOut])
  const q = useTaskQueue(session, unauthorized)
  const [asking, setAsking] = useState(false)
  // The view the app saw last, before this visit: what "while you were away" compares with.
  const [lastSeen] = useState(() => lastView(session.playerId))
  const away = useAwaySummary(q.api, lastSeen, q.estimated ? null : q.view, q.catalog)
  // The screen shows once it has the queue and the catalog (saved or fresh)
  // and knows whether to say what happened while the player was away: each
  // arriving after the rest pushed what was below it down (Lighthouse
  // measured a layout shift of 0.2 to 0.5 on a phone). Once the server is
  // known to be out of reach, or after a while, it shows what it has.
  const [waited, setWaited] = useState(false)
  useEffect(() => {
    const id = setTimeout(() => setWaited(true), READY_WAIT_MS)
    return () => clearTimeout(id)
  }, [])
  const ready = useRef(false)
  ready.current ||= (q.view !== null && q.catalog !== null && away.decided) || waited || q.connection === 'offline' || q.connection === 'reconnecting'
  const signOut = (keepUnsent: boolean) => {
    setAsking(false)
    void signOutPlayer(session.token, session.playerId, outbox(), keepUnsent).then(() => onSignOut())
  }

  return (
    <div className="shell">
      <header className="topbar">
        <h1 className="brand">
          <img src="/icon.svg" alt="" width="28" height="28" />
          <span>taskqueue</span>
        </h1>
        <div className="topbar-right">
          <span className={`conn conn-${q.connection}`} data-testid="connection" title={q.connection === 'polling' ? 'Connected; updates every 2 s' : undefined}>
            <span className="dot" aria-hidden="true" />
            {CONNECTION_LABEL[q.connection]}
          </span>
          <span className="player" data-testid="player-name">
            {session.playerId}
          </span>
          <button type="button" className="ghost small" onClick={() => (q.pending.length > 0 ? setAsking(true) : signOut(false))} data-testid="sign-out">
            Sign out
          </button>
        </div>
        <div className="toasts" aria-live="polite" data-testid="toasts">
          {[...q.toasts].reverse().map((t) => (
            <div key={t.id} className={`toast toast-${t.tone}`} title={t.text}>
              {t.text}
            </div>
          ))}
        </div>
      </header>
      <main>
        {!ready.current && <p className="muted loading">Loading…</p>}
        {ready.current && (
          <>
            <div className="area-away">
              {away.summary && <AwaySummary summary={away.summary} onDismiss={away.dismiss} />}
            </div>
            <div className="layout">
              <CompactQueue q={q}>
                <QueuePanel q={q} />
              </CompactQueue>
              <SidePanels view={q.view} display={q.display} catalog={q.catalog} offline={q.connection === 'offline'} enqueue={q.commands.enqueue} />
              <section className="area-history">
                <HistoryPanel api={q.api} playerId={session.playerId} catalog={q.catalog} version={q.view?.version} />
              </section>
              {session.role === 'admin' && (
                <section className="area-admin">
                  <Suspense fallback={<p className="muted">Loading the admin view…</p>}>
                    <AdminPanel api={q.api} />
                  </Suspense>
                </section>
              )}
            </div>
          </>
        )}
      </main>
      {asking && <SignOutDialog waiting={q.pending.length} onKeep={() => signOut(true)} onDiscard={() => signOut(false)} onCancel={() => setAsking(false)} />}
    </div>
  )
}
