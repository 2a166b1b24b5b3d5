import { describe, expect, it } from 'vitest'
import { mergeNewest } from './HistoryPanel'
import type { HistoryEntry } from './types'

// Entry i finished i seconds before a fixed moment: a higher i is older.
function entry(i: number): HistoryEntry {
  return {
    taskId: `t${i}`,
    type: 'chop-wood',
    outcome: 'cancelled',
    reason: '',
    count: 1,
    repetitionsDone: 0,
    enqueuedAt: '2026-12-06T00:00:00Z',
    startedAt: null,
    finishedAt: new Date(Date.parse('2026-12-06T12:00:00Z') - i * 1000).toISOString(),
    durationMs: null,
    xp: 0,
    itemsGranted: null,
    itemsConsumed: null,
    efficiency: null,
  } as HistoryEntry
}
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => entry(from + k))
const ids = (l: HistoryEntry[]) => l.map((e) => e.taskId)

describe('mergeNewest', () => {
  it('keeps the pages loaded after the first when nothing new finished', () => {
    const got = mergeNewest({ entries: range(0, 150), next: 'c150' }, range(0, 50), 'c50')
    expect(ids(got.entries)).toEqual(ids(range(0, 150)))
    expect(got.next).toBe('c150')
  })

  it('returns the very same object when nothing new finished, so nothing re-renders', () => {
    const old = { entries: range(0, 150), next: 'c150' }
    expect(mergeNewest(old, range(0, 50), 'c50')).toBe(old)
    const one = { entries: range(0, 50), next: 'c50' }
    expect(mergeNewest(one, range(0, 50), 'c50')).toBe(one)
    expect(mergeNewest(one, range(-1, 49), 'c49')).not.toBe(one)
  })

  it('puts newly finished entries on top, once each', () => {
    // Entries -3..-1 finished since: the fresh page is -3..46.
    const got = mergeNewest({ entries: range(0, 150), next: 'c150' }, range(-3, 47), 'c47')
    expect(ids(got.entries)).toEqual(ids(range(-3, 150)))
    expect(got.next).toBe('c150')
  })

  it('starts over when the fresh page does not reach what is loaded', () => {
    const got = mergeNewest({ entries: range(0, 150), next: 'c150' }, range(-100, -50), 'c-50')
    expect(ids(got.entries)).toEqual(ids(range(-100, -50)))
    expect(got.next).toBe('c-50')
  })

  it('takes the fresh page and its cursor when only one page was loaded', () => {
    const got = mergeNewest({ entries: range(0, 50), next: 'c50' }, range(-1, 49), 'c49')
    expect(ids(got.entries)).toEqual(ids(range(-1, 49)))
    expect(got.next).toBe('c49')
  })
})
