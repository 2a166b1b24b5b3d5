import { describe, expect, it } from 'vitest'
import { summarizeAway } from './away'
import { viewOf } from './testdata'
import type { Catalog, HistoryEntry } from './types'

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
      gained: [{ item: 'logs', n: 8 }],
      used: [],
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

describe('summarizeAway with the catalog', () => {
  const catalog: Catalog = {
    skills: [{ id: 'woodcutting', name: 'Woodcutting' }, { id: 'crafting', name: 'Crafting' }],
    items: [{ id: 'logs', name: 'Logs' }, { id: 'planks', name: 'Planks' }],
    tasks: [
      { id: 'chop-wood', name: 'Chop wood', skill: 'woodcutting', levelRequired: 1, baseDurationMs: 3000, inputs: {}, outputs: { logs: 1 }, xp: 10 },
      { id: 'saw-planks', name: 'Saw planks', skill: 'crafting', levelRequired: 1, baseDurationMs: 2000, inputs: { logs: 2 }, outputs: { planks: 1 }, xp: 8 },
    ],
    levels: { max: 99, xpForLevel: [0, 0, 83] },
  }
  it('counts what was gained and used, not only the net change', () => {
    const before = viewOf({ tasks: [], repetition: null, inventory: {}, skills: {} })
    // 2 logs chopped, then 1 plank sawn from them, then the planks failed; a
    // saw-planks started since (its 2 logs taken) runs now.
    const after = viewOf({
      version: 30,
      tasks: [{ taskId: 'd', type: 'saw-planks', count: 3, done: 0, enqueuedAt: '2026-11-29T15:00:00Z' }],
      repetition: { taskId: 'd', number: 1, startedAt: '2026-11-29T15:00:00Z', dueAt: '2026-11-29T15:00:02Z', durationMs: 2000, efficiency: 1 },
      inventory: { planks: 1 },
      skills: { woodcutting: { xp: 20, level: 1 }, crafting: { xp: 8, level: 1 } },
    })
    const history = [
      entry({ taskId: 'a', count: 4, repetitionsDone: 4 }),
      entry({ taskId: 'b', type: 'saw-planks', outcome: 'failed', count: 5, repetitionsDone: 1 }),
    ]
    const s = summarizeAway(before, after, history, catalog)
    expect(s?.repetitions).toBe(5)
    expect(s?.gained).toEqual([{ item: 'Logs', n: 4 }, { item: 'Planks', n: 1 }])
    expect(s?.used).toEqual([{ item: 'Logs', n: 4 }])
    expect(s?.finished).toEqual(['Chop wood ×4'])
    expect(s?.failed).toEqual(['Saw planks'])
  })
})
