// "1,200 XP/h · 1,200 Logs/h": the rates of the running task, at the duration
// its repetitions take at the player's level.
import { memo } from 'react'
import { formatRate, runningRates } from './rates'
import { countRender } from './renders'
import type { Catalog, QueueView } from './types'

/** Memoised: the head task re-renders 5 times a second, the rates change with the view. */
export const RunningRates = memo(function RunningRates({ view, catalog }: { view: QueueView; catalog: Catalog | null }) {
  countRender('RunningRates')
  const r = catalog ? runningRates(view, catalog) : null
  if (!r || !catalog) return null
  const item = (id: string) => catalog.items.find((i) => i.id === id)?.name ?? id
  const skill = catalog.skills.find((s) => s.id === r.skill)?.name ?? r.skill
  const makes = Object.entries(r.makes)
  const uses = Object.entries(r.uses)
  return (
    <p className="rates tiny" data-testid="rates" data-xp-per-hour={r.xpPerHour}>
      <strong>{formatRate(r.xpPerHour)}</strong> {skill} XP/h
      {makes.map(([id, n]) => (
        <span key={id} data-testid="rate-item" data-item={id} data-per-hour={n}>
          {' · '}
          <strong>{formatRate(n)}</strong> {item(id)}/h
        </span>
      ))}
      {uses.length > 0 && <span> · uses {uses.map(([id, n]) => `${formatRate(n)} ${item(id)}/h`).join(', ')}</span>}
    </p>
  )
})
