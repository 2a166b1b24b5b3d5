// The skills and the inventory. Each row is memoised on what it shows, so a
// completed repetition re-renders the skill whose XP changed and the items
// whose count changed, not every row.
import { memo, useMemo } from 'react'
import { levelProgress } from './progress'
import { countRender } from './renders'
import type { Catalog, CatalogSkill, SkillState } from './types'

const noSkill: SkillState = { xp: 0, level: 1 }

export const SkillsPanel = memo(function SkillsPanel({ skills, catalog }: { skills: Readonly<Record<string, SkillState>> | undefined; catalog: Catalog | null }) {
  countRender('SkillsPanel')
  const list = catalog?.skills ?? []
  return (
    <div className="card">
      <h2>Skills</h2>
      {list.length === 0 && <p className="muted">Loading…</p>}
      <ul className="skills" data-testid="skills">
        {list.map((s) => {
          const state = skills?.[s.id] ?? noSkill
          return <SkillRow key={s.id} skill={s} xp={state.xp} level={state.level} levels={catalog?.levels} />
        })}
      </ul>
    </div>
  )
})

const SkillRow = memo(function SkillRow({ skill, xp, level, levels }: { skill: CatalogSkill; xp: number; level: number; levels: Catalog['levels'] | undefined }) {
  countRender('SkillRow')
  const lp = levels ? levelProgress(xp, level, levels.xpForLevel, levels.max) : { into: 0, span: 0, fraction: 0 }
  return (
    <li>
      <div className="skill-head">
        <span>{skill.name}</span>
        <span className="level">Lv {level}</span>
      </div>
      <div className="bar bar-xp" role="progressbar" aria-label={`${skill.name} XP`} aria-valuemin={0} aria-valuemax={lp.span || 1} aria-valuenow={lp.span ? lp.into : 1}>
        <div className="bar-fill" style={{ transform: `scaleX(${lp.fraction})` }} />
      </div>
      <div className="tiny muted">{lp.span ? `${lp.into} / ${lp.span} XP to level ${level + 1}` : `${xp} XP · max level`}</div>
    </li>
  )
})

export const InventoryPanel = memo(function InventoryPanel({ inventory, catalog }: { inventory: Readonly<Record<string, number>> | undefined; catalog: Catalog | null }) {
  countRender('InventoryPanel')
  const names = useMemo(() => new Map(catalog?.items.map((i) => [i.id, i.name]) ?? []), [catalog])
  const name = (id: string) => names.get(id) ?? id
  const items = Object.entries(inventory ?? {}).filter(([, n]) => n > 0)
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
              <InventoryItem key={id} name={name(id)} n={n} />
            ))}
        </ul>
      )}
    </div>
  )
})

const InventoryItem = memo(function InventoryItem({ name, n }: { name: string; n: number }) {
  countRender('InventoryItem')
  return (
    <li>
      <span>{name}</span>
      <span className="qty">{n}</span>
    </li>
  )
})
