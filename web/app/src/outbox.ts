// The outbox: every command the player makes is stored first (IndexedDB in the
// browser, memory in tests), then sent in the order it was made, each with its
// own idempotency key so a retry after a lost answer changes nothing twice.
//
// There is one outbox per browser profile, shared by every tab: the storage
// is the truth, each Outbox object is one tab's view of it, and the tabs tell
// one another when it changed (OutboxPeers: a BroadcastChannel and a Web Lock
// in the browser, see peers.ts).
//
// Contract:
//   - Entries are sent one at a time, in seq order; a later entry is never sent
//     before an earlier one is settled.
//   - Each entry is sent by one tab only: a flush holds the peers' exclusive
//     lock, reads the storage afresh and claims an entry before sending it; a
//     cancel (in any tab) deletes an entry only when it is not claimed.
//   - A retryable failure (no answer, 5xx, 429, 401, write conflict) stops the
//     flush and keeps the entry with the same key for the next flush.
//   - Any other answer is final: the entry leaves the outbox; a rejection is
//     stored with the server's problem until the player dismisses it.
//   - One flush runs at a time; flush() while one runs returns the running one,
//     which then runs again once more to pick up what was added meanwhile.
import { ApiError, isRetryable } from './api'
import { DISMISSED_KEY } from './localdata'
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
  /** Set while a flush (in some tab) sends it: it can no longer be cancelled. */
  sending?: boolean
}

export interface Rejection {
  entry: OutboxEntry
  problem: Problem
  at: string
}

/** Where entries and rejections live between page loads, shared by the tabs. */
export interface OutboxStorage {
  list(): Promise<OutboxEntry[]>
  put(entry: OutboxEntry): Promise<void>
  delete(key: string): Promise<void>
  /** Marks the entry as being sent and returns it; null when it is gone. Atomic. */
  claim(key: string): Promise<OutboxEntry | null>
  /** Deletes the entry unless it is being sent; false when it is claimed or gone. Atomic. */
  cancel(key: string): Promise<boolean>
  listRejections(): Promise<Rejection[]>
  putRejection(rejection: Rejection): Promise<void>
  deleteRejection(key: string): Promise<void>
}

/** The other tabs sharing the storage. */
export interface OutboxPeers {
  /** Runs fn while no other flush runs, in this tab or another. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>
  /** Tells the other tabs that the storage changed. */
  announce(): void
  /** Calls listener when another tab announced a change; returns the unsubscribe. */
  listen(listener: () => void): () => void
}

/** Peers for a single tab (tests, and browsers without locks): a local mutex. */
export class LocalPeers implements OutboxPeers {
  private tail: Promise<unknown> = Promise.resolve()
  private readonly listeners = new Set<() => void>()
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn)
    this.tail = run.catch(() => {})
    return run
  }
  announce(): void {}
  listen(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}

export class MemoryOutboxStorage implements OutboxStorage {
  private readonly entries = new Map<string, OutboxEntry>()
  private readonly rejections = new Map<string, Rejection>()
  async list(): Promise<OutboxEntry[]> {
    return [...this.entries.values()].map((e) => structuredClone(e)).sort((a, b) => a.seq - b.seq)
  }
  async put(entry: OutboxEntry): Promise<void> {
    this.entries.set(entry.key, structuredClone(entry))
  }
  async delete(key: string): Promise<void> {
    this.entries.delete(key)
  }
  async claim(key: string): Promise<OutboxEntry | null> {
    const e = this.entries.get(key)
    if (!e) return null
    e.sending = true
    return structuredClone(e)
  }
  async cancel(key: string): Promise<boolean> {
    const e = this.entries.get(key)
    if (!e || e.sending) return false
    this.entries.delete(key)
    return true
  }
  async listRejections(): Promise<Rejection[]> {
    return [...this.rejections.values()].map((r) => structuredClone(r))
  }
  async putRejection(rejection: Rejection): Promise<void> {
    this.rejections.set(rejection.entry.key, structuredClone(rejection))
  }
  async deleteRejection(key: string): Promise<void> {
    this.rejections.delete(key)
  }
}

export type Sender = (entry: OutboxEntry) => Promise<void>

export interface FlushResult {
  sent: number
  rejected: number
  /** Set when the flush stopped on a retryable failure. */
  blockedBy?: unknown
}

/**
 * The rejections dismissed whose deletion may not have reached the storage
 * yet, kept synchronously: the storage deletes asynchronously, and a reload
 * right after a dismissal aborts a deletion in flight, which brought the
 * dismissed rejection back. Shared by the tabs (localStorage in the browser).
 */
export interface Dismissals {
  keys(): string[]
  add(key: string): void
  remove(key: string): void
}

/** Dismissals in this object's memory (tests, and browsers without localStorage). */
export class MemoryDismissals implements Dismissals {
  private readonly set = new Set<string>()
  keys(): string[] {
    return [...this.set]
  }
  add(key: string): void {
    this.set.add(key)
  }
  remove(key: string): void {
    this.set.delete(key)
  }
}

/** Dismissals in a Storage: localStorage in the browser, synchronous and shared by the tabs. */
export class StoredDismissals implements Dismissals {
  private readonly store: Pick<Storage, 'getItem' | 'setItem'>
  constructor(store: Pick<Storage, 'getItem' | 'setItem'>) {
    this.store = store
  }
  keys(): string[] {
    try {
      const v: unknown = JSON.parse(this.store.getItem(DISMISSED_KEY) ?? '[]')
      return Array.isArray(v) ? v.filter((k): k is string => typeof k === 'string') : []
    } catch {
      return []
    }
  }
  add(key: string): void {
    this.write([...new Set([...this.keys(), key])])
  }
  remove(key: string): void {
    this.write(this.keys().filter((k) => k !== key))
  }
  private write(keys: string[]): void {
    try {
      this.store.setItem(DISMISSED_KEY, JSON.stringify(keys))
    } catch {
      // Full or refused: the storage's own deletion still runs.
    }
  }
}

export class Outbox {
  private readonly storage: OutboxStorage
  private readonly newKey: () => string
  private readonly peers: OutboxPeers
  private readonly dismissals: Dismissals
  private entries: OutboxEntry[] = []
  private rejections: Rejection[] = []
  private nextSeq = 1
  private loaded: Promise<void> | null = null
  private running: Promise<FlushResult> | null = null
  private again = false
  private readonly listeners = new Set<() => void>()
  /** The key of the entry this tab is sending right now, if any. */
  inFlight: string | null = null
  /** Bumped on every change, for useSyncExternalStore. */
  version = 0

  constructor(
    storage: OutboxStorage,
    newKey: () => string = () => crypto.randomUUID(),
    peers: OutboxPeers = new LocalPeers(),
    dismissals: Dismissals = new MemoryDismissals(),
  ) {
    this.storage = storage
    this.newKey = newKey
    this.peers = peers
    this.dismissals = dismissals
    peers.listen(() => void this.reload())
  }

  /** Reads what an earlier page load (or another tab) left behind. Safe to call more than once. */
  load(): Promise<void> {
    if (!this.loaded) this.loaded = this.reload()
    return this.loaded
  }

  /** Reads the storage afresh: another tab changed it. */
  async reload(): Promise<void> {
    const [stored, rejections] = await Promise.all([this.storage.list(), this.storage.listRejections()])
    this.entries = stored.sort((a, b) => a.seq - b.seq)
    // A dismissal whose deletion did not reach the storage (a reload cut
    // it short) is finished now; one that did is forgotten.
    const dismissed = new Set(this.dismissals.keys())
    const left = new Set(rejections.filter((r) => dismissed.has(r.entry.key)).map((r) => r.entry.key))
    for (const key of dismissed) {
      if (left.has(key)) void this.deleteRejection(key)
      else this.dismissals.remove(key)
    }
    this.rejections = rejections.filter((r) => !dismissed.has(r.entry.key)).sort((a, b) => a.at.localeCompare(b.at))
    this.nextSeq = Math.max(this.nextSeq, ...this.entries.map((e) => e.seq + 1))
    this.emit()
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

  /** Forgets a rejection, in every tab and across reloads (even one that comes before the storage's deletion). */
  dismiss(key: string): void {
    this.dismissals.add(key)
    this.rejections = this.rejections.filter((r) => r.entry.key !== key)
    this.emit()
    void this.deleteRejection(key)
  }

  private async deleteRejection(key: string): Promise<void> {
    try {
      await this.storage.deleteRejection(key)
    } catch {
      return // still recorded as dismissed: the next reload deletes it again
    }
    this.dismissals.remove(key)
    this.peers.announce()
  }

  /** Stores a command; it is sent by the next flush. */
  async add(playerId: string, command: Command, now: Date = new Date()): Promise<OutboxEntry> {
    await this.load()
    // Another tab may have added since this one last looked: number after it.
    const stored = await this.storage.list()
    this.nextSeq = Math.max(this.nextSeq, ...stored.map((e) => e.seq + 1))
    const entry: OutboxEntry = {
      key: this.newKey(),
      seq: this.nextSeq++,
      playerId,
      command,
      createdAt: now.toISOString(),
      attempts: 0,
    }
    await this.storage.put(entry)
    this.entries = [...this.entries.filter((e) => e.key !== entry.key), entry]
    this.emit()
    this.peers.announce()
    return entry
  }

  /** Drops a waiting entry that has not been sent yet. False when it is being sent (by any tab) or gone. */
  async cancel(key: string): Promise<boolean> {
    if (this.inFlight === key) return false
    const ok = await this.storage.cancel(key)
    if (ok) {
      this.entries = this.entries.filter((e) => e.key !== key)
      this.emit()
      this.peers.announce()
    }
    return ok
  }

  /**
   * Forgets what the outbox holds for playerId (at sign-out): its rejections,
   * and its unsent entries too unless keepUnsent.
   */
  async discard(playerId: string, keepUnsent: boolean): Promise<void> {
    await this.load()
    for (const r of await this.storage.listRejections()) {
      if (r.entry.playerId === playerId) await this.storage.deleteRejection(r.entry.key)
    }
    if (!keepUnsent) {
      for (const e of await this.storage.list()) {
        if (e.playerId === playerId) await this.storage.cancel(e.key)
      }
    }
    await this.reload()
    this.peers.announce()
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
          const r = await this.peers.exclusive(() => this.flushOnce(playerId, send))
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
      // The storage, not this tab's copy: another tab may have sent or
      // cancelled an entry since this one last looked.
      const next = (await this.storage.list()).find((e) => e.playerId === playerId)
      if (!next) {
        await this.reload()
        return result
      }
      // Holding the lock, a claimed entry is one a flush left unsettled (its
      // tab closed mid-send): send it again, with the same key.
      const entry = await this.storage.claim(next.key)
      if (!entry) continue
      this.inFlight = entry.key
      await this.reload()
      this.peers.announce()
      try {
        await send(entry)
        result.sent++
      } catch (err) {
        if (isRetryable(err) || !(err instanceof ApiError)) {
          if (!isRetryable(err) && !(err instanceof ApiError)) {
            // A bug or an unexpected answer: keep the entry, but surface it.
            console.error('outbox: send failed', err)
          }
          await this.storage.put({ ...entry, attempts: entry.attempts + 1, sending: false })
          this.inFlight = null
          await this.reload()
          this.peers.announce()
          result.blockedBy = err
          return result
        }
        await this.storage.putRejection({ entry: { ...entry, sending: false }, problem: err.problem, at: new Date().toISOString() })
        result.rejected++
      }
      await this.storage.delete(entry.key)
      this.inFlight = null
      await this.reload()
      this.peers.announce()
    }
  }

  private emit(): void {
    this.version++
    for (const l of this.listeners) l()
  }
}
