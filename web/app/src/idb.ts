// IndexedDB storage for the outbox: unsent commands keyed by their
// idempotency key, and the server's rejections until the player dismisses
// them, so a page reloaded offline finds both again. Every tab of the
// browser profile shares them (see outbox.ts for how the tabs take turns).
import type { OutboxEntry, OutboxStorage, Rejection } from './outbox'

const DB_NAME = 'taskqueue'
const STORE = 'outbox'
const REJECTIONS = 'rejections'

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
      const open = factory.open(name, 2)
      open.onupgradeneeded = () => {
        const db = open.result
        if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: 'key' })
        if (!db.objectStoreNames.contains(REJECTIONS)) db.createObjectStore(REJECTIONS, { keyPath: 'entry.key' })
      }
      open.onsuccess = () => {
        // A newer build in another tab wants to upgrade: let it.
        open.result.onversionchange = () => open.result.close()
        resolve(open.result)
      }
      open.onerror = () => reject(open.error)
      open.onblocked = () => reject(new Error('open the outbox database: blocked by another tab'))
    })
  }

  private async tx(mode: IDBTransactionMode, store = STORE): Promise<IDBObjectStore> {
    return (await this.db).transaction(store, mode).objectStore(store)
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

  /** Read and write in one transaction, so no other tab acts in between. */
  private async update<T>(key: string, decide: (entry: OutboxEntry | undefined, store: IDBObjectStore) => T): Promise<T> {
    const store = await this.tx('readwrite')
    return new Promise((resolve, reject) => {
      const get = store.get(key) as IDBRequest<OutboxEntry | undefined>
      let result: T
      get.onsuccess = () => {
        result = decide(get.result, store)
      }
      store.transaction.oncomplete = () => resolve(result)
      store.transaction.onerror = () => reject(store.transaction.error)
      store.transaction.onabort = () => reject(store.transaction.error)
    })
  }

  claim(key: string): Promise<OutboxEntry | null> {
    return this.update(key, (entry, store) => {
      if (!entry) return null
      const claimed = { ...entry, sending: true }
      store.put(claimed)
      return claimed
    })
  }

  cancel(key: string): Promise<boolean> {
    return this.update(key, (entry, store) => {
      if (!entry || entry.sending) return false
      store.delete(key)
      return true
    })
  }

  async listRejections(): Promise<Rejection[]> {
    return promised((await this.tx('readonly', REJECTIONS)).getAll() as IDBRequest<Rejection[]>)
  }

  async putRejection(rejection: Rejection): Promise<void> {
    await promised((await this.tx('readwrite', REJECTIONS)).put(rejection))
  }

  async deleteRejection(key: string): Promise<void> {
    await promised((await this.tx('readwrite', REJECTIONS)).delete(key))
  }
}
