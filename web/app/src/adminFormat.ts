// Pure helpers of the admin view (AdminPanel and its screens), unit-tested
// in adminFormat.test.ts.
import { formatDuration } from './progress'
import type { components } from './api-types'

export type ProjectionState = components['schemas']['ProjectionState']
export type Rebuild = NonNullable<ProjectionState['rebuild']>
export type StoredEvent = components['schemas']['StoredEvent']

/** A rebuild's progress in words: "1,200 of 3,000 events (40%), 0:12 left at 150 events/s". */
export function rebuildText(r: Rebuild): string {
  const pct = r.total > 0 ? Math.min(100, Math.floor((r.done / r.total) * 100)) : 0
  const rate = r.eventsPerSecond > 0 ? ` at ${Math.round(r.eventsPerSecond).toLocaleString('en')} events/s` : ''
  const eta = r.done >= r.total && r.total > 0 ? 'switching over' : r.etaMs > 0 ? `${formatDuration(r.etaMs)} left` : 'estimating the time left'
  return `${r.done.toLocaleString('en')} of ${r.total.toLocaleString('en')} events (${pct}%), ${eta}${rate}`
}

/**
 * Appends a page of events (read oldest first from a position, inclusive) to
 * those already read, without the one the page starts at when it repeats.
 */
export function appendEvents(have: StoredEvent[], page: StoredEvent[]): StoredEvent[] {
  const last = have[have.length - 1]
  return have.concat(last ? page.filter((e) => e.version > last.version) : page)
}
