import { describe, expect, it } from 'vitest'
import { summarizeAway } from './away'
import { viewOf } from './testdata'
import type { HistoryEntry } from './types'

const entry = (e: Partial<HistoryEntry>): HistoryEntry => ({
  taskId: 'a', type: 'chop-wood', outcome: 'completed', reason: '', count: 10, repetitionsDone: 10, enqueuedAt: '2026-11-29T14:00:00Z',
  startedAt: '2026-11-29T14:00:00Z', finishedAt: '2026-11-29T15:00:00Z', durationMs: 1, xp: 100, itemsGranted: {}, itemsConsumed: {}, efficiency: 1, ...e,
})

describe('summarizeAway', () => {
  const before = viewOf() // a: chop-wood 3 of 10 done; b: saw-planks ×5; c: chop-wood ×2; 12 logs; woodcutting 120 XP, level 3
  it('counts repetitions, XP, levels, items, finished and failed tasks since the last view', () => {
    const after = viewOf({
      version: 40,
      tasks: [{ taskId: 'c', type: 'chop-wood', count: 2, done: 1, enqueuedAt: '2026-11-29T14:00:03Z' }],
      skills: { woodcutting: { xp: 200, level: 4 }, crafting: { xp: 0, level: 1 } },
      inventory: { logs: 20 },
    })
    const history = [
      entry({ taskId: 'a', repetitionsDone: 10 }),
      entry({ taskId: 'b', type: 'saw-planks', outcome: 'failed', reason: 'missing logs', count: 5, repetitionsDone: 0 }),
      entry({ taskId: 'old', finishedAt: '2026-11-29T13:00:00Z' }), // before the last view
      entry({ taskId: 'x', outcome: 'cancelled' }),
    ]
    expect(summarizeAway(before, after, history, null)).toEqual({
      repetitions: 7 + 1,
      skills: [{ skill: 'woodcutting', xp: 80, level: 4 }],
      items: [{ item: 'logs', change: 8 }],
      finished: ['chop-wood ×10'],
      failed: ['saw-planks (missing logs)'],
      stopped: '',
    })
  })
  it('says when the offline cap stopped the queue', () => {
    const after = viewOf({ version: 20, running: false, state: 'stopped', stoppedReason: 'offline progress is capped at 24h0m0s', tasks: [{ ...before.tasks[0], done: 5 }] })
    expect(summarizeAway(before, after, [], null)).toMatchObject({ repetitions: 2, stopped: 'offline progress is capped at 24h0m0s' })
  })
  it('is null when nothing advanced', () => {
    expect(summarizeAway(before, before, [], null)).toBeNull()
    expect(summarizeAway(before, viewOf({ version: 15 }), [], null)).toBeNull()
  })
})
