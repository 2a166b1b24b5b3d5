import { describe, expect, it } from 'vitest'
import { clockOffset, computeProgress, durationAtLevel, formatDuration, levelProgress } from './progress'
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
