// IndexedDB storage for the outbox: one object store keyed by the idempotency
// key, so a page reloaded offline finds its unsent commands again.
import type { OutboxEntry, OutboxStorage } from './outbox'

const DB_NAME = 'taskqueue'
const STORE = 'outbox'

function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
}

export class IndexedDbOutboxStorage implements OutboxStorage {
  private readonly db: Promise<IDBDatabase>

  constructor(factory: IDBFactory = indexedDB, name = DB_NAME) {
    this.db = new Promise((resolve, reject) => {
      const open = factory.open(name, 1)
      open.onupgradeneeded = () => {
        open.result.createObjectStore(STORE, { keyPath: 'key' })
      }
      open.onsuccess = () => resolve(open.result)
      open.onerror = () => reject(open.error)
      open.onblocked = () => reject(new Error('open the outbox database: blocked by another tab'))
    })
  }

  private async tx(mode: IDBTransactionMode): Promise<IDBObjectStore> {
    return (await this.db).transaction(STORE, mode).objectStore(STORE)
  }

  async list(): Promise<OutboxEntry[]> {
    const all = await promised((await this.tx('readonly')).getAll() as IDBRequest<OutboxEntry[]>)
    return all.sort((a, b) => a.seq - b.seq)
  }

  async put(entry: OutboxEntry): Promise<void> {
    await promised((await this.tx('readwrite')).put(entry))
  }

  async delete(key: string): Promise<void> {
    await promised((await this.tx('readwrite')).delete(key))
  }
}
