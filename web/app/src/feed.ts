// Can the queue feed a task the player is about to add? The same rules as
// the projection (projection.ts, package domain's doc): a repetition takes
// its inputs when it starts, grants outputs and XP when it completes, and a
// task whose inputs are missing when a repetition should start fails (what
// is left of it is lost). Run over the whole queue, with the new task at the
// place it would go, without clocks: only the order matters here.
import { levelForXp } from './projection'
import type { Catalog, Repetition, SkillState } from './types'

export interface PlannedTask {
  taskId: string
  type: string
  count: number
  done: number
}

/** Where the queue stands: what it holds, what the player owns and knows. */
export interface FeedStart {
  tasks: readonly PlannedTask[]
  /** The repetition running now (its inputs are already taken), if any. */
  repetition: Repetition | null
  inventory: Readonly<Record<string, number>>
  skills: Readonly<Record<string, SkillState>>
}

export interface Shortfall {
  item: string
  /** What all the repetitions of the new task need. */
  need: number
  /** What the player owns now. */
  have: number
  /** What the tasks before the new one add (negative: what they use up). */
  fromQueue: number
}

export interface FeedCheck {
  /** Repetitions of the new task that can run. */
  runs: number
  count: number
  /** Inputs the new task runs short of (empty when it can be fed). */
  shortfalls: Shortfall[]
  /** Tasks already queued after it that it would leave short: repetitions each loses. */
  starves: { taskId: string; type: string; lost: number }[]
}

interface Outcome {
  /** Repetitions each task completes, by task ID. */
  runs: Map<string, number>
  /** The inventory when the task with watchId is first reached. */
  atWatch: Record<string, number> | null
}

const NEW_ID = '\u0000new'

function simulate(start: FeedStart, catalog: Catalog, tasks: readonly PlannedTask[], watchId?: string): Outcome {
  const typeOf = new Map(catalog.tasks.map((t) => [t.id, t]))
  const inventory: Record<string, number> = { ...start.inventory }
  const skills: Record<string, SkillState> = Object.fromEntries(Object.entries(start.skills).map(([k, s]) => [k, { ...s }]))
  const { xpForLevel, max } = catalog.levels
  const runs = new Map<string, number>()
  let atWatch: Record<string, number> | null = null
  const grant = (type: string) => {
    const t = typeOf.get(type)
    if (!t) return
    for (const [item, n] of Object.entries(t.outputs ?? {})) inventory[item] = (inventory[item] ?? 0) + n
    const s = skills[t.skill] ?? { xp: 0, level: 1 }
    const xp = s.xp + t.xp
    skills[t.skill] = { xp, level: levelForXp(xp, xpForLevel, max) }
  }
  for (const [i, task] of tasks.entries()) {
    if (task.taskId === watchId) atWatch = { ...inventory }
    let done = task.done
    let ran = 0
    // The repetition running now took its inputs already: it completes.
    if (i === 0 && start.repetition && start.repetition.taskId === task.taskId && done < task.count) {
      grant(task.type)
      done++
      ran++
    }
    const t = typeOf.get(task.type)
    for (; done < task.count; done++) {
      const inputs = Object.entries(t?.inputs ?? {})
      if (!t || (skills[t.skill]?.level ?? 1) < t.levelRequired || inputs.some(([item, n]) => (inventory[item] ?? 0) < n)) break
      for (const [item, n] of inputs) inventory[item] -= n
      grant(task.type)
      ran++
    }
    runs.set(task.taskId, ran)
  }
  return { runs, atWatch }
}

/**
 * Whether the queue can feed count repetitions of type added at position
 * (an index into start.tasks; the end when undefined), and whom it would
 * leave short.
 */
export function checkFeed(start: FeedStart, catalog: Catalog, type: string, count: number, position?: number): FeedCheck {
  const added: PlannedTask = { taskId: NEW_ID, type, count, done: 0 }
  const at = position === undefined ? start.tasks.length : Math.max(0, Math.min(start.tasks.length, position))
  const tasks = [...start.tasks.slice(0, at), added, ...start.tasks.slice(at)]
  const withIt = simulate(start, catalog, tasks, NEW_ID)
  const runs = withIt.runs.get(NEW_ID) ?? 0
  const shortfalls: Shortfall[] = []
  const t = catalog.tasks.find((c) => c.id === type)
  if (t && runs < count) {
    const reached = withIt.atWatch ?? {}
    for (const [item, n] of Object.entries(t.inputs ?? {})) {
      const need = n * count
      const have = start.inventory[item] ?? 0
      const available = reached[item] ?? 0
      // Its own outputs may feed it too: only report what it cannot cover.
      const own = (t.outputs?.[item] ?? 0) * count
      if (available + own < need) shortfalls.push({ item, need, have, fromQueue: available - have })
    }
  }
  const starves: FeedCheck['starves'] = []
  if (at < start.tasks.length) {
    const without = simulate(start, catalog, start.tasks)
    for (const task of start.tasks.slice(at)) {
      const lost = (without.runs.get(task.taskId) ?? 0) - (withIt.runs.get(task.taskId) ?? 0)
      if (lost > 0) starves.push({ taskId: task.taskId, type: task.type, lost })
    }
  }
  return { runs, count, shortfalls, starves }
}

/** "Saw planks ×5 needs 10 Logs: you have 0 and the queue makes 6 before it. Only 3 of 5 can run." */
export function feedWarning(catalog: Catalog, type: string, check: FeedCheck): string | null {
  const name = (id: string) => catalog.items.find((i) => i.id === id)?.name ?? id
  const taskName = (id: string) => catalog.tasks.find((t) => t.id === id)?.name ?? id
  const parts: string[] = []
  if (check.runs < check.count) {
    const needs = check.shortfalls.map((s) => {
      const queue = s.fromQueue > 0 ? ` and the queue makes ${s.fromQueue} before it` : s.fromQueue < 0 ? ` and the tasks before it use ${-s.fromQueue}` : ''
      return `${s.need} ${name(s.item)}: you have ${s.have}${queue}`
    })
    const head = `${taskName(type)} ×${check.count} needs ${needs.join('; ') || 'more than the queue has'}.`
    parts.push(`${head} ${check.runs === 0 ? 'It would fail at once.' : `Only ${check.runs} of ${check.count} can run.`}`)
  }
  for (const s of check.starves) parts.push(`${taskName(s.type)} after it would run ${s.lost} fewer.`)
  return parts.length ? parts.join(' ') : null
}
