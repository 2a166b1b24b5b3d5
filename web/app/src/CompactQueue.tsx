// On a phone the queue is compact: the running task and the next one, then a
// button to show the rest, so the catalog is not thousands of pixels down.
// It wraps the queue panel; the waiting rows past the first are hidden by
// CSS while it is collapsed (styles.css, .queue-compact).
import { useState, useSyncExternalStore, type ReactNode } from 'react'
import type { TaskQueueState } from './useTaskQueue'

export const PHONE_QUERY = '(max-width: 640px)'

function subscribe(query: string) {
  return (cb: () => void) => {
    const m = window.matchMedia(query)
    m.addEventListener('change', cb)
    return () => m.removeEventListener('change', cb)
  }
}

/** Whether the media query matches now, and again when it changes. */
export function useMediaQuery(query: string): boolean {
  return useSyncExternalStore(
    subscribe(query),
    () => window.matchMedia(query).matches,
    () => false,
  )
}

/** How many tasks a collapsed queue shows: the running one and the next. */
export const COMPACT_SHOWN = 2

export function CompactQueue({ q, children }: { q: TaskQueueState; children: ReactNode }) {
  const phone = useMediaQuery(PHONE_QUERY)
  const [expanded, setExpanded] = useState(false)
  const total = q.display?.tasks.length ?? 0
  const hidden = Math.max(0, total - COMPACT_SHOWN)
  const collapsed = phone && !expanded && hidden > 0
  return (
    <section
      id="queue-area"
      className={`area-queue ${collapsed ? 'queue-compact' : ''}`}
      data-testid="queue-area"
      data-compact={collapsed}
      // The keyboard reaching the waiting list opens it: moving a task by
      // keyboard needs the places it can move to (a tap does not open it).
      onFocus={(e) => {
        if (collapsed && e.target.closest('.waiting') && e.target.matches(':focus-visible')) setExpanded(true)
      }}
    >
      {children}
      {phone && hidden > 0 && (
        <button type="button" className="queue-toggle" aria-expanded={expanded} aria-controls="queue-area" onClick={() => setExpanded(!expanded)} data-testid="queue-toggle">
          {expanded ? 'Show less of the queue' : `Show ${hidden} more ${hidden === 1 ? 'task' : 'tasks'}`}
        </button>
      )}
    </section>
  )
}
