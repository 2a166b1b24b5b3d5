import { describe, expect, it } from 'vitest'
import { clockOffset, computeProgress, durationAtLevel, formatDuration, levelProgress, viewClockOffset } from './progress'
import { viewOf } from './testdata'

const at = (iso: string) => Date.parse(iso)

describe('computeProgress', () => {
  it('measures the repetition in server time', () => {
    const v = viewOf()
    // Local clock equals server clock; 1.5 s of the 3 s repetition have passed.
    const p = computeProgress(v, 0, at('2026-11-29T14:00:10.500Z'))!
    expect(p.repetition).toBe(4)
    expect(p.count).toBe(10)
    expect(p.fraction).toBeCloseTo(0.5, 5)
    expect(p.remainingMs).toBe(1500)
    // 6 more repetitions after this one, 3 s each.
    expect(p.taskRemainingMs).toBe(1500 + 6 * 3000)
    expect(p.overdue).toBe(false)
  })

  it('corrects a local clock that runs ahead by the serverTime offset', () => {
    const v = viewOf()
    const localArrival = at('2026-11-29T14:05:10.500Z') // local clock 5 minutes ahead
    const offset = clockOffset(v.serverTime, localArrival)
    expect(offset).toBe(-300000)
    const p = computeProgress(v, offset, localArrival + 1000)!
    expect(p.remainingMs).toBe(500)
    expect(p.fraction).toBeCloseTo(2.5 / 3, 5)
  })

  it('clamps before the start and after the due time', () => {
    const v = viewOf()
    expect(computeProgress(v, 0, at('2026-11-29T14:00:08Z'))!.fraction).toBe(0)
    const late = computeProgress(v, 0, at('2026-11-29T14:00:20Z'))!
    expect(late.fraction).toBe(1)
    expect(late.remainingMs).toBe(0)
    expect(late.overdue).toBe(true)
  })

  it('is null when no repetition runs', () => {
    expect(computeProgress(viewOf({ repetition: null }), 0, Date.now())).toBeNull()
  })

  it('treats an unreadable serverTime as no offset', () => {
    expect(clockOffset('not a time', 1000)).toBe(0)
  })
})

describe('formatDuration', () => {
  it.each([
    [0, '0:00'],
    [999, '0:01'],
    [61000, '1:01'],
    [3600000 + 5000, '1:00:05'],
    [-5, '0:00'],
  ])('%i ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text)
  })
})

describe('durationAtLevel', () => {
  it('is 1% faster per level above the requirement, at most 50%', () => {
    expect(durationAtLevel(3000, 1, 1)).toBe(3000)
    expect(durationAtLevel(3000, 11, 1)).toBe(2700)
    expect(durationAtLevel(3000, 99, 1)).toBe(1500)
    expect(durationAtLevel(3000, 1, 5)).toBe(3000)
  })
})

describe('levelProgress', () => {
  const curve = [0, 0, 83, 174, 276]
  it('spans the XP between this level and the next', () => {
    expect(levelProgress(120, 2, curve, 99)).toEqual({ into: 37, span: 91, fraction: 37 / 91 })
  })
  it('is full at the max level', () => {
    expect(levelProgress(300, 4, curve, 4).fraction).toBe(1)
  })
})

describe('timer cosmetics', () => {
  it('never shows more time left than the repetition lasts, even with a clock behind the server', () => {
    // The view was stamped 700 ms before the repetition it holds began (a
    // view built before the command's last event): by serverTime alone a
    // 3 s repetition would show 3.7 s left ("0:04").
    const v = viewOf({ serverTime: '2026-11-29T14:00:08.300Z' })
    const arrival = at('2026-11-29T14:00:09Z')
    expect(computeProgress(v, clockOffset(v.serverTime, arrival), arrival)!.remainingMs).toBe(3000)
    expect(formatDuration(computeProgress(v, clockOffset(v.serverTime, arrival), arrival)!.remainingMs)).toBe('0:03')
    // The view proves the server was at least at startedAt when it arrived.
    const offset = viewClockOffset(v, arrival)
    expect(offset).toBe(0)
    const p = computeProgress(v, offset, arrival + 1)!
    expect(p.remainingMs).toBe(2999)
    expect(formatDuration(p.remainingMs)).toBe('0:03')
  })

  it('keeps the serverTime offset when the view proves nothing more', () => {
    const v = viewOf()
    const arrival = at('2026-11-29T14:05:10.500Z')
    expect(viewClockOffset(v, arrival)).toBe(clockOffset(v.serverTime, arrival))
    expect(viewClockOffset(viewOf({ repetition: null }), arrival)).toBe(clockOffset(v.serverTime, arrival))
  })

  it('reaches a fraction of 1 at the due time and 0 at the start, clamped outside', () => {
    const v = viewOf()
    expect(computeProgress(v, 0, at('2026-11-29T14:00:12Z'))!.fraction).toBe(1)
    expect(computeProgress(v, 0, at('2026-11-29T14:00:13Z'))!.fraction).toBe(1)
    expect(computeProgress(v, 0, at('2026-11-29T14:00:09Z'))!.fraction).toBe(0)
    expect(computeProgress(v, 0, at('2026-11-29T14:00:08Z'))!.fraction).toBe(0)
    expect(computeProgress(v, 0, at('2026-11-29T14:00:08Z'))!.remainingMs).toBe(3000)
  })
})
