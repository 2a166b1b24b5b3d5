import { describe, expect, it } from 'vitest'
import { countProblem } from './counts'

describe('countProblem', () => {
  it.each([
    ['', 'Enter how many times to repeat it (1 to 1000).'],
    ['  ', 'Enter how many times to repeat it (1 to 1000).'],
    ['0', 'At least 1 repetition.'],
    ['-3', 'At least 1 repetition.'],
    ['1.5', 'Repetitions are whole: no fractions.'],
    ['1001', 'At most 1000 repetitions at once.'],
    ['1e9', 'At most 1000 repetitions at once.'],
    ['abc', 'Enter a whole number from 1 to 1000.'],
  ])('explains %j', (raw, want) => {
    expect(countProblem(raw)).toBe(want)
  })

  it.each(['1', '10', '1000', ' 7 '])('accepts %j', (raw) => {
    expect(countProblem(raw)).toBeNull()
  })
})
