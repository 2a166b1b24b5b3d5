import { levelProgress } from './progress'
import type { Catalog, QueueView } from './types'

export function SkillsPanel({ view, catalog }: { view: QueueView | null; catalog: Catalog | null }) {
  const skills = catalog?.skills ?? []
  return (
    <div className="card">
      <h2>Skills</h2>
      {skills.length === 0 && <p className="muted">Loading…</p>}
      <ul className="skills" data-testid="skills">
        {skills.map((s) => {
          const state = view?.skills[s.id] ?? { xp: 0, level: 1 }
          const lp = catalog ? levelProgress(state.xp, state.level, catalog.levels.xpForLevel, catalog.levels.max) : { into: 0, span: 0, fraction: 0 }
          return (
            <li key={s.id}>
              <div className="skill-head">
                <span>{s.name}</span>
                <span className="level">Lv {state.level}</span>
              </div>
              <div className="bar bar-xp" role="progressbar" aria-label={`${s.name} XP`} aria-valuemin={0} aria-valuemax={lp.span || 1} aria-valuenow={lp.span ? lp.into : 1}>
                <div className="bar-fill" style={{ transform: `scaleX(${lp.fraction})` }} />
              </div>
              <div className="tiny muted">{lp.span ? `${lp.into} / ${lp.span} XP to level ${state.level + 1}` : `${state.xp} XP · max level`}</div>
            </li>
          )
        })}
      </ul>
    </div>
  )
}

export function InventoryPanel({ view, catalog }: { view: QueueView | null; catalog: Catalog | null }) {
  const items = Object.entries(view?.inventory ?? {}).filter(([, n]) => n > 0)
  const name = (id: string) => catalog?.items.find((i) => i.id === id)?.name ?? id
  return (
    <div className="card">
      <h2>Inventory</h2>
      {items.length === 0 ? (
        <p className="muted">Empty. Finished tasks put their outputs here.</p>
      ) : (
        <ul className="inventory" data-testid="inventory">
          {items
            .sort(([a], [b]) => name(a).localeCompare(name(b)))
            .map(([id, n]) => (
              <li key={id}>
                <span>{name(id)}</span>
                <span className="qty">{n}</span>
              </li>
            ))}
        </ul>
      )}
    </div>
  )
}
