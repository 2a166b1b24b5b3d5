// "While you were away": what the queue did between the view the app saw
// last (cached in localStorage) and the server's view when the player comes
// back, with the history of the tasks that finished meanwhile.
import type { Catalog, HistoryEntry, QueueView } from './types'

export interface AwaySummary {
  repetitions: number
  /** XP gained per skill name, and the level reached when it rose. */
  skills: { skill: string; xp: number; level?: number }[]
  /** Items by name with their net change: gained (> 0) or used (< 0). */
  items: { item: string; change: number }[]
  finished: string[]
  failed: string[]
  /** Why the server stopped the queue (the offline cap), if it did meanwhile. */
  stopped: string
}

/** The summary, or null when nothing advanced. history: entries finished after before.serverTime. */
export function summarizeAway(before: QueueView, after: QueueView, history: HistoryEntry[], catalog: Catalog | null): AwaySummary | null {
  if (after.version <= before.version || after.playerId !== before.playerId) return null
  const doneBefore = new Map(before.tasks.map((t) => [t.taskId, t.done]))
  const since = Date.parse(before.serverTime)
  const entries = history.filter((e) => Date.parse(e.finishedAt) > since && e.outcome !== 'cancelled')
  let repetitions = 0
  for (const e of entries) repetitions += Math.max(0, e.repetitionsDone - (doneBefore.get(e.taskId) ?? 0))
  for (const t of after.tasks) repetitions += Math.max(0, t.done - (doneBefore.get(t.taskId) ?? 0))
  const skillName = (id: string) => catalog?.skills.find((s) => s.id === id)?.name ?? id
  const itemName = (id: string) => catalog?.items.find((i) => i.id === id)?.name ?? id
  const taskName = (id: string) => catalog?.tasks.find((t) => t.id === id)?.name ?? id
  const skills = Object.entries(after.skills)
    .map(([id, s]) => {
      const was = before.skills[id] ?? { xp: 0, level: 1 }
      return { skill: skillName(id), xp: s.xp - was.xp, ...(s.level > was.level ? { level: s.level } : {}) }
    })
    .filter((s) => s.xp > 0)
  const ids = new Set([...Object.keys(before.inventory), ...Object.keys(after.inventory)])
  const items = [...ids].map((id) => ({ item: itemName(id), change: (after.inventory[id] ?? 0) - (before.inventory[id] ?? 0) })).filter((i) => i.change !== 0)
  const finished = entries.filter((e) => e.outcome === 'completed').map((e) => `${taskName(e.type)} ×${e.count}`)
  const failed = entries.filter((e) => e.outcome === 'failed').map((e) => `${taskName(e.type)}${e.reason ? ` (${e.reason})` : ''}`)
  const stopped = !after.running && after.stoppedReason && after.stoppedReason !== before.stoppedReason ? after.stoppedReason : ''
  if (repetitions === 0 && finished.length === 0 && failed.length === 0 && !stopped) return null
  return { repetitions, skills, items, finished, failed, stopped }
}
