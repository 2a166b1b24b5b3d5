// The app's state for one signed-in player: the server's queue view (polled,
// or pushed by the WebSocket once the server has it), the catalog, the outbox
// and the connection state. Components render what this hook returns and call
// its commands; every command goes through the outbox.
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react'
import { Api, ApiError, NetworkError, type Session } from './api'
import { IndexedDbOutboxStorage } from './idb'
import { cacheKey } from './localdata'
import { BrowserPeers } from './peers'
import { mergePending, rebaseOrder, type DisplayQueue } from './merge'
import { emptiedNotice, failedNotice, notifyInBackground } from './notify'
import { MemoryOutboxStorage, Outbox, StoredDismissals, type Command, type OutboxEntry } from './outbox'
import { viewClockOffset } from './progress'
import { finishTimes, projectQueue } from './projection'
import { RealtimeClient, type RealtimeState } from './realtime'
import { finishedText } from './rewards'
import type { Catalog, QueueView } from './types'

/** How often the queue is fetched while the WebSocket is not live. */
export const POLL_MS = 2000

export type Connection = 'live' | 'polling' | 'reconnecting' | 'offline'

export interface Toast {
  id: number
  text: string
  tone: 'good' | 'bad' | 'info'
}

let sharedOutbox: Outbox | null = null
/** The outbox of this browser profile, shared by its tabs (outbox.ts). */
export function outbox(): Outbox {
  if (!sharedOutbox) {
    let storage
    try {
      storage = typeof indexedDB === 'undefined' ? new MemoryOutboxStorage() : new IndexedDbOutboxStorage()
    } catch {
      storage = new MemoryOutboxStorage()
    }
    const dismissals = typeof localStorage === 'undefined' ? undefined : new StoredDismissals(localStorage)
    sharedOutbox = new Outbox(storage, undefined, BrowserPeers.make(), dismissals)
  }
  return sharedOutbox
}

const CATALOG_KEY = 'taskqueue.catalog'

function readCache<T>(key: string): T | null {
  try {
    const raw = localStorage.getItem(key)
    return raw ? (JSON.parse(raw) as T) : null
  } catch {
    return null
  }
}

function writeCache(key: string, value: unknown): void {
  try {
    localStorage.setItem(key, JSON.stringify(value))
  } catch {
    // Storage full or blocked: the cache is only a convenience.
  }
}

/** Newer wins: a higher version, or the same version seen later. */
function isNewer(next: QueueView, current: QueueView | null): boolean {
  if (!current || current.playerId !== next.playerId) return true
  if (next.version !== current.version) return next.version > current.version
  return Date.parse(next.serverTime) >= Date.parse(current.serverTime)
}

export function useTaskQueue(session: Session, onUnauthorized: () => void) {
  const playerId = session.playerId
  const api = useMemo(() => new Api(session.token), [session.token])
  const box = outbox()

  const [view, setView] = useState<QueueView | null>(() => readCache<QueueView>(cacheKey(playerId)))
  const [offset, setOffset] = useState(0)
  const [catalog, setCatalog] = useState<Catalog | null>(() => readCache<Catalog>(CATALOG_KEY))
  const [reachable, setReachable] = useState(true)
  const [browserOnline, setBrowserOnline] = useState(() => navigator.onLine)
  const [realtime, setRealtime] = useState<RealtimeState>('connecting')
  const [toasts, setToasts] = useState<Toast[]>([])
  const viewRef = useRef<QueueView | null>(view)
  const liveRef = useRef(false)
  const removedByMe = useRef(new Set<string>())
  const catalogRef = useRef(catalog)
  catalogRef.current = catalog

  const version = useSyncExternalStore(
    useCallback((cb) => box.subscribe(cb), [box]),
    () => box.version,
  )
  const pending = useMemo(() => box.pendingFor(playerId), [box, playerId, version])
  const rejections = useMemo(() => box.rejected().filter((r) => r.entry.playerId === playerId), [box, playerId, version])
  const inFlight = box.inFlight

  const toast = useCallback((text: string, tone: Toast['tone'] = 'info') => {
    const id = Date.now() + Math.random()
    setToasts((t) => [...t.slice(-3), { id, text, tone }])
    setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), 5000)
  }, [])

  const taskName = useCallback((type: string) => catalogRef.current?.tasks.find((t) => t.id === type)?.name ?? type, [])

  const accept = useCallback(
    (next: QueueView, receivedAt: number) => {
      const prev = viewRef.current
      if (!isNewer(next, prev)) return
      if (prev && prev.playerId === next.playerId && next.version > prev.version) {
        // With polling alone a finished task is one that left the queue after
        // it had started, and that this player did not remove. (Once the
        // WebSocket is live, TaskCompleted and TaskFailed events say it exactly.)
        const still = new Set(next.tasks.map((t) => t.taskId))
        for (const [i, t] of prev.tasks.entries()) {
          if (still.has(t.taskId)) continue
          if (removedByMe.current.delete(t.taskId)) continue
          if (liveRef.current) continue
          const started = t.done > 0 || (i === 0 && prev.repetition?.taskId === t.taskId)
          if (started) toast(finishedText(catalogRef.current, t.type, t.count), 'good')
        }
        for (const [skill, s] of Object.entries(next.skills)) {
          const before = prev.skills[skill]?.level ?? 1
          if (s.level > before) {
            const name = catalogRef.current?.skills.find((k) => k.id === skill)?.name ?? skill
            toast(`${name} reached level ${s.level}`, 'good')
          }
        }
        if (next.stoppedReason && next.stoppedReason !== prev.stoppedReason && next.tasks.length > 0) toast(`Queue stopped: ${next.stoppedReason}`, 'bad')
        // In the background, a notification says the queue ran dry.
        notifyInBackground(emptiedNotice(prev, next))
      }
      viewRef.current = next
      setView(next)
      setOffset(viewClockOffset(next, receivedAt))
      writeCache(cacheKey(next.playerId), next)
    },
    [toast, taskName],
  )

  const handleError = useCallback(
    (err: unknown) => {
      if (err instanceof NetworkError) setReachable(false)
      else if (err instanceof ApiError && err.status === 401) onUnauthorized()
    },
    [onUnauthorized],
  )

  /**
   * Fetches the queue; true when it got an answer. minVersion: the version a
   * command of ours answered, so the read shows our write (the server reads
   * its read side, a few milliseconds behind the commands).
   */
  const refresh = useCallback(async (minVersion?: number): Promise<boolean> => {
    try {
      const v = await api.queue(playerId, undefined, minVersion)
      accept(v, Date.now())
      setReachable(true)
      return true
    } catch (err) {
      handleError(err)
      return false
    }
  }, [api, playerId, accept, handleError])

  const send = useCallback(
    async (entry: OutboxEntry) => {
      const c = entry.command
      switch (c.kind) {
        case 'enqueue': {
          // Read our own write: the answer's ETag is the version to wait for.
          const { version } = await api.enqueue(playerId, { type: c.type, count: c.count, ...(c.position === undefined ? {} : { position: c.position }) }, entry.key)
          await refresh(version)
          break
        }
        case 'remove':
          removedByMe.current.add(c.taskId)
          accept(await api.remove(playerId, c.taskId, entry.key), Date.now())
          break
        case 'stop':
          accept(await api.stop(playerId, entry.key), Date.now())
          break
        case 'start':
          accept(await api.start(playerId, entry.key), Date.now())
          break
        case 'reorder': {
          // The order was made against the view the player saw; rebase it on the
          // server's current queue so it is a permutation the server accepts.
          for (let attempt = 1; ; attempt++) {
            const current = await api.queue(playerId)
            accept(current, Date.now())
            const order = rebaseOrder(current, c.order)
            if (order.length < 2) break
            try {
              accept(await api.reorder(playerId, order, entry.key), Date.now())
              break
            } catch (err) {
              // The queue moved on between our read and the server's decision
              // (a repetition fell due and its task left the head): read again
              // and retry once. A refused command stores nothing, so the same
              // idempotency key is still free.
              const raced = err instanceof ApiError && err.status === 400 && err.problem.field === 'order'
              if (!raced || attempt >= 2) throw err
              await new Promise((r) => setTimeout(r, 300))
            }
          }
          break
        }
      }
      setReachable(true)
    },
    [api, playerId, accept, refresh],
  )

  const flush = useCallback(async () => {
    const r = await box.flush(playerId, send)
    if (r.blockedBy !== undefined) handleError(r.blockedBy)
    if (r.rejected > 0) {
      toast(r.rejected === 1 ? 'A command was rejected' : `${r.rejected} commands were rejected`, 'bad')
      await refresh()
    }
  }, [box, playerId, send, handleError, toast, refresh])

  const run = useCallback(
    async (command: Command) => {
      await box.add(playerId, command)
      await flush()
    },
    [box, playerId, flush],
  )

  // Catalog: once per session, cached for offline reloads.
  useEffect(() => {
    let alive = true
    api
      .catalog()
      .then((c) => {
        if (!alive) return
        setCatalog(c)
        writeCache(CATALOG_KEY, c)
      })
      .catch(() => {})
    return () => {
      alive = false
    }
  }, [api])

  // First load: the stored outbox, then the queue, then send what waited.
  useEffect(() => {
    void box.load().then(async () => {
      if (await refresh()) await flush()
    })
  }, [box, refresh, flush])

  // Browser online/offline.
  useEffect(() => {
    const on = () => {
      setBrowserOnline(true)
      void refresh().then((ok) => { if (ok) void flush() })
      rtRef.current?.kick()
    }
    const off = () => {
      setBrowserOnline(false)
      setReachable(false)
    }
    window.addEventListener('online', on)
    window.addEventListener('offline', off)
    return () => {
      window.removeEventListener('online', on)
      window.removeEventListener('offline', off)
    }
  }, [refresh, flush])

  const refreshRef = useRef(refresh)
  refreshRef.current = refresh

  // The WebSocket (issue 6). Until the server has /api/ws it ends 'unavailable'.
  const rtRef = useRef<RealtimeClient | null>(null)
  useEffect(() => {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:'
    const client = new RealtimeClient({
      url: `${proto}//${location.host}/api/ws`,
      token: session.token,
      playerId,
      onQueue: (v) => accept(v, Date.now()),
      onEvent: (e) => {
        // Data fields as in package domain's TaskCompleted and TaskFailed.
        const name = taskName(String(e.data.type ?? ''))
        if (e.type === 'TaskCompleted') toast(finishedText(catalogRef.current, String(e.data.type ?? ''), Number(e.data.count ?? 0)), 'good')
        if (e.type === 'TaskFailed') {
          toast(`Failed: ${name}: ${String(e.data.reason ?? '')}`, 'bad')
          notifyInBackground(failedNotice(e, taskName))
        }
      },
      onState: (s) => {
        const wasLive = liveRef.current
        liveRef.current = s === 'live'
        setRealtime(s)
        // A live socket that drops usually means the server went away: ask
        // now rather than at the next poll, so the pill says so at once.
        if (wasLive && s === 'reconnecting') void refreshRef.current()
      },
    })
    rtRef.current = client
    client.start()
    return () => {
      client.stop()
      rtRef.current = null
    }
  }, [session.token, playerId, accept, toast, taskName])

  // Polling while the WebSocket is not live, and also while the last request
  // found no server or commands wait (a socket can outlive a network change,
  // so a live socket alone does not prove that requests go through).
  const live = realtime === 'live'
  const hasPending = pending.length > 0
  useEffect(() => {
    if (live && reachable && !hasPending) return
    const id = setInterval(() => {
      void refresh().then((ok) => {
        if (ok && box.pendingFor(playerId).length > 0) void flush()
      })
    }, POLL_MS)
    return () => clearInterval(id)
  }, [live, reachable, hasPending, refresh, flush, box, playerId])

  // Fetch right when the running repetition is due.
  const dueAt = view?.repetition?.dueAt
  useEffect(() => {
    if (!dueAt) return
    const wait = Date.parse(dueAt) - (Date.now() + offset) + 250
    if (wait < 0 || wait > 24 * 3600 * 1000) return
    const id = setTimeout(() => void refresh(), wait)
    return () => clearTimeout(id)
  }, [dueAt, offset, refresh])

  const connection: Connection = !browserOnline || !reachable ? (browserOnline ? 'reconnecting' : 'offline') : live ? 'live' : 'polling'

  // While the server cannot be asked, the queue goes on there: project it
  // forward by the rules (projection.ts), shown as an estimate until the
  // server's next view replaces it.
  const cut = connection === 'offline' || connection === 'reconnecting'
  const [projectAt, setProjectAt] = useState(() => Date.now())
  const advancing = cut && !!view?.running && !!view.repetition
  useEffect(() => {
    if (!advancing) return
    const id = setInterval(() => setProjectAt(Date.now()), 250)
    return () => clearInterval(id)
  }, [advancing])
  const projection = useMemo(
    () => (advancing && view && catalog ? projectQueue(view, catalog, projectAt + offset) : null),
    [advancing, view, catalog, projectAt, offset],
  )
  const estimated = (projection?.completed ?? 0) > 0
  const shown = estimated && projection ? projection.view : view

  const display: DisplayQueue | null = useMemo(() => (shown ? mergePending(shown, pending) : null), [shown, pending])
  // When each task ends (local clock, ms), by the rules, from the view shown.
  const ends = useMemo(() => {
    const out = new Map<string, number>()
    if (shown && catalog) for (const [id, at] of finishTimes(shown, catalog)) out.set(id, at - offset)
    return out
  }, [shown, catalog, offset])

  const commands = useMemo(
    () => ({
      enqueue: (type: string, count: number, position?: number) =>
        run({ kind: 'enqueue', type, count, ...(position === undefined ? {} : { position }) }),
      remove: (taskId: string, label?: string) => run({ kind: 'remove', taskId, label }),
      stop: () => run({ kind: 'stop' }),
      start: () => run({ kind: 'start' }),
      reorder: (order: string[]) => run({ kind: 'reorder', order }),
      cancel: (key: string) => box.cancel(key),
      dismiss: (key: string) => box.dismiss(key),
      retry: () => void refresh().then((ok) => { if (ok) void flush() }),
    }),
    [run, box, refresh, flush],
  )

  /** view: the server's, or projected forward while it cannot be asked (then estimated is true). */
  return { api, view: shown, estimated, display, offset, ends, catalog, pending, rejections, inFlight, connection, realtime, toasts, commands }
}
export type TaskQueueState = ReturnType<typeof useTaskQueue>
