import { describe, expect, it } from 'vitest'
import { appendEvents, rebuildText, type Rebuild, type StoredEvent } from './adminFormat'

const rebuild = (r: Partial<Rebuild>): Rebuild => ({ generation: 'v1r1', version: 1, state: 'rebuilding', position: '1', done: 0, total: 0, eventsPerSecond: 0, etaMs: 0, failure: null, ...r })

describe('rebuildText', () => {
  it('says how far, how fast and how long', () => {
    expect(rebuildText(rebuild({ done: 1200, total: 3000, eventsPerSecond: 150.4, etaMs: 12000 }))).toBe('1,200 of 3,000 events (40%), 0:12 left at 150 events/s')
  })
  it('says when it has no estimate yet, and when it switches over', () => {
    expect(rebuildText(rebuild({ done: 0, total: 10 }))).toBe('0 of 10 events (0%), estimating the time left')
    expect(rebuildText(rebuild({ done: 10, total: 10, etaMs: 0 }))).toBe('10 of 10 events (100%), switching over')
  })
})

describe('appendEvents', () => {
  const ev = (version: number) => ({ id: String(version), version }) as StoredEvent
  it('drops the event a page starts at when it was already read', () => {
    expect(appendEvents([ev(1), ev(2)], [ev(2), ev(3)]).map((e) => e.version)).toEqual([1, 2, 3])
    expect(appendEvents([], [ev(1)]).map((e) => e.version)).toEqual([1])
  })
})
