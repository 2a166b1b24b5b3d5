// What a task grants, in words: the "Finished" toast says what the player got.
import type { Catalog } from './types'

/** "+3 Logs, +30 Woodcutting XP" for count repetitions of type (the catalog's outputs and XP). */
export function rewardsText(catalog: Catalog | null, type: string, count: number): string {
  const t = catalog?.tasks.find((c) => c.id === type)
  if (!catalog || !t || !(count > 0)) return ''
  const items = Object.entries(t.outputs ?? {}).map(([id, n]) => `+${(n * count).toLocaleString('en')} ${catalog.items.find((i) => i.id === id)?.name ?? id}`)
  const skill = catalog.skills.find((s) => s.id === t.skill)?.name ?? t.skill
  return [...items, `+${(t.xp * count).toLocaleString('en')} ${skill} XP`].join(', ')
}

/** The toast of a finished task: "Finished: Chop wood ×3 · +3 Logs, +30 Woodcutting XP". */
export function finishedText(catalog: Catalog | null, type: string, count: number): string {
  const name = catalog?.tasks.find((c) => c.id === type)?.name ?? type
  const rewards = rewardsText(catalog, type, count)
  return `Finished: ${name} ×${count}${rewards ? ` · ${rewards}` : ''}`
}
