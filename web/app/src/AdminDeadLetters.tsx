// The admin view's dead letters: the processor's commands that failed after
// every retry, newest first (GET /api/admin/deadletters), each with a Retry
// (POST /api/admin/deadletters/{id}/retry); "include retried" lists those
// already re-sent too.
import { useCallback, useEffect, useState } from 'react'
import { Api } from './api'
import type { components } from './api-types'

type DeadLetter = components['schemas']['DeadLetter']

export function AdminDeadLetters({ api }: { api: Api }) {
  const [letters, setLetters] = useState<DeadLetter[] | null>(null)
  const [all, setAll] = useState(false)
  const [message, setMessage] = useState('')

  const load = useCallback(async () => {
    try {
      const r = await api.request<{ deadLetters: DeadLetter[] }>(`/api/admin/deadletters?limit=200${all ? '&all=true' : ''}`)
      setLetters(r.body.deadLetters ?? [])
    } catch (err) {
      setMessage(err instanceof Error ? err.message : String(err))
    }
  }, [api, all])

  useEffect(() => {
    void load()
    const id = setInterval(() => void load(), 5000)
    return () => clearInterval(id)
  }, [load])

  async function retry(d: DeadLetter) {
    try {
      await api.request(`/api/admin/deadletters/${encodeURIComponent(d.id)}/retry`, { method: 'POST', idempotencyKey: crypto.randomUUID() })
      setMessage(`${d.command} ${d.id} re-sent.`)
    } catch (err) {
      setMessage(`Retry of ${d.id}: ${err instanceof Error ? err.message : String(err)}`)
    }
    void load()
  }

  return (
    <>
      <div className="row">
        <h3>Dead letters</h3>
        <span className="spacer" />
        <label className="check">
          <input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} data-testid="deadletters-all" /> include retried
        </label>
      </div>
      <p className="banner banner-info" role="status" hidden={!message} data-testid="deadletter-message">
        {message}
      </p>
      {letters === null ? (
        <p className="muted">Loading…</p>
      ) : letters.length === 0 ? (
        <p className="muted tiny" data-testid="deadletters-empty">
          No dead letters{all ? '' : ' waiting for a retry'}.
        </p>
      ) : (
        <table className="table table-cards" data-testid="deadletters">
          <thead>
            <tr>
              <th scope="col">Failed</th>
              <th scope="col">Command</th>
              <th scope="col">Error</th>
              <th scope="col">Retries</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {letters.map((d) => (
              <tr key={d.id} data-deadletter={d.id}>
                <td data-label="Failed" className="mono">
                  {new Date(d.failedAt).toLocaleString()}
                </td>
                <td data-label="Command">
                  <strong>{d.command}</strong> <span className="tiny muted">{d.topic}</span>
                  <code className="tiny payload">{JSON.stringify(d.payload)}</code>
                </td>
                <td data-label="Error" className="tiny">
                  {d.error}
                </td>
                <td data-label="Retries" className="mono">
                  {d.retries}
                  {d.retriedAt && <div className="tiny muted">retried {new Date(d.retriedAt).toLocaleTimeString()}</div>}
                </td>
                <td data-label="">
                  <button type="button" className="small" onClick={() => void retry(d)} aria-label={`Retry ${d.command} ${d.id}`}>
                    Retry
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
