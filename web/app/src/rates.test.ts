import { describe, expect, it } from 'vitest'
import { formatRate, runningRates } from './rates'
import { viewOf } from './testdata'
import type { Catalog } from './types'

const catalog: Catalog = {
  skills: [{ id: 'woodcutting', name: 'Woodcutting' }, { id: 'crafting', name: 'Crafting' }],
  items: [{ id: 'logs', name: 'Logs' }, { id: 'planks', name: 'Planks' }],
  tasks: [
    { id: 'chop-wood', name: 'Chop wood', skill: 'woodcutting', levelRequired: 1, baseDurationMs: 3000, inputs: {}, outputs: { logs: 1 }, xp: 10 },
    { id: 'saw-planks', name: 'Saw planks', skill: 'crafting', levelRequired: 1, baseDurationMs: 2000, inputs: { logs: 2 }, outputs: { planks: 1 }, xp: 8 },
  ],
  levels: { max: 99, xpForLevel: [0, 0, 83] },
}

describe('runningRates', () => {
  it('uses the running repetition’s duration (the level’s speed-up included)', () => {
    const r = runningRates(viewOf(), catalog)
    expect(r).toMatchObject({ xpPerHour: 12000, skill: 'woodcutting', makes: { logs: 1200 }, uses: {} })
    const faster = runningRates(viewOf({ repetition: { ...viewOf().repetition!, durationMs: 2940 } }), catalog)
    expect(faster?.makes.logs).toBeCloseTo(1224.49, 2)
  })

  it('counts inputs used per hour too', () => {
    const v = viewOf({
      tasks: [viewOf().tasks[1]],
      repetition: { taskId: 'b', number: 1, startedAt: '2026-11-29T14:00:09Z', dueAt: '2026-11-29T14:00:11Z', durationMs: 2000, efficiency: 1 },
    })
    expect(runningRates(v, catalog)).toMatchObject({ xpPerHour: 14400, makes: { planks: 1800 }, uses: { logs: 3600 } })
  })

  it('is null when nothing runs', () => {
    expect(runningRates(viewOf({ running: false, state: 'stopped', repetition: null }), catalog)).toBeNull()
    expect(runningRates(viewOf({ tasks: [], repetition: null, state: 'idle' }), catalog)).toBeNull()
  })

  it('formats rates', () => {
    expect(formatRate(12000)).toBe('12,000')
    expect(formatRate(1224.49)).toBe('1,224')
    expect(formatRate(12.34)).toBe('12.3')
  })
})
