import { describe, expect, it } from 'vitest'
import { checkFeed, feedWarning, type FeedStart } from './feed'
import { projectQueue } from './projection'
import { viewOf } from './testdata'
import type { Catalog, QueueView } from './types'

// A flat curve is enough here: level 2 at 1,000 XP, never reached.
const catalog: Catalog = {
  skills: [
    { id: 'woodcutting', name: 'Woodcutting' },
    { id: 'crafting', name: 'Crafting' },
    { id: 'fishing', name: 'Fishing' },
    { id: 'cooking', name: 'Cooking' },
  ],
  items: [
    { id: 'logs', name: 'Logs' },
    { id: 'planks', name: 'Planks' },
    { id: 'raw-shrimp', name: 'Raw shrimp' },
    { id: 'cooked-shrimp', name: 'Cooked shrimp' },
  ],
  tasks: [
    { id: 'chop-wood', name: 'Chop wood', skill: 'woodcutting', levelRequired: 1, baseDurationMs: 3000, inputs: {}, outputs: { logs: 1 }, xp: 10 },
    { id: 'saw-planks', name: 'Saw planks', skill: 'crafting', levelRequired: 1, baseDurationMs: 2000, inputs: { logs: 2 }, outputs: { planks: 1 }, xp: 8 },
    { id: 'catch-shrimp', name: 'Catch shrimp', skill: 'fishing', levelRequired: 1, baseDurationMs: 2500, inputs: {}, outputs: { 'raw-shrimp': 1 }, xp: 8 },
    { id: 'cook-shrimp', name: 'Cook shrimp', skill: 'cooking', levelRequired: 1, baseDurationMs: 2000, inputs: { 'raw-shrimp': 1, logs: 1 }, outputs: { 'cooked-shrimp': 1 }, xp: 10 },
  ],
  levels: { max: 2, xpForLevel: [0, 0, 1000] },
}

const task = (taskId: string, type: string, count: number, done = 0) => ({ taskId, type, count, done })

function start(partial: Partial<FeedStart> = {}): FeedStart {
  return { tasks: [], repetition: null, inventory: {}, skills: {}, ...partial }
}

describe('checkFeed', () => {
  it("the issue's example: saw planks ×5 needs 10 logs, the queue makes 6", () => {
    const c = checkFeed(start({ tasks: [task('a', 'chop-wood', 6)] }), catalog, 'saw-planks', 5)
    expect(c.runs).toBe(3)
    expect(c.shortfalls).toEqual([{ item: 'logs', need: 10, have: 0, fromQueue: 6 }])
    expect(feedWarning(catalog, 'saw-planks', c)).toBe('Saw planks ×5 needs 10 Logs: you have 0 and the queue makes 6 before it. Only 3 of 5 can run.')
  })

  it('is quiet when the queue feeds the whole chain', () => {
    const c = checkFeed(start({ tasks: [task('a', 'chop-wood', 10)] }), catalog, 'saw-planks', 5)
    expect(c).toEqual({ runs: 5, count: 5, shortfalls: [], starves: [] })
    expect(feedWarning(catalog, 'saw-planks', c)).toBeNull()
  })

  it('counts what the player owns, and the repetition running now (its inputs are taken, its outputs are coming)', () => {
    const s = start({
      tasks: [task('a', 'chop-wood', 4, 3)],
      repetition: { taskId: 'a', number: 4, startedAt: '2026-11-29T14:00:09Z', dueAt: '2026-11-29T14:00:12Z', durationMs: 3000, efficiency: 1 },
      inventory: { logs: 3 },
    })
    // 3 owned + the running repetition's log = 4: two planks, not three.
    const c = checkFeed(s, catalog, 'saw-planks', 3)
    expect(c.runs).toBe(2)
    expect(c.shortfalls).toEqual([{ item: 'logs', need: 6, have: 3, fromQueue: 1 }])
  })

  it('says when the tasks before it use up what it needs, and when it would fail at once', () => {
    const s = start({ tasks: [task('a', 'saw-planks', 2)], inventory: { logs: 4 } })
    const c = checkFeed(s, catalog, 'cook-shrimp', 1)
    expect(c.runs).toBe(0)
    expect(c.shortfalls).toEqual([
      { item: 'raw-shrimp', need: 1, have: 0, fromQueue: 0 },
      { item: 'logs', need: 1, have: 4, fromQueue: -4 },
    ])
    expect(feedWarning(catalog, 'cook-shrimp', c)).toBe(
      'Cook shrimp ×1 needs 1 Raw shrimp: you have 0; 1 Logs: you have 4 and the tasks before it use 4. It would fail at once.',
    )
  })

  it('inserted before a task, it tells whom it would leave short', () => {
    const s = start({ tasks: [task('a', 'chop-wood', 4), task('b', 'saw-planks', 2)] })
    // Sawing 1 plank before b takes 2 of the 4 logs b needed.
    const c = checkFeed(s, catalog, 'saw-planks', 1, 1)
    expect(c.runs).toBe(1)
    expect(c.shortfalls).toEqual([])
    expect(c.starves).toEqual([{ taskId: 'b', type: 'saw-planks', lost: 1 }])
    expect(feedWarning(catalog, 'saw-planks', c)).toBe('Saw planks after it would run 1 fewer.')
  })

  it('follows the rules of the projection: a failed task leaves what it could not use', () => {
    // The projection, run to the end, agrees with the check on what the queue makes.
    const v: QueueView = viewOf({
      inventory: {},
      skills: {},
      tasks: [
        { taskId: 'a', type: 'chop-wood', count: 4, done: 3, enqueuedAt: '2026-11-29T14:00:00Z' },
        { taskId: 'b', type: 'saw-planks', count: 5, done: 0, enqueuedAt: '2026-11-29T14:00:02Z' },
        { taskId: 'c', type: 'chop-wood', count: 2, done: 0, enqueuedAt: '2026-11-29T14:00:03Z' },
      ],
    })
    const end = projectQueue(v, catalog, Number.MAX_SAFE_INTEGER).view
    const c = checkFeed({ tasks: v.tasks, repetition: v.repetition, inventory: v.inventory, skills: v.skills }, catalog, 'saw-planks', 2)
    // b fails at its first repetition (1 log): c chops 2 more, 3 in all: one plank.
    expect(end.inventory).toEqual({ logs: 3 })
    expect(c.runs).toBe(1)
    expect(c.shortfalls).toEqual([{ item: 'logs', need: 4, have: 0, fromQueue: 3 }])
  })
})
