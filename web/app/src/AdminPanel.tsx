// The admin view (role admin), a lazy chunk of its own: projections (state,
// lag, rebuild with its progress), a player's event log newest first, the
// processor's dead letters and time travel (a player's queue at a moment).
// When the server lacks the admin routes (404 or 501) the view is left out.
import { useCallback, useState } from 'react'
import { Api } from './api'
import { AdminDeadLetters } from './AdminDeadLetters'
import { AdminEventLog } from './AdminEventLog'
import { AdminProjections } from './AdminProjections'
import { AdminTimeTravel } from './AdminTimeTravel'

export function AdminPanel({ api }: { api: Api }) {
  const [hidden, setHidden] = useState(false)
  const hide = useCallback(() => setHidden(true), [])
  if (hidden) return null
  return (
    <div className="card admin" data-testid="admin">
      <h2>Admin</h2>
      <AdminProjections api={api} onAbsent={hide} />
      <AdminEventLog api={api} />
      <AdminDeadLetters api={api} />
      <AdminTimeTravel api={api} />
    </div>
  )
}
