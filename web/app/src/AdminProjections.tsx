// The admin view's projections: state, position, lag, rate; a rebuild
// started here shows its progress and ETA, and says when it is done (the
// new generation is live) or failed. On a phone the table turns into one
// card per projection (styles.css, .table-cards).
import { useCallback, useEffect, useRef, useState } from 'react'
import { Api, ApiError } from './api'
import { rebuildText, type ProjectionState } from './adminFormat'

const absent = (err: unknown) => err instanceof ApiError && (err.status === 404 || err.status === 501)

export function AdminProjections({ api, onAbsent }: { api: Api; onAbsent: () => void }) {
  const [projections, setProjections] = useState<ProjectionState[] | null>(null)
  const [message, setMessage] = useState('')
  // The rebuilds started here: projection name → its generation before.
  const started = useRef(new Map<string, string>())
  const [watching, setWatching] = useState(0)

  const load = useCallback(async () => {
    try {
      const r = await api.request<{ projections: ProjectionState[] }>('/api/admin/projections')
      const list = r.body.projections ?? []
      setProjections(list)
      for (const [name, before] of started.current) {
        const p = list.find((x) => x.name === name)
        if (!p) continue
        if (p.rebuild?.failure) {
          setMessage(`Rebuild of ${name} failed at ${p.rebuild.failure.position}: ${p.rebuild.failure.error}`)
        } else if (!p.rebuild && p.generation !== before) {
          setMessage(`Rebuild of ${name} done: generation ${p.generation} is live.`)
        } else continue
        started.current.delete(name)
        setWatching(started.current.size)
      }
    } catch (err) {
      if (absent(err)) onAbsent()
      else setMessage(err instanceof Error ? err.message : String(err))
    }
  }, [api, onAbsent])

  const rebuilding = watching > 0 || (projections ?? []).some((p) => p.rebuild)
  useEffect(() => {
    void load()
    const id = setInterval(() => void load(), rebuilding ? 1000 : 3000)
    return () => clearInterval(id)
  }, [load, rebuilding])

  async function rebuild(p: ProjectionState) {
    try {
      started.current.set(p.name, p.generation)
      setWatching(started.current.size)
      await api.request(`/api/admin/projections/${encodeURIComponent(p.name)}/rebuild`, { method: 'POST', idempotencyKey: crypto.randomUUID() })
      setMessage(`Rebuild of ${p.name} started.`)
      void load()
    } catch (err) {
      started.current.delete(p.name)
      setWatching(started.current.size)
      setMessage(err instanceof Error ? err.message : String(err))
    }
  }

  return (
    <>
      <h3>Projections</h3>
      <p className="banner banner-info" role="status" data-testid="admin-message" hidden={!message}>
        {message}
      </p>
      {projections === null ? (
        <p className="muted">Loading…</p>
      ) : (
        <table className="table table-cards" data-testid="projections">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">State</th>
              <th scope="col">Position</th>
              <th scope="col">Lag</th>
              <th scope="col">Events/s</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {projections.map((p) => (
              <tr key={p.name} data-projection={p.name}>
                <td data-label="Name">
                  {p.name} <span className="muted tiny">v{p.version}</span>
                </td>
                <td data-label="State">
                  <span className={`outcome ${p.state === 'live' ? 'outcome-completed' : p.state === 'failed' ? 'outcome-failed' : ''}`}>{p.state}</span>
                  {p.failure && (
                    <div className="tiny error">
                      {p.failure.eventType} at {p.failure.position}: {p.failure.error}
                    </div>
                  )}
                  {p.rebuild && (
                    <div className="rebuild" data-testid="rebuild-progress">
                      <div
                        className="bar"
                        role="progressbar"
                        aria-label={`Rebuild of ${p.name}`}
                        aria-valuemin={0}
                        aria-valuemax={p.rebuild.total || 1}
                        aria-valuenow={p.rebuild.done}
                        aria-valuetext={rebuildText(p.rebuild)}
                      >
                        <div className="bar-fill" style={{ transform: `scaleX(${p.rebuild.total ? Math.min(1, p.rebuild.done / p.rebuild.total) : 0})` }} />
                      </div>
                      <div className="tiny">Rebuilding: {rebuildText(p.rebuild)}</div>
                    </div>
                  )}
                </td>
                <td data-label="Position" className="mono">
                  {p.position || '—'}
                </td>
                <td data-label="Lag" className="mono">
                  {p.lagEvents} ev · {p.lagSeconds.toFixed(1)} s
                </td>
                <td data-label="Events/s" className="mono">
                  {p.eventsPerSecond.toFixed(1)}
                </td>
                <td data-label="">
                  <button type="button" className="ghost small" onClick={() => void rebuild(p)} disabled={!!p.rebuild || started.current.has(p.name)} aria-label={`Rebuild ${p.name}`}>
                    Rebuild
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  )
}
