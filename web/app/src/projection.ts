// Projecting the queue forward while the server cannot be asked (offline, or
// the server down): the server keeps completing repetitions, and the app
// knows its rules (package domain's doc: durations at the player's level,
// inputs taken when a repetition starts, outputs and XP granted when it
// completes, a task that cannot start fails and the next is tried). The
// projection is only ever shown as an estimate; the next view the server
// sends replaces it.
import type { Catalog, QueueTask, QueueView, Repetition, SkillState } from './types'

/** Milliseconds of one repetition at level (domain.RepetitionDuration: integer maths, at least 1). */
export function repetitionDuration(baseMs: number, required: number, level: number): { durationMs: number; efficiency: number } {
  const speedUp = Math.max(0, Math.min(50, level - required))
  const durationMs = Math.max(1, Math.floor((baseMs * (100 - speedUp)) / 100))
  return { durationMs, efficiency: Math.round((baseMs / durationMs) * 100) / 100 }
}

/** The level of xp on the catalog's curve (domain.LevelForXP). */
export function levelForXp(xp: number, xpForLevel: readonly number[], max: number): number {
  let level = 1
  while (level < max && xpForLevel[level + 1] !== undefined && xp >= xpForLevel[level + 1]) level++
  return level
}

export interface Projection {
  view: QueueView
  /** Repetitions the projection completed beyond the server's view (0: the view as it is). */
  completed: number
  /** Tasks it finished or failed. */
  finished: number
}

/** Upper bound on the repetitions one projection runs (a day of 1 ms repetitions is not a real queue). */
const MAX_STEPS = 100000

/**
 * The queue as the server has most likely advanced it by serverNowMs.
 * onFinish hears each task that finishes or fails on the way, with the
 * server time it does.
 */
export function projectQueue(view: QueueView, catalog: Catalog, serverNowMs: number, onFinish?: (taskId: string, atMs: number) => void): Projection {
  const unchanged = { view, completed: 0, finished: 0 }
  const first: Repetition | null = view.repetition
  if (!view.running || !first || Date.parse(first.dueAt) > serverNowMs) return unchanged
  const tasks: QueueTask[] = view.tasks.map((t) => ({ ...t }))
  const skills: Record<string, SkillState> = Object.fromEntries(Object.entries(view.skills).map(([k, s]) => [k, { ...s }]))
  const inventory: Record<string, number> = { ...view.inventory }
  // Each type's inputs and outputs listed once: the loop below runs once a
  // repetition (finishTimes runs it to the end of the queue at every view).
  const typeOf = new Map(catalog.tasks.map((t) => [t.id, { t, inputs: Object.entries(t.inputs ?? {}), outputs: Object.entries(t.outputs ?? {}) }]))
  const { xpForLevel, max } = catalog.levels
  let completed = 0
  let finished = 0
  // The running repetition in numbers (the ISO strings are made once, at the end).
  let repTask: string | null = first.taskId
  let dueMs = Date.parse(first.dueAt)
  let started: { taskId: string; number: number; startMs: number; durationMs: number; efficiency: number } | null = null
  while (repTask !== null && dueMs <= serverNowMs && completed < MAX_STEPS) {
    const head = tasks[0]
    if (!head || head.taskId !== repTask) break
    const due = dueMs
    // Complete the running repetition.
    const kind = typeOf.get(head.type)
    if (kind) {
      for (const [item, n] of kind.outputs) inventory[item] = (inventory[item] ?? 0) + n
      const s = skills[kind.t.skill] ?? { xp: 0, level: 1 }
      const xp = s.xp + kind.t.xp
      skills[kind.t.skill] = { xp, level: levelForXp(xp, xpForLevel, max) }
    }
    head.done++
    completed++
    if (head.done >= head.count) {
      tasks.shift()
      finished++
      onFinish?.(head.taskId, due)
    }
    // Start the next repetition at the due time, failing the tasks that cannot.
    repTask = null
    started = null
    while (tasks.length > 0 && repTask === null) {
      const next = tasks[0]
      const k = typeOf.get(next.type)
      const t = k?.t
      const level = t ? (skills[t.skill]?.level ?? 1) : 0
      if (!k || !t || level < t.levelRequired || k.inputs.some(([item, n]) => (inventory[item] ?? 0) < n)) {
        tasks.shift()
        finished++
        onFinish?.(next.taskId, due)
        continue
      }
      for (const [item, n] of k.inputs) inventory[item] -= n
      const { durationMs, efficiency } = repetitionDuration(t.baseDurationMs, t.levelRequired, level)
      repTask = next.taskId
      dueMs = due + durationMs
      started = { taskId: next.taskId, number: next.done + 1, startMs: due, durationMs, efficiency }
    }
  }
  const rep: Repetition | null =
    completed === 0
      ? first
      : started && {
          taskId: started.taskId,
          number: started.number,
          startedAt: new Date(started.startMs).toISOString(),
          dueAt: new Date(started.startMs + started.durationMs).toISOString(),
          durationMs: started.durationMs,
          efficiency: started.efficiency,
        }
  for (const [item, n] of Object.entries(inventory)) if (n <= 0) delete inventory[item]
  return {
    view: { ...view, tasks, skills, inventory, repetition: rep, state: tasks.length > 0 ? 'running' : 'idle' },
    completed,
    finished,
  }
}

/**
 * When each task of a running queue ends (server time, ms), by the rules:
 * the repetition running now, then each one at the level the player will
 * have by then (level-ups speed the later ones up), a task that cannot
 * start ending when it is tried. Empty for a stopped or idle queue.
 */
export function finishTimes(view: QueueView, catalog: Catalog): Map<string, number> {
  const ends = new Map<string, number>()
  projectQueue(view, catalog, Number.MAX_SAFE_INTEGER, (taskId, atMs) => ends.set(taskId, atMs))
  return ends
}
