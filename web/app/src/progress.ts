// Progress of the running repetition, computed from the queue view alone:
// startedAt and dueAt are server times, so the client corrects its own clock
// by the offset between the view's serverTime and the local time it arrived.
import type { QueueView } from './types'

export interface Progress {
  /** 1-based number of the running repetition. */
  repetition: number
  /** Repetitions the head task has in all. */
  count: number
  /** 0..1 of the running repetition. */
  fraction: number
  /** Milliseconds until the running repetition is due (0 when overdue). */
  remainingMs: number
  /** Milliseconds until the whole head task is done, at the current pace. */
  taskRemainingMs: number
  /** True when the repetition is past due and the server has not moved on yet. */
  overdue: boolean
}

/** The server clock minus the local clock, from a view received at localReceivedMs. */
export function clockOffset(serverTime: string, localReceivedMs: number): number {
  const server = Date.parse(serverTime)
  if (Number.isNaN(server)) return 0
  return server - localReceivedMs
}

/**
 * The clock offset for a view received at localReceivedMs: its serverTime,
 * corrected by what the view proves. A repetition cannot have started in the
 * server's future, so when the view was stamped before the answer left
 * (latency, a view built a moment before it was sent) the server's clock was
 * at least at startedAt when it arrived. Without this, a repetition that
 * just began shows more time left than it lasts.
 */
export function viewClockOffset(view: QueueView, localReceivedMs: number): number {
  const offset = clockOffset(view.serverTime, localReceivedMs)
  const started = view.repetition ? Date.parse(view.repetition.startedAt) : NaN
  return Number.isNaN(started) ? offset : Math.max(offset, started - localReceivedMs)
}

/** Progress of the head task at local time localNowMs, or null when no repetition runs. */
export function computeProgress(view: QueueView, offsetMs: number, localNowMs: number): Progress | null {
  const rep = view.repetition
  if (!rep) return null
  const head = view.tasks.find((t) => t.taskId === rep.taskId)
  if (!head) return null
  const started = Date.parse(rep.startedAt)
  const due = Date.parse(rep.dueAt)
  if (Number.isNaN(started) || Number.isNaN(due)) return null
  const serverNow = localNowMs + offsetMs
  const span = Math.max(1, due - started)
  const fraction = Math.min(1, Math.max(0, (serverNow - started) / span))
  // Never more time left than the repetition lasts, whatever the clocks say.
  const remainingMs = Math.min(span, Math.max(0, due - serverNow))
  const perRepetition = rep.durationMs > 0 ? rep.durationMs : span
  const after = Math.max(0, head.count - rep.number)
  return {
    repetition: rep.number,
    count: head.count,
    fraction,
    remainingMs,
    taskRemainingMs: remainingMs + after * perRepetition,
    overdue: serverNow > due,
  }
}

/** "1:05:03", "4:07", "0:09": a stable-width-ish countdown. */
export function formatDuration(ms: number): string {
  const total = Math.ceil(Math.max(0, ms) / 1000)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  const ss = String(s).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

/** Duration of one repetition at a skill level (docs/API.md, Catalog). */
export function durationAtLevel(baseDurationMs: number, level: number, levelRequired: number): number {
  const bonus = Math.min(0.5, 0.01 * Math.max(0, level - levelRequired))
  return Math.round(baseDurationMs * (1 - bonus))
}

/** Level, XP into the level and XP the level spans, from the catalog's curve. */
export function levelProgress(xp: number, level: number, xpForLevel: number[], max: number): { into: number; span: number; fraction: number } {
  const start = xpForLevel[level] ?? 0
  const next = level >= max ? undefined : xpForLevel[level + 1]
  if (next === undefined || next <= start) return { into: xp - start, span: 0, fraction: 1 }
  const into = Math.max(0, xp - start)
  return { into, span: next - start, fraction: Math.min(1, into / (next - start)) }
}

/** A clock time to end at: "4:42 PM", with the weekday when it is not today. */
export function formatClock(localMs: number, nowMs = Date.now()): string {
  // The formatters are made once: toLocaleTimeString builds one per call,
  // and a 60-task queue formats 60 end times at every view.
  clockFormats ??= { time: new Intl.DateTimeFormat([], { hour: 'numeric', minute: '2-digit' }), day: new Intl.DateTimeFormat([], { weekday: 'short' }) }
  const d = new Date(localMs)
  const now = new Date(nowMs)
  const time = clockFormats.time.format(d)
  const today = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate()
  return today ? time : `${clockFormats.day.format(d)} ${time}`
}
let clockFormats: { time: Intl.DateTimeFormat; day: Intl.DateTimeFormat } | undefined
