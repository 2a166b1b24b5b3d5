// The admin view's time travel: a player's queue as it was at a moment (a
// time or a global position), from GET /api/admin/players/{id}/queue?at=.
import { useState, type FormEvent } from 'react'
import { Api } from './api'
import type { components } from './api-types'

type QueueAt = components['schemas']['QueueAt']

/** The at= parameter: a datetime-local value is the browser's local time. */
function moment(s: string): string {
  const t = s.trim()
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(t) ? new Date(t).toISOString() : t
}

export function AdminTimeTravel({ api }: { api: Api }) {
  const [player, setPlayer] = useState('')
  const [at, setAt] = useState('')
  const [result, setResult] = useState<QueueAt | null>(null)
  const [error, setError] = useState('')

  async function show(e: FormEvent) {
    e.preventDefault()
    setError('')
    try {
      const q = at.trim() ? `?at=${encodeURIComponent(moment(at))}` : ''
      const r = await api.request<QueueAt>(`/api/admin/players/${encodeURIComponent(player.trim())}/queue${q}`)
      setResult(r.body)
    } catch (err) {
      setResult(null)
      setError(err instanceof Error ? err.message : String(err))
    }
  }

  const queue = result?.queue
  return (
    <>
      <h3>Time travel: a player's queue at a moment</h3>
      <form className="add-row" onSubmit={show}>
        <input value={player} onChange={(e) => setPlayer(e.target.value)} placeholder="player ID" aria-label="Player ID for time travel" data-testid="travel-player" />
        <input value={at} onChange={(e) => setAt(e.target.value)} placeholder="time (RFC 3339) or position; empty: now" aria-label="Moment: a time or a position" data-testid="travel-at" />
        <button type="submit" className="small" disabled={!player.trim()}>
          Show queue
        </button>
      </form>
      {error && (
        <p className="error tiny" data-testid="travel-error">
          {error}
        </p>
      )}
      {result && queue && (
        <div className="travel" data-testid="travel-result">
          <p className="tiny muted">
            {result.playerId} at {result.at || 'now'}: {result.events} events folded, up to position {result.position}; version {queue.version},{' '}
            {queue.running ? 'running' : `stopped${queue.stoppedReason ? ` (${queue.stoppedReason})` : ''}`}.
          </p>
          {(queue.tasks ?? []).length === 0 ? (
            <p className="muted tiny">The queue was empty.</p>
          ) : (
            <ol className="travel-tasks">
              {(queue.tasks ?? []).map((t) => (
                <li key={t.taskId} data-task-type={t.type}>
                  <strong>{t.type}</strong> {t.done} of {t.count} done
                  {queue.repetition?.taskId === t.taskId && <span className="tiny muted"> · repetition {queue.repetition.number} running</span>}
                </li>
              ))}
            </ol>
          )}
        </div>
      )}
    </>
  )
}
