// The player's finished tasks of the last days (GET /api/queue/{id}/history)
// with filters, and their efficiency over time as a small chart. The panel
// hides itself when the server has no read side (404 or 501).
import { memo, useEffect, useMemo, useRef, useState } from 'react'
import { Api, ApiError } from './api'
import { formatDuration } from './progress'
import { countRender } from './renders'
import type { Catalog, HistoryEntry } from './types'

const PAGE = 50

const key = (e: HistoryEntry) => e.taskId + e.finishedAt

/** Entries not yet in list, appended. */
function appendNew(list: HistoryEntry[], more: HistoryEntry[]): HistoryEntry[] {
  const have = new Set(list.map(key))
  return [...list, ...more.filter((e) => !have.has(key(e)))]
}

/**
 * The newest page (fresh, with its cursor next) merged into what is loaded:
 * the new entries go on top and the older pages stay. When fresh does not
 * reach the loaded entries (more than a page finished since), the gap cannot
 * be filled: start over from fresh.
 */
export function mergeNewest(old: { entries: HistoryEntry[]; next: string }, fresh: HistoryEntry[], next: string): { entries: HistoryEntry[]; next: string } {
  const keys = new Set(fresh.map(key))
  let last = -1
  old.entries.forEach((e, i) => {
    if (keys.has(key(e))) last = i
  })
  const merged = last < 0 || old.entries.length <= fresh.length ? { entries: fresh, next } : { entries: [...fresh, ...old.entries.slice(last + 1)], next: old.next }
  // Nothing new (the usual case at a repetition): the same object, so nothing re-renders.
  const same = merged.next === old.next && merged.entries.length === old.entries.length && merged.entries.every((e, i) => key(e) === key(old.entries[i]))
  return same ? old : merged
}

// One formatter for every row (toLocaleString builds one per call).
const when = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: '2-digit', second: '2-digit' })

const RANGES: Array<[string, number]> = [
  ['24 hours', 1],
  ['7 days', 7],
  ['30 days', 30],
]

export const HistoryPanel = memo(function HistoryPanel({ api, playerId, catalog, version }: { api: Api; playerId: string; catalog: Catalog | null; version: number | undefined }) {
  countRender('HistoryPanel')
  const [type, setType] = useState('')
  const [days, setDays] = useState(30)
  // The entries loaded so far (newest first) and the cursor after the last.
  const [list, setList] = useState<{ entries: HistoryEntry[]; next: string }>({ entries: [], next: '' })
  const { entries, next } = list
  const [hidden, setHidden] = useState(false)
  const [error, setError] = useState('')

  // Refetch when the filters change and, at most every few seconds, when the
  // queue moved (a task may have finished).
  const [tick, setTick] = useState(0)
  useEffect(() => {
    const id = setTimeout(() => setTick((t) => t + 1), 1500)
    return () => clearTimeout(id)
  }, [version])

  // A refetch after the queue moved merges the newest page into what is
  // loaded, so the pages opened with "Show more" stay; a change of filters
  // starts over.
  const filters = `${playerId}\n${type}\n${days}`
  const loadedFor = useRef('')
  useEffect(() => {
    const ctl = new AbortController()
    const from = new Date(Date.now() - days * 86400000).toISOString()
    api
      .history(playerId, { type: type || undefined, from, limit: PAGE }, ctl.signal)
      .then((page) => {
        const fresh = page.entries ?? []
        const next = page.nextCursor ?? ''
        const same = loadedFor.current === filters
        loadedFor.current = filters
        setList((old) => (same ? mergeNewest(old, fresh, next) : { entries: fresh, next }))
        setError('')
      })
      .catch((err) => {
        if (ctl.signal.aborted) return
        if (err instanceof ApiError && (err.status === 404 || err.status === 501)) setHidden(true)
        else setError(err instanceof Error ? err.message : String(err))
      })
    return () => ctl.abort()
  }, [api, playerId, type, days, tick, filters])

  async function more() {
    const from = new Date(Date.now() - days * 86400000).toISOString()
    const at = filters
    try {
      const page = await api.history(playerId, { type: type || undefined, from, cursor: next, limit: PAGE })
      if (loadedFor.current !== at) return
      setList((old) => (old.next === next ? { entries: appendNew(old.entries, page.entries ?? []), next: page.nextCursor ?? '' } : old))
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err))
    }
  }

  const names = useMemo(() => new Map(catalog?.tasks.map((t) => [t.id, t.name]) ?? []), [catalog])
  const items = useMemo(() => new Map(catalog?.items.map((t) => [t.id, t.name]) ?? []), [catalog])
  if (hidden) return null
  return (
    <div className="card history" data-testid="history">
      <div className="catalog-head">
        <h2>History</h2>
        <div className="row">
          <select value={type} onChange={(e) => setType(e.target.value)} aria-label="Task type" data-testid="history-type">
            <option value="">All tasks</option>
            {catalog?.tasks.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
          <select value={days} onChange={(e) => setDays(Number(e.target.value))} aria-label="Time range">
            {RANGES.map(([label, d]) => (
              <option key={d} value={d}>
                {label}
              </option>
            ))}
          </select>
        </div>
      </div>
      <EfficiencyChart entries={entries} />
      {error && <p className="error tiny">{error}</p>}
      {entries.length === 0 ? <p className="muted">No finished tasks in this range yet.</p> : <HistoryList entries={entries} names={names} items={items} />}
      {next && (
        <button type="button" className="ghost small" onClick={() => void more()} data-testid="history-more">
          Show more
        </button>
      )}
    </div>
  )
})

/** The entries: re-rendered only when the list or the catalog changes, each row only when it is new. */
const HistoryList = memo(function HistoryList({ entries, names, items }: { entries: HistoryEntry[]; names: Map<string, string>; items: Map<string, string> }) {
  countRender('HistoryList')
  return (
    <ul className="history-list" tabIndex={0} aria-label="History entries">
      {entries.map((e) => (
        <HistoryRow key={key(e)} entry={e} names={names} items={items} />
      ))}
    </ul>
  )
})

/** An entry never changes once written: a row with the same key and catalog is the same row. */
const HistoryRow = memo(
  function HistoryRow({ entry: e, names, items }: { entry: HistoryEntry; names: Map<string, string>; items: Map<string, string> }) {
    countRender('HistoryRow')
    return (
      <li data-testid="history-entry" data-key={key(e)} data-outcome={e.outcome}>
        <div className="row">
          <span className={`outcome outcome-${e.outcome}`}>{e.outcome}</span>
          <span className="task-name">{names.get(e.type) ?? e.type}</span>
          <span className="muted">
            {e.repetitionsDone}/{e.count}
          </span>
          <span className="spacer" />
          <time className="tiny muted" dateTime={e.finishedAt}>
            {when.format(new Date(e.finishedAt))}
          </time>
        </div>
        <div className="tiny muted">
          {e.xp > 0 && `+${e.xp} XP`}
          {e.itemsGranted && Object.keys(e.itemsGranted).length > 0 && ` · ${Object.entries(e.itemsGranted).map(([k, n]) => `${n} ${items.get(k) ?? k}`).join(', ')}`}
          {e.durationMs != null && ` · ${formatDuration(e.durationMs)}`}
          {e.efficiency != null && ` · efficiency ${e.efficiency.toFixed(2)}`}
          {e.reason && ` · ${e.reason}`}
        </div>
      </li>
    )
  },
  (a, b) => key(a.entry) === key(b.entry) && a.entry.outcome === b.entry.outcome && a.names === b.names && a.items === b.items,
)

/** Efficiency (base duration ÷ actual) of finished tasks over time: a small SVG line. */
export const EfficiencyChart = memo(function EfficiencyChart({ entries }: { entries: HistoryEntry[] }) {
  const points = useMemo(
    () =>
      entries
        .filter((e) => e.efficiency != null && e.outcome === 'completed')
        .map((e) => ({ t: Date.parse(e.finishedAt), v: e.efficiency as number }))
        .sort((a, b) => a.t - b.t),
    [entries],
  )
  if (points.length < 2) return null
  const W = 300
  const H = 60
  const t0 = points[0].t
  const t1 = points[points.length - 1].t
  // A margin around the values so a flat line sits in the middle, not on an edge.
  const lo = Math.min(...points.map((p) => p.v)) - 0.05
  const hi = Math.max(...points.map((p) => p.v)) + 0.05
  const x = (t: number) => (t1 === t0 ? W / 2 : ((t - t0) / (t1 - t0)) * (W - 8) + 4)
  const y = (v: number) => H - 4 - ((v - lo) / (hi - lo)) * (H - 8)
  const line = points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ')
  const last = points[points.length - 1].v
  return (
    <figure className="chart" data-testid="efficiency-chart">
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`Efficiency over time, latest ${last.toFixed(2)}`}>
        {lo < 1 && hi > 1 && <line x1="0" x2={W} y1={y(1)} y2={y(1)} className="chart-base" />}
        <polyline points={line} className="chart-line" />
      </svg>
      <figcaption className="tiny muted">
        Efficiency (base ÷ actual duration): latest <strong>{last.toFixed(2)}</strong> over {points.length} tasks
      </figcaption>
    </figure>
  )
})
