// The admin view (role admin): projection status and lag, rebuild a
// projection, and the event log of any player. Parts whose endpoint the
// server lacks (404 or 501) are left out. Dead letters wait for their
// endpoint (GET /api/admin/deadletters, issue 5).
import { useCallback, useEffect, useState, type FormEvent } from 'react'
import { Api, ApiError } from './api'

interface ProjectionState {
  name: string
  version: number
  state: string
  position: string
  head: string
  lagEvents: number
  lagSeconds: number
  eventsPerSecond: number
  eventsApplied: number
  failure: { position: string; eventType: string; error: string } | null
  rebuild: { position?: string; eventsPerSecond?: number } | null
}

interface EventLine {
  id: string
  version: number
  position: string
  type: string
  data: unknown
  recordedAt: string
}

const absent = (err: unknown) => err instanceof ApiError && (err.status === 404 || err.status === 501)

export function AdminPanel({ api }: { api: Api }) {
  const [projections, setProjections] = useState<ProjectionState[] | null>(null)
  const [hidden, setHidden] = useState(false)
  const [message, setMessage] = useState('')
  const [player, setPlayer] = useState('')
  const [events, setEvents] = useState<EventLine[] | null>(null)
  const [eventsError, setEventsError] = useState('')

  const load = useCallback(async () => {
    try {
      const r = await api.request<{ projections: ProjectionState[] }>('/api/admin/projections')
      setProjections(r.body.projections ?? [])
    } catch (err) {
      if (absent(err)) setHidden(true)
      else setMessage(err instanceof Error ? err.message : String(err))
    }
  }, [api])

  useEffect(() => {
    void load()
    const id = setInterval(() => void load(), 3000)
    return () => clearInterval(id)
  }, [load])

  async function rebuild(name: string) {
    try {
      await api.request(`/api/admin/projections/${encodeURIComponent(name)}/rebuild`, { method: 'POST', idempotencyKey: crypto.randomUUID() })
      setMessage(`Rebuild of ${name} started.`)
      void load()
    } catch (err) {
      setMessage(err instanceof Error ? err.message : String(err))
    }
  }

  async function showEvents(e: FormEvent) {
    e.preventDefault()
    setEventsError('')
    try {
      const r = await api.request<{ events: EventLine[] }>(`/api/admin/players/${encodeURIComponent(player.trim())}/events`)
      setEvents(r.body.events ?? [])
    } catch (err) {
      setEvents(null)
      setEventsError(err instanceof Error ? err.message : String(err))
    }
  }

  if (hidden) return null
  return (
    <div className="card admin" data-testid="admin">
      <h2>Admin</h2>
      {message && <p className="banner banner-info">{message}</p>}
      <h3>Projections</h3>
      {projections === null ? (
        <p className="muted">Loading…</p>
      ) : (
        <div className="table-wrap">
          <table className="table" data-testid="projections">
            <thead>
              <tr>
                <th>Name</th>
                <th>State</th>
                <th>Position</th>
                <th>Lag</th>
                <th>Events/s</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {projections.map((p) => (
                <tr key={p.name} data-projection={p.name}>
                  <td>
                    {p.name} <span className="muted tiny">v{p.version}</span>
                  </td>
                  <td>
                    <span className={`outcome ${p.state === 'live' ? 'outcome-completed' : p.state === 'failed' ? 'outcome-failed' : ''}`}>{p.state}</span>
                    {p.failure && <div className="tiny error">{p.failure.eventType} at {p.failure.position}: {p.failure.error}</div>}
                  </td>
                  <td className="mono">{p.position || '—'}</td>
                  <td className="mono">
                    {p.lagEvents} ev · {p.lagSeconds.toFixed(1)} s
                  </td>
                  <td className="mono">{p.eventsPerSecond.toFixed(1)}</td>
                  <td>
                    <button type="button" className="ghost small" onClick={() => void rebuild(p.name)}>
                      Rebuild
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h3>Event log of a player</h3>
      <form className="add-row" onSubmit={showEvents}>
        <input value={player} onChange={(e) => setPlayer(e.target.value)} placeholder="player ID" aria-label="Player ID" data-testid="admin-player" />
        <button type="submit" className="small" disabled={!player.trim()}>
          Show
        </button>
      </form>
      {eventsError && <p className="error tiny">{eventsError}</p>}
      {events && (
        <ol className="event-log" data-testid="event-log" tabIndex={0} aria-label="Event log">
          {events.length === 0 && <li className="muted">No events.</li>}
          {events.map((e) => (
            <li key={e.id}>
              <span className="mono tiny muted">#{e.version} @{e.position}</span> <strong>{e.type}</strong>{' '}
              <span className="tiny muted">{new Date(e.recordedAt).toLocaleTimeString()}</span>
              <code className="tiny">{JSON.stringify(e.data)}</code>
            </li>
          ))}
        </ol>
      )}
    </div>
  )
}
