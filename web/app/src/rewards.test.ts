import { describe, expect, it } from 'vitest'
import { finishedText, rewardsText } from './rewards'
import type { Catalog } from './types'

const catalog: Catalog = {
  skills: [{ id: 'cooking', name: 'Cooking' }],
  items: [{ id: 'cooked-shrimp', name: 'Cooked shrimp' }],
  tasks: [{ id: 'cook-shrimp', name: 'Cook shrimp', skill: 'cooking', levelRequired: 1, baseDurationMs: 2000, inputs: { 'raw-shrimp': 1, logs: 1 }, outputs: { 'cooked-shrimp': 1 }, xp: 10 }],
  levels: { max: 99, xpForLevel: [0, 0, 83] },
}

describe('finished toast', () => {
  it('says what the task granted: outputs and XP times its count', () => {
    expect(rewardsText(catalog, 'cook-shrimp', 150)).toBe('+150 Cooked shrimp, +1,500 Cooking XP')
    expect(finishedText(catalog, 'cook-shrimp', 2)).toBe('Finished: Cook shrimp ×2 · +2 Cooked shrimp, +20 Cooking XP')
  })

  it('without the catalog or the type, says what finished', () => {
    expect(finishedText(null, 'cook-shrimp', 2)).toBe('Finished: cook-shrimp ×2')
    expect(finishedText(catalog, 'gone', 2)).toBe('Finished: gone ×2')
  })
})
