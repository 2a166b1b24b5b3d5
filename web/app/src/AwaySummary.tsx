// The "while you were away" card: shown once, when the server's first view
// after the app opens shows the queue advanced since the view the app saw
// last (away.ts sums it up, with the history of the tasks finished since).
import { useCallback, useEffect, useRef, useState } from 'react'
import type { Api } from './api'
import { summarizeAway, type AwaySummary as Summary } from './away'
import type { Catalog, HistoryEntry, QueueView } from './types'

/** How long to wait for the history to show the tasks that left the queue (its projection may trail). */
const HISTORY_TRIES = 10

async function historySince(api: Api, before: QueueView, after: QueueView): Promise<HistoryEntry[]> {
  const gone = before.tasks.filter((t) => !after.tasks.some((a) => a.taskId === t.taskId)).map((t) => t.taskId)
  let entries: HistoryEntry[] = []
  for (let i = 0; i < HISTORY_TRIES; i++) {
    entries = []
    let cursor = ''
    do {
      const page = await api.history(before.playerId, { from: before.serverTime, cursor: cursor || undefined, limit: 200 })
      entries.push(...page.entries)
      cursor = page.nextCursor
    } while (cursor && entries.length < 2000)
    if (gone.every((id) => entries.some((e) => e.taskId === id))) break
    await new Promise((r) => setTimeout(r, 1000))
  }
  return entries
}

/**
 * The summary to show (null: none) and whether that is known yet: false until
 * the server's first view (not the saved one) has come and, when the queue
 * advanced meanwhile, its history. The player's screen waits for it, so that
 * the card does not appear above the queue once the queue is on screen.
 */
export function useAwaySummary(api: Api, before: QueueView | null, view: QueueView | null, catalog: Catalog | null) {
  const [summary, setSummary] = useState<Summary | null>(null)
  // Nothing to compare with (a first visit): nothing to wait for.
  const [decided, setDecided] = useState(before === null)
  const started = useRef(false)
  useEffect(() => {
    // The first view from the server (not the cached one the app opened with).
    if (started.current || !before || !view || view === before || view.serverTime === before.serverTime) return
    started.current = true
    if (view.version <= before.version) {
      setDecided(true)
      return
    }
    void historySince(api, before, view)
      .catch(() => [])
      .then((history) => {
        setSummary(summarizeAway(before, view, history, catalog))
        setDecided(true)
      })
  }, [api, before, view, catalog])
  const dismiss = useCallback(() => setSummary(null), [])
  return { summary, decided, dismiss }
}

export function AwaySummary({ summary: s, onDismiss }: { summary: Summary; onDismiss: () => void }) {
  return (
    <section className="card away" data-testid="away" aria-labelledby="away-title">
      <div className="row">
        <h2 id="away-title">While you were away</h2>
        <span className="spacer" />
        <button type="button" className="ghost small" onClick={onDismiss} data-testid="away-dismiss">
          Dismiss
        </button>
      </div>
      <ul className="away-list">
        <li data-testid="away-repetitions">
          <strong>{s.repetitions}</strong> repetition{s.repetitions === 1 ? '' : 's'} done
        </li>
        {s.skills.map((k) => (
          <li key={k.skill} data-testid="away-skill">
            {k.skill}: <strong>+{k.xp} XP</strong>
            {k.level !== undefined && <span className="good"> · reached level {k.level}</span>}
          </li>
        ))}
        {s.gained.length > 0 && <li data-testid="away-gained">Gained: {s.gained.map((i) => `${i.n} ${i.item}`).join(', ')}</li>}
        {s.used.length > 0 && <li data-testid="away-used">Used: {s.used.map((i) => `${i.n} ${i.item}`).join(', ')}</li>}
        {s.finished.length > 0 && <li data-testid="away-finished">Finished: {s.finished.join(', ')}</li>}
        {s.failed.length > 0 && (
          <li className="error-text" data-testid="away-failed">
            Failed: {s.failed.join(', ')}
          </li>
        )}
        {s.stopped && (
          <li className="error-text" data-testid="away-stopped">
            The queue stopped: {s.stopped}
          </li>
        )}
      </ul>
    </section>
  )
}
