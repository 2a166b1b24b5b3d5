import { describe, expect, it } from 'vitest'
import { finishTimes, levelForXp, projectQueue, repetitionDuration } from './projection'
import { viewOf } from './testdata'
import type { Catalog } from './types'

// The curve of package domain (levels.go), as GET /api/catalog sends it.
function curve(): number[] {
  const t = [0, 0]
  let points = 0
  for (let level = 2; level <= 99; level++) {
    const l = level - 1
    points += Math.floor(l + 300 * Math.pow(2, l / 7))
    t[level] = Math.floor(points / 4)
  }
  return t
}

const catalog: Catalog = {
  skills: [
    { id: 'woodcutting', name: 'Woodcutting' },
    { id: 'crafting', name: 'Crafting' },
  ],
  items: [
    { id: 'logs', name: 'Logs' },
    { id: 'planks', name: 'Planks' },
  ],
  tasks: [
    { id: 'chop-wood', name: 'Chop wood', skill: 'woodcutting', levelRequired: 1, baseDurationMs: 3000, inputs: {}, outputs: { logs: 1 }, xp: 10 },
    { id: 'saw-planks', name: 'Saw planks', skill: 'crafting', levelRequired: 1, baseDurationMs: 2000, inputs: { logs: 2 }, outputs: { planks: 1 }, xp: 8 },
  ],
  levels: { max: 99, xpForLevel: curve() },
}

const at = (iso: string) => Date.parse(iso)

describe('projectQueue', () => {
  // viewOf: chop-wood ×10 with 3 done, repetition 4 from 14:00:09 to 14:00:12
  // (3 s: the made-up view leaves out the speed-up),
  // then saw-planks ×5 and chop-wood ×2; 12 logs, woodcutting 120 XP.

  it('leaves a view whose repetition is not due yet as it is', () => {
    const v = viewOf()
    const p = projectQueue(v, catalog, at('2026-11-29T14:00:11Z'))
    expect(p.view).toBe(v)
    expect(p.completed).toBe(0)
  })

  it('advances repetitions, each starting at the previous due time, with their rewards', () => {
    const p = projectQueue(viewOf({ skills: { woodcutting: { xp: 200, level: 3 } } }), catalog, at('2026-11-29T14:00:18.100Z'))
    // Due at :12 (rep 4), then reps 5 and 6 at level 3 (2940 ms each).
    expect(repetitionDuration(3000, 1, 3).durationMs).toBe(2940)
    expect(p.completed).toBe(3)
    expect(p.view.tasks[0].done).toBe(6)
    expect(p.view.repetition).toMatchObject({ taskId: 'a', number: 7, startedAt: '2026-11-29T14:00:17.880Z', dueAt: '2026-11-29T14:00:20.820Z', durationMs: 2940 })
    expect(p.view.inventory.logs).toBe(15)
    expect(p.view.skills.woodcutting).toEqual({ xp: 230, level: 3 })
  })

  it('finishes a task and starts the next one, taking its inputs', () => {
    const v = viewOf({ tasks: [{ taskId: 'a', type: 'chop-wood', count: 4, done: 3, enqueuedAt: '2026-11-29T14:00:00Z' }, viewOf().tasks[1]] })
    const p = projectQueue(v, catalog, at('2026-11-29T14:00:12Z'))
    expect(p.finished).toBe(1)
    expect(p.view.tasks.map((t) => t.taskId)).toEqual(['b'])
    expect(p.view.repetition).toMatchObject({ taskId: 'b', number: 1, startedAt: '2026-11-29T14:00:12.000Z', durationMs: 2000 })
    expect(p.view.inventory.logs).toBe(13 - 2)
  })

  it('fails a task whose inputs are missing and tries the next, ending idle', () => {
    const v = viewOf({
      inventory: {},
      tasks: [
        { taskId: 'a', type: 'chop-wood', count: 4, done: 3, enqueuedAt: '2026-11-29T14:00:00Z' },
        { taskId: 'b', type: 'saw-planks', count: 5, done: 0, enqueuedAt: '2026-11-29T14:00:02Z' },
      ],
    })
    const p = projectQueue(v, catalog, at('2026-11-29T14:00:30Z'))
    // One log from the last chop, saw-planks needs two: it fails.
    expect(p.finished).toBe(2)
    expect(p.view.tasks).toEqual([])
    expect(p.view.repetition).toBeNull()
    expect(p.view.state).toBe('idle')
    expect(p.view.inventory).toEqual({ logs: 1 })
  })

  it('levels up and the next repetition is faster', () => {
    // 8 XP short of level 5 (388 XP on the curve).
    expect(levelForXp(387, curve(), 99)).toBe(4)
    const v = viewOf({ skills: { woodcutting: { xp: 380, level: 4 } } })
    const p = projectQueue(v, catalog, at('2026-11-29T14:00:12Z'))
    expect(p.view.skills.woodcutting).toEqual({ xp: 390, level: 5 })
    expect(p.view.repetition?.durationMs).toBe(2880)
  })

  it('does not advance a stopped queue', () => {
    const v = viewOf({ running: false, state: 'stopped' })
    expect(projectQueue(v, catalog, at('2026-11-29T14:10:00Z')).view).toBe(v)
  })
})

describe('finishTimes', () => {
  it('ends each task by the rules: the running repetition, then at the level reached by then', () => {
    const v = viewOf({ tasks: [{ taskId: 'a', type: 'chop-wood', count: 4, done: 3, enqueuedAt: '2026-11-29T14:00:00Z' }, ...viewOf().tasks.slice(1)] })
    const ends = finishTimes(v, catalog)
    expect(ends.get('a')).toBe(at('2026-11-29T14:00:12Z'))
    // 5 planks at crafting level 1: 2 s each.
    expect(ends.get('b')).toBe(at('2026-11-29T14:00:22Z'))
    // Woodcutting has 130 XP by then: level 2 on the curve, 2,970 ms a log.
    expect(ends.get('c')).toBe(at('2026-11-29T14:00:27.940Z'))
  })

  it('is empty for a stopped queue', () => {
    expect(finishTimes(viewOf({ running: false, state: 'stopped', repetition: null }), catalog).size).toBe(0)
  })
})
