// The outbox: every command the player makes is stored first (IndexedDB in the
// browser, memory in tests), then sent in the order it was made, each with its
// own idempotency key so a retry after a lost answer changes nothing twice.
//
// Contract:
//   - Entries are sent one at a time, in seq order; a later entry is never sent
//     before an earlier one is settled.
//   - A retryable failure (no answer, 5xx, 429, 401, write conflict) stops the
//     flush and keeps the entry with the same key for the next flush.
//   - Any other answer is final: the entry leaves the outbox; a rejection is
//     recorded with the server's problem so the app can show the reason.
//   - One flush runs at a time; flush() while one runs returns the running one,
//     which then runs again once more to pick up what was added meanwhile.
import { ApiError, isRetryable } from './api'
import type { Problem } from './types'

export type Command =
  | { kind: 'enqueue'; type: string; count: number; position?: number }
  | { kind: 'remove'; taskId: string; label?: string }
  | { kind: 'stop' }
  | { kind: 'start' }
  | { kind: 'reorder'; order: string[] }

export interface OutboxEntry {
  /** The Idempotency-Key sent with the command; also the storage key. */
  key: string
  /** Order of creation; strictly increasing across reloads. */
  seq: number
  playerId: string
  command: Command
  createdAt: string
  /** How many sends failed in a retryable way. */
  attempts: number
}

export interface Rejection {
  entry: OutboxEntry
  problem: Problem
  at: string
}

/** Where entries live between page loads. */
export interface OutboxStorage {
  list(): Promise<OutboxEntry[]>
  put(entry: OutboxEntry): Promise<void>
  delete(key: string): Promise<void>
}

export class MemoryOutboxStorage implements OutboxStorage {
  private readonly entries = new Map<string, OutboxEntry>()
  async list(): Promise<OutboxEntry[]> {
    return [...this.entries.values()].map((e) => structuredClone(e))
  }
  async put(entry: OutboxEntry): Promise<void> {
    this.entries.set(entry.key, structuredClone(entry))
  }
  async delete(key: string): Promise<void> {
    this.entries.delete(key)
  }
}

export type Sender = (entry: OutboxEntry) => Promise<void>

export interface FlushResult {
  sent: number
  rejected: number
  /** Set when the flush stopped on a retryable failure. */
  blockedBy?: unknown
}

export class Outbox {
  private readonly storage: OutboxStorage
  private readonly newKey: () => string
  private entries: OutboxEntry[] = []
  private rejections: Rejection[] = []
  private nextSeq = 1
  private loaded: Promise<void> | null = null
  private running: Promise<FlushResult> | null = null
  private again = false
  private readonly listeners = new Set<() => void>()
  /** The key of the entry being sent right now, if any. */
  inFlight: string | null = null

  constructor(storage: OutboxStorage, newKey: () => string = () => crypto.randomUUID()) {
    this.storage = storage
    this.newKey = newKey
  }

  /** Reads what an earlier page load left behind. Safe to call more than once. */
  load(): Promise<void> {
    if (!this.loaded) {
      this.loaded = this.storage.list().then((stored) => {
        const known = new Set(this.entries.map((e) => e.key))
        this.entries = [...this.entries, ...stored.filter((e) => !known.has(e.key))].sort((a, b) => a.seq - b.seq)
        this.nextSeq = Math.max(this.nextSeq, ...this.entries.map((e) => e.seq + 1))
        this.emit()
      })
    }
    return this.loaded
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** The waiting entries in send order (a fresh array on each change). */
  pending(): readonly OutboxEntry[] {
    return this.entries
  }

  pendingFor(playerId: string): OutboxEntry[] {
    return this.entries.filter((e) => e.playerId === playerId)
  }

  rejected(): readonly Rejection[] {
    return this.rejections
  }

  dismiss(key: string): void {
    this.rejections = this.rejections.filter((r) => r.entry.key !== key)
    this.emit()
  }

  /** Stores a command; it is sent by the next flush. */
  async add(playerId: string, command: Command, now: Date = new Date()): Promise<OutboxEntry> {
    await this.load()
    const entry: OutboxEntry = {
      key: this.newKey(),
      seq: this.nextSeq++,
      playerId,
      command,
      createdAt: now.toISOString(),
      attempts: 0,
    }
    await this.storage.put(entry)
    this.entries = [...this.entries, entry]
    this.emit()
    return entry
  }

  /** Drops a waiting entry that has not been sent yet. False when it is being sent or gone. */
  async cancel(key: string): Promise<boolean> {
    if (this.inFlight === key || !this.entries.some((e) => e.key === key)) return false
    this.entries = this.entries.filter((e) => e.key !== key)
    this.emit()
    await this.storage.delete(key)
    return true
  }

  /** Sends the waiting entries of playerId in order with send. */
  flush(playerId: string, send: Sender): Promise<FlushResult> {
    if (this.running) {
      this.again = true
      return this.running
    }
    this.running = (async () => {
      let total: FlushResult = { sent: 0, rejected: 0 }
      try {
        do {
          this.again = false
          const r = await this.flushOnce(playerId, send)
          total = { sent: total.sent + r.sent, rejected: total.rejected + r.rejected, blockedBy: r.blockedBy }
          if (r.blockedBy !== undefined) break
        } while (this.again)
      } finally {
        this.running = null
      }
      return total
    })()
    return this.running
  }

  private async flushOnce(playerId: string, send: Sender): Promise<FlushResult> {
    await this.load()
    const result: FlushResult = { sent: 0, rejected: 0 }
    for (;;) {
      const entry = this.entries.find((e) => e.playerId === playerId)
      if (!entry) return result
      this.inFlight = entry.key
      this.emit()
      try {
        await send(entry)
        result.sent++
      } catch (err) {
        if (isRetryable(err) || !(err instanceof ApiError)) {
          if (!isRetryable(err) && !(err instanceof ApiError)) {
            // A bug or an unexpected answer: keep the entry, but surface it.
            console.error('outbox: send failed', err)
          }
          const updated = { ...entry, attempts: entry.attempts + 1 }
          this.entries = this.entries.map((e) => (e.key === entry.key ? updated : e))
          this.inFlight = null
          this.emit()
          await this.storage.put(updated)
          result.blockedBy = err
          return result
        }
        this.rejections = [...this.rejections, { entry, problem: err.problem, at: new Date().toISOString() }]
        result.rejected++
      }
      this.entries = this.entries.filter((e) => e.key !== entry.key)
      this.inFlight = null
      this.emit()
      await this.storage.delete(entry.key)
    }
  }

  private emit(): void {
    for (const l of this.listeners) l()
  }
}
