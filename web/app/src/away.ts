// "While you were away": what the queue did between the view the app saw
// last (cached in localStorage) and the server's view when the player comes
// back, with the history of the tasks that finished meanwhile.
import type { Catalog, HistoryEntry, QueueView } from './types'

export interface AwaySummary {
  repetitions: number
  /** XP gained per skill name, and the level reached when it rose. */
  skills: { skill: string; xp: number; level?: number }[]
  /** Items by name, gained by the repetitions completed since and used by those started since (net without a catalog). */
  gained: { item: string; n: number }[]
  used: { item: string; n: number }[]
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
  // Repetitions completed since, per task (those that left the queue, those still in it).
  const since_ = [
    ...entries.map((e) => ({ taskId: e.taskId, type: e.type, completed: Math.max(0, e.repetitionsDone - (doneBefore.get(e.taskId) ?? 0)) })),
    ...after.tasks.map((t) => ({ taskId: t.taskId, type: t.type, completed: Math.max(0, t.done - (doneBefore.get(t.taskId) ?? 0)) })),
  ]
  const repetitions = since_.reduce((n, t) => n + t.completed, 0)
  const skillName = (id: string) => catalog?.skills.find((s) => s.id === id)?.name ?? id
  const itemName = (id: string) => catalog?.items.find((i) => i.id === id)?.name ?? id
  const taskName = (id: string) => catalog?.tasks.find((t) => t.id === id)?.name ?? id
  const skills = Object.entries(after.skills)
    .map(([id, s]) => {
      const was = before.skills[id] ?? { xp: 0, level: 1 }
      return { skill: skillName(id), xp: s.xp - was.xp, ...(s.level > was.level ? { level: s.level } : {}) }
    })
    .filter((s) => s.xp > 0)
  const gainedBy = new Map<string, number>()
  const usedBy = new Map<string, number>()
  const add = (m: Map<string, number>, items: Record<string, number> | null | undefined, times: number) => {
    for (const [id, n] of Object.entries(items ?? {})) if (n * times > 0) m.set(id, (m.get(id) ?? 0) + n * times)
  }
  if (catalog) {
    // Outputs come when a repetition completes; inputs go when one starts
    // (the one running now, if it started since; not the one running then).
    for (const t of since_) {
      const type = catalog.tasks.find((c) => c.id === t.type)
      const started = t.completed + (after.repetition?.taskId === t.taskId ? 1 : 0) - (before.repetition?.taskId === t.taskId ? 1 : 0)
      add(gainedBy, type?.outputs, t.completed)
      add(usedBy, type?.inputs, started)
    }
  } else {
    for (const id of new Set([...Object.keys(before.inventory), ...Object.keys(after.inventory)])) {
      const change = (after.inventory[id] ?? 0) - (before.inventory[id] ?? 0)
      if (change > 0) gainedBy.set(id, change)
      if (change < 0) usedBy.set(id, -change)
    }
  }
  const named = (m: Map<string, number>) => [...m].map(([id, n]) => ({ item: itemName(id), n })).sort((a, b) => a.item.localeCompare(b.item))
  const finished = entries.filter((e) => e.outcome === 'completed').map((e) => `${taskName(e.type)} ×${e.count}`)
  const failed = entries.filter((e) => e.outcome === 'failed').map((e) => `${taskName(e.type)}${e.reason ? ` (${e.reason})` : ''}`)
  const stopped = !after.running && after.stoppedReason && after.stoppedReason !== before.stoppedReason ? after.stoppedReason : ''
  if (repetitions === 0 && finished.length === 0 && failed.length === 0 && !stopped) return null
  return { repetitions, skills, gained: named(gainedBy), used: named(usedBy), finished, failed, stopped }
}
