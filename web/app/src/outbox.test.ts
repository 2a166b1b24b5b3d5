import 'fake-indexeddb/auto'
import { IDBFactory } from 'fake-indexeddb'
import { describe, expect, it } from 'vitest'
import { ApiError, NetworkError } from './api'
import { IndexedDbOutboxStorage } from './idb'
import { MemoryOutboxStorage, Outbox, type OutboxEntry, type OutboxStorage } from './outbox'

function keys() {
  let n = 0
  return () => `key-${++n}`
}

function problem(status: number, kind: string, detail: string) {
  return new ApiError({ type: `urn:taskqueue:problem:${kind}`, title: kind, status, detail })
}

const storages: Array<[string, () => OutboxStorage]> = [
  ['memory', () => new MemoryOutboxStorage()],
  ['indexeddb', () => new IndexedDbOutboxStorage(new IDBFactory())],
]

describe.each(storages)('Outbox over %s storage', (_name, makeStorage) => {
  it('sends entries in the order they were made, each with its own key', async () => {
    const box = new Outbox(makeStorage(), keys())
    await box.add('alice', { kind: 'enqueue', type: 'chop-wood', count: 3 })
    await box.add('alice', { kind: 'stop' })
    await box.add('alice', { kind: 'enqueue', type: 'saw-planks', count: 1, position: 1 })
    const sent: OutboxEntry[] = []
    const r = await box.flush('alice', async (e) => {
      sent.push(e)
    })
    expect(r).toEqual({ sent: 3, rejected: 0 })
    expect(sent.map((e) => [e.key, e.command.kind])).toEqual([
      ['key-1', 'enqueue'],
      ['key-2', 'stop'],
      ['key-3', 'enqueue'],
    ])
    expect(box.pending()).toEqual([])
  })

  it('keeps everything from the first unreachable send on, and retries with the same key', async () => {
    const storage = makeStorage()
    const box = new Outbox(storage, keys())
    await box.add('alice', { kind: 'enqueue', type: 'chop-wood', count: 3 })
    await box.add('alice', { kind: 'start' })
    const attempts: string[] = []
    const r1 = await box.flush('alice', async (e) => {
      attempts.push(e.key)
      throw new NetworkError(new TypeError('Failed to fetch'))
    })
    expect(r1.sent).toBe(0)
    expect(r1.blockedBy).toBeInstanceOf(NetworkError)
    expect(attempts).toEqual(['key-1']) // the second is never sent before the first
    expect(box.pending().map((e) => [e.key, e.attempts])).toEqual([
      ['key-1', 1],
      ['key-2', 0],
    ])
    expect((await storage.list()).map((e) => [e.key, e.attempts])).toEqual([
      ['key-1', 1],
      ['key-2', 0],
    ])

    const r2 = await box.flush('alice', async (e) => {
      attempts.push(e.key)
    })
    expect(r2).toEqual({ sent: 2, rejected: 0 })
    expect(attempts).toEqual(['key-1', 'key-1', 'key-2'])
    expect(await storage.list()).toEqual([])
  })

  it('treats 5xx, 429 and 401 as retryable and every other problem as final', async () => {
    for (const err of [problem(503, 'unavailable', 'down'), problem(429, 'rate-limited', 'slow down'), problem(401, 'unauthorized', 'expired')]) {
      const box = new Outbox(makeStorage(), keys())
      await box.add('alice', { kind: 'stop' })
      const r = await box.flush('alice', async () => {
        throw err
      })
      expect(r.blockedBy).toBe(err)
      expect(box.pending()).toHaveLength(1)
      expect(box.rejected()).toHaveLength(0)
    }
  })

  it('records a rejection with the server reason and goes on with the next entry', async () => {
    const box = new Outbox(makeStorage(), keys())
    await box.add('alice', { kind: 'enqueue', type: 'smelt-bars', count: 5 })
    await box.add('alice', { kind: 'enqueue', type: 'chop-wood', count: 2 })
    const sent: string[] = []
    const r = await box.flush('alice', async (e) => {
      if (e.command.kind === 'enqueue' && e.command.type === 'smelt-bars') throw problem(422, 'requirement-not-met', 'smithing level 5 required')
      sent.push(e.key)
    })
    expect(r).toEqual({ sent: 1, rejected: 1 })
    expect(sent).toEqual(['key-2'])
    expect(box.rejected().map((x) => [x.entry.key, x.problem.detail])).toEqual([['key-1', 'smithing level 5 required']])
    box.dismiss('key-1')
    expect(box.rejected()).toEqual([])
  })

  it('survives a reload: a new Outbox over the same storage finds the entries and keeps numbering after them', async () => {
    const storage = makeStorage()
    const first = new Outbox(storage, keys())
    await first.add('alice', { kind: 'enqueue', type: 'chop-wood', count: 1 })
    await first.add('alice', { kind: 'remove', taskId: 't1' })

    const second = new Outbox(storage, () => 'key-after-reload')
    await second.load()
    expect(second.pending().map((e) => e.key)).toEqual(['key-1', 'key-2'])
    const added = await second.add('alice', { kind: 'start' })
    expect(added.seq).toBeGreaterThan(second.pending()[1].seq)
    const sent: string[] = []
    await second.flush('alice', async (e) => {
      sent.push(e.key)
    })
    expect(sent).toEqual(['key-1', 'key-2', 'key-after-reload'])
  })

  it('sends only the given player and leaves the others', async () => {
    const box = new Outbox(makeStorage(), keys())
    await box.add('alice', { kind: 'stop' })
    await box.add('bob', { kind: 'stop' })
    const sent: string[] = []
    await box.flush('bob', async (e) => {
      sent.push(e.playerId)
    })
    expect(sent).toEqual(['bob'])
    expect(box.pendingFor('alice')).toHaveLength(1)
  })

  it('runs one flush at a time and picks up what was added during it', async () => {
    const box = new Outbox(makeStorage(), keys())
    await box.add('alice', { kind: 'stop' })
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let concurrent = 0
    let maxConcurrent = 0
    const sent: string[] = []
    const send = async (e: OutboxEntry) => {
      concurrent++
      maxConcurrent = Math.max(maxConcurrent, concurrent)
      if (e.key === 'key-1') await gate
      sent.push(e.key)
      concurrent--
    }
    const a = box.flush('alice', send)
    await box.add('alice', { kind: 'start' })
    const b = box.flush('alice', send)
    release()
    await Promise.all([a, b])
    expect(sent).toEqual(['key-1', 'key-2'])
    expect(maxConcurrent).toBe(1)
  })

  it('cancels an entry that is not being sent', async () => {
    const box = new Outbox(makeStorage(), keys())
    await box.add('alice', { kind: 'enqueue', type: 'chop-wood', count: 1 })
    expect(await box.cancel('key-1')).toBe(true)
    expect(await box.cancel('key-1')).toBe(false)
    expect(box.pending()).toEqual([])
  })
})
