// Rates of the running task: XP and items per hour, from the duration of a
// repetition at the player's level (the running repetition's own duration,
// which the server fixed from the level when it started).
import type { Catalog, QueueView } from './types'

const HOUR = 3600000

export interface Rates {
  xpPerHour: number
  skill: string
  /** Items made per hour, by item ID. */
  makes: Record<string, number>
  /** Items used per hour, by item ID. */
  uses: Record<string, number>
  durationMs: number
}

/** The running task's rates, or null when nothing runs. */
export function runningRates(view: QueueView, catalog: Catalog): Rates | null {
  const rep = view.repetition
  if (!view.running || !rep || rep.durationMs <= 0) return null
  const head = view.tasks.find((t) => t.taskId === rep.taskId)
  const type = head && catalog.tasks.find((t) => t.id === head.type)
  if (!type) return null
  const perHour = HOUR / rep.durationMs
  const scale = (items: Record<string, number> | null | undefined) => Object.fromEntries(Object.entries(items ?? {}).map(([id, n]) => [id, n * perHour]))
  return { xpPerHour: type.xp * perHour, skill: type.skill, makes: scale(type.outputs), uses: scale(type.inputs), durationMs: rep.durationMs }
}

/** "1,200", "1,028.6" → rounded to whole numbers above 100, one decimal below. */
export function formatRate(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en') : String(Math.round(n * 10) / 10)
}
