import 'fake-indexeddb/auto'
import { IDBFactory } from 'fake-indexeddb'
import { describe, expect, it } from 'vitest'
import { ApiError, NetworkError } from './api'
import { IndexedDbOutboxStorage } from './idb'
import { LocalPeers, MemoryDismissals, MemoryOutboxStorage, Outbox, StoredDismissals, type OutboxEntry, type OutboxPeers, type OutboxStorage } from './outbox'

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

/** Two tabs' peers: one lock and one channel between them. */
function tabs(n: number): OutboxPeers[] {
  const lock = new LocalPeers()
  const listeners: Array<Set<() => void>> = Array.from({ length: n }, () => new Set())
  return listeners.map((mine) => ({
    exclusive: <T,>(fn: () => Promise<T>) => lock.exclusive(fn),
    announce: () => listeners.filter((l) => l !== mine).forEach((l) => l.forEach((f) => f())),
    listen: (f: () => void) => {
      mine.add(f)
      return () => mine.delete(f)
    },
  }))
}

const sharedStorages: Array<[string, () => () => OutboxStorage]> = [
  ['memory', () => {
    const s = new MemoryOutboxStorage()
    return () => s
  }],
  ['indexeddb', () => {
    const f = new IDBFactory()
    return () => new IndexedDbOutboxStorage(f)
  }],
]

const settle = () => new Promise((r) => setTimeout(r, 20))

describe.each(sharedStorages)('one outbox across tabs over %s storage', (_name, makeShared) => {
  it('a command cancelled in one tab is not sent by the other, and each command goes out once, in order', async () => {
    const storage = makeShared()
    const [pa, pb] = tabs(2)
    const a = new Outbox(storage(), keys(), pa)
    const b = new Outbox(storage(), () => 'b-' + Math.random(), pb)
    await a.add('alice', { kind: 'enqueue', type: 'chop-wood', count: 1 })
    await a.add('alice', { kind: 'enqueue', type: 'mine-tin', count: 1 })
    await b.load()
    await settle()
    expect(b.pending().map((e) => e.key)).toEqual(['key-1', 'key-2'])
    // Tab B cancels the first; tab A, which loaded it too, must not send it.
    expect(await b.cancel('key-1')).toBe(true)
    await settle()
    expect(a.pending().map((e) => e.key)).toEqual(['key-2'])
    const c = await b.add('alice', { kind: 'stop' })
    const sent: string[] = []
    const send = async (e: OutboxEntry) => {
      await settle()
      sent.push(e.key)
    }
    await Promise.all([a.flush('alice', send), b.flush('alice', send), a.flush('alice', send)])
    expect(sent).toEqual(['key-2', c.key])
    await settle()
    expect(a.pending()).toEqual([])
    expect(b.pending()).toEqual([])
  })

  it('an entry being sent by one tab cannot be cancelled in another, and shows as sending there', async () => {
    const storage = makeShared()
    const [pa, pb] = tabs(2)
    const a = new Outbox(storage(), keys(), pa)
    const b = new Outbox(storage(), keys(), pb)
    await a.add('alice', { kind: 'stop' })
    await b.load()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const flushing = a.flush('alice', () => gate)
    await settle()
    expect(b.pending()[0].sending).toBe(true)
    expect(await b.cancel('key-1')).toBe(false)
    release()
    expect(await flushing).toEqual({ sent: 1, rejected: 0 })
  })

  it('rejections are stored until dismissed, and a dismissal reaches the other tab', async () => {
    const storage = makeShared()
    const [pa, pb] = tabs(2)
    const a = new Outbox(storage(), keys(), pa)
    await a.add('alice', { kind: 'remove', taskId: 'gone' })
    await a.flush('alice', async () => {
      throw problem(404, 'not-found', 'no such task')
    })
    // A reload (a new Outbox) still shows it.
    const b = new Outbox(storage(), keys(), pb)
    await b.load()
    expect(b.rejected().map((r) => r.problem.detail)).toEqual(['no such task'])
    b.dismiss('key-1')
    await settle()
    expect(a.rejected()).toEqual([])
  })

  it('discard at sign-out drops the player\'s rejections, and its unsent commands unless kept', async () => {
    const storage = makeShared()
    const box = new Outbox(storage(), keys())
    await box.add('alice', { kind: 'stop' })
    await box.add('bob', { kind: 'stop' })
    await box.discard('alice', true)
    expect(box.pending().map((e) => e.playerId)).toEqual(['alice', 'bob'])
    await box.discard('alice', false)
    expect(box.pending().map((e) => e.playerId)).toEqual(['bob'])
  })
})

// A storage whose deletions of rejections never complete while cut is set,
// as when the page unloads before IndexedDB commits them.
class CutShort extends MemoryOutboxStorage {
  cut = true
  deleteRejection(key: string): Promise<void> {
    return this.cut ? new Promise<void>(() => {}) : super.deleteRejection(key)
  }
}

describe('dismissed rejections', () => {
  it('stay dismissed across a reload that cut the deletion short, which the reload then finishes', async () => {
    const storage = new CutShort()
    const dismissals = new MemoryDismissals()
    const a = new Outbox(storage, keys(), new LocalPeers(), dismissals)
    await a.add('alice', { kind: 'stop' })
    await a.flush('alice', async () => {
      throw problem(404, 'not-found', 'no such task')
    })
    a.dismiss('key-1')
    expect(a.rejected()).toEqual([])
    expect((await storage.listRejections()).map((r) => r.entry.key)).toEqual(['key-1'])

    storage.cut = false // the reloaded page's deletions complete
    const b = new Outbox(storage, keys(), new LocalPeers(), dismissals)
    await b.load()
    expect(b.rejected()).toEqual([])
    await settle()
    expect(await storage.listRejections()).toEqual([])
    expect(dismissals.keys()).toEqual([])
  })

  it('are kept in a Storage as a list of keys, and a malformed one reads as empty', () => {
    const items = new Map<string, string>()
    const store = { getItem: (k: string) => items.get(k) ?? null, setItem: (k: string, v: string) => void items.set(k, v) }
    const d = new StoredDismissals(store)
    d.add('a')
    d.add('b')
    d.add('a')
    expect(new StoredDismissals(store).keys()).toEqual(['a', 'b'])
    d.remove('a')
    expect(d.keys()).toEqual(['b'])
    items.set('taskqueue.outbox.dismissed', '{not json')
    expect(d.keys()).toEqual([])
  })
})
