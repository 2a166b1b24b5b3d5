// What the player sees: the server's queue view with the commands still in the
// outbox laid over it. The server's view is the truth; the overlay only shows
// intent ("pending") and disappears as each command is answered.
import type { OutboxEntry } from './outbox'
import type { QueueState, QueueTask, QueueView } from './types'

export interface DisplayTask extends QueueTask {
  /** 'add': an enqueue not yet accepted; 'remove': a removal not yet accepted. */
  pending?: 'add' | 'remove'
  /** The outbox key of the command that made this task pending. */
  pendingKey?: string
  /** Set while a tab sends that command: it can no longer be cancelled. */
  sending?: boolean
}

export interface DisplayQueue {
  tasks: DisplayTask[]
  running: boolean
  /**
   * What the queue is doing, to show as it is: the server's state, or with
   * commands pending the state they would leave (queueStateOf).
   */
  state: QueueState
  /** Set when a stop or start waits in the outbox. */
  pendingRunning?: 'stop' | 'start'
  /** Whether tasks[0] holds a running repetition (it cannot move). */
  headLocked: boolean
}

/** The id the overlay gives a task that only exists in the outbox. */
export function pendingTaskId(key: string): string {
  return 'pending:' + key
}

export function isPendingTaskId(id: string): boolean {
  return id.startsWith('pending:')
}

export function mergePending(view: QueueView, pending: readonly OutboxEntry[]): DisplayQueue {
  const headLocked = view.repetition !== null && view.tasks.length > 0 && view.tasks[0].taskId === view.repetition.taskId
  let tasks: DisplayTask[] = view.tasks.map((t) => ({ ...t }))
  let running = view.running
  let pendingRunning: DisplayQueue['pendingRunning']
  let overlaid = false
  for (const entry of pending) {
    if (entry.playerId !== view.playerId) continue
    overlaid = true
    const c = entry.command
    switch (c.kind) {
      case 'enqueue': {
        const task: DisplayTask = {
          taskId: pendingTaskId(entry.key),
          type: c.type,
          count: c.count,
          done: 0,
          enqueuedAt: entry.createdAt,
          pending: 'add',
          pendingKey: entry.key,
          ...(entry.sending ? { sending: true } : {}),
        }
        const min = headLocked ? 1 : 0
        const at = c.position === undefined ? tasks.length : Math.min(tasks.length, Math.max(min, c.position))
        tasks = [...tasks.slice(0, at), task, ...tasks.slice(at)]
        break
      }
      case 'remove':
        tasks = tasks.map((t) => (t.taskId === c.taskId ? { ...t, pending: 'remove', pendingKey: entry.key } : t))
        break
      case 'stop':
        running = false
        pendingRunning = 'stop'
        break
      case 'start':
        running = true
        pendingRunning = 'start'
        break
      case 'reorder':
        tasks = applyOrder(tasks, c.order, headLocked)
        break
    }
  }
  // A view saved before the server sent state (an old offline copy) has none.
  const state = overlaid || !view.state ? queueStateOf(running, tasks.filter((t) => t.pending !== 'remove').length) : view.state
  return { tasks, running, state, pendingRunning, headLocked }
}

/**
 * The state the server gives a queue (query.QueueStateOf): stopped when it
 * does not advance, idle when it advances with nothing to do, else running.
 */
export function queueStateOf(running: boolean, tasks: number): QueueState {
  if (!running) return 'stopped'
  return tasks === 0 ? 'idle' : 'running'
}

/**
 * Puts the waiting tasks named in order first, in that order, keeping the
 * locked head in place and every task not named (new on the server, or only
 * pending) after them in its current order.
 */
export function applyOrder(tasks: DisplayTask[], order: readonly string[], headLocked: boolean): DisplayTask[] {
  const head = headLocked ? tasks.slice(0, 1) : []
  const waiting = headLocked ? tasks.slice(1) : tasks
  const byId = new Map(waiting.map((t) => [t.taskId, t]))
  const named: DisplayTask[] = []
  for (const id of order) {
    const t = byId.get(id)
    if (t) {
      named.push(t)
      byId.delete(id)
    }
  }
  const rest = waiting.filter((t) => byId.has(t.taskId))
  return [...head, ...named, ...rest]
}

/**
 * The order to send for a reorder made against an older view: the wanted
 * order of the tasks that still wait, then any other waiting task in the
 * server's order. The result is always a permutation of the server's waiting
 * tasks, as PUT /reorder requires.
 */
export function rebaseOrder(view: QueueView, wanted: readonly string[]): string[] {
  const headLocked = view.repetition !== null && view.tasks.length > 0 && view.tasks[0].taskId === view.repetition.taskId
  const waiting = (headLocked ? view.tasks.slice(1) : view.tasks).map((t) => t.taskId)
  const set = new Set(waiting)
  const first = wanted.filter((id) => set.has(id))
  const seen = new Set(first)
  return [...first, ...waiting.filter((id) => !seen.has(id))]
}
