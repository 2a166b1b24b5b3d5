// The admin view's event log of a player, newest first. The API reads a
// stream oldest first, at most 1,000 events a request, from a position
// (inclusive): the whole stream is read page by page, then shown newest
// first, PAGE lines at a time ("Show older").
import { useState, type FormEvent } from 'react'
import { Api } from './api'
import { appendEvents, type StoredEvent } from './adminFormat'

const LIMIT = 1000 // ops.MaxAdminEvents
const PAGE = 500

async function readAll(api: Api, player: string): Promise<StoredEvent[]> {
  let all: StoredEvent[] = []
  for (;;) {
    const from = all.length ? `&from=${encodeURIComponent(all[all.length - 1].position)}` : ''
    const r = await api.request<{ events: StoredEvent[] }>(`/api/admin/players/${encodeURIComponent(player)}/events?limit=${LIMIT}${from}`)
    const page = r.body.events ?? []
    const before = all.length
    all = appendEvents(all, page)
    if (page.length < LIMIT || all.length === before) return all
  }
}

export function AdminEventLog({ api }: { api: Api }) {
  const [player, setPlayer] = useState('')
  const [events, setEvents] = useState<StoredEvent[] | null>(null)
  const [shown, setShown] = useState(PAGE)
  const [error, setError] = useState('')
  const [loading, setLoading] = useState(false)

  async function show(e: FormEvent) {
    e.preventDefault()
    setError('')
    setLoading(true)
    try {
      setEvents((await readAll(api, player.trim())).reverse())
      setShown(PAGE)
    } catch (err) {
      setEvents(null)
      setError(err instanceof Error ? err.message : String(err))
    } finally {
      setLoading(false)
    }
  }

  return (
    <>
      <h3>Event log of a player</h3>
      <form className="add-row" onSubmit={show}>
        <input value={player} onChange={(e) => setPlayer(e.target.value)} placeholder="player ID" aria-label="Player ID" data-testid="admin-player" />
        <button type="submit" className="small" disabled={!player.trim() || loading}>
          Show
        </button>
      </form>
      {error && <p className="error tiny">{error}</p>}
      {loading && <p className="muted tiny">Reading the events…</p>}
      {events && (
        <>
          <p className="muted tiny" data-testid="event-count" aria-live="polite">
            {events.length === 0 ? 'No events.' : `Newest first: showing ${Math.min(shown, events.length).toLocaleString('en')} of ${events.length.toLocaleString('en')} events.`}
          </p>
          <ol className="event-log" data-testid="event-log" tabIndex={0} aria-label="Event log, newest first">
            {events.slice(0, shown).map((e) => (
              <li key={e.id} data-version={e.version}>
                <span className="mono tiny muted">
                  #{e.version} @{e.position}
                </span>{' '}
                <strong>{e.type}</strong> <span className="tiny muted">{new Date(e.recordedAt).toLocaleString()}</span>
                <code className="tiny">{JSON.stringify(e.data)}</code>
              </li>
            ))}
          </ol>
          {shown < events.length && (
            <button type="button" className="small" onClick={() => setShown((n) => n + PAGE)} data-testid="event-log-more">
              Show older
            </button>
          )}
        </>
      )}
    </>
  )
}
