// @vitest-environment happy-dom
// What a completed repetition re-renders in the catalog, the skills and the
// inventory, counted by countRender (renders.ts) in a real React tree.
import { act } from 'react'
import { createRoot, type Root } from 'react-dom/client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mergePending } from './merge'
import { SidePanels } from './SidePanels'
import { viewOf } from './testdata'
import type { Catalog, QueueView } from './types'

const catalog: Catalog = {
  skills: [
    { id: 'woodcutting', name: 'Woodcutting' },
    { id: 'crafting', name: 'Crafting' },
    { id: 'fishing', name: 'Fishing' },
  ],
  items: [
    { id: 'logs', name: 'Logs' },
    { id: 'planks', name: 'Planks' },
    { id: 'raw-shrimp', name: 'Raw shrimp' },
  ],
  tasks: [
    { id: 'chop-wood', name: 'Chop wood', skill: 'woodcutting', levelRequired: 1, baseDurationMs: 3000, inputs: {}, outputs: { logs: 1 }, xp: 10 },
    { id: 'chop-oak', name: 'Chop oak', skill: 'woodcutting', levelRequired: 5, baseDurationMs: 4000, inputs: {}, outputs: { logs: 2 }, xp: 20 },
    { id: 'saw-planks', name: 'Saw planks', skill: 'crafting', levelRequired: 1, baseDurationMs: 2000, inputs: { logs: 2 }, outputs: { planks: 1 }, xp: 8 },
    { id: 'catch-shrimp', name: 'Catch shrimp', skill: 'fishing', levelRequired: 1, baseDurationMs: 2500, inputs: {}, outputs: { 'raw-shrimp': 1 }, xp: 8 },
  ],
  levels: { max: 10, xpForLevel: [0, 0, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800] },
}

const g = globalThis as { __taskqueueRenders?: Record<string, number>; IS_REACT_ACT_ENVIRONMENT?: boolean }
g.IS_REACT_ACT_ENVIRONMENT = true

const enqueue = async () => {}
const before = viewOf({
  skills: { woodcutting: { xp: 120, level: 3 }, fishing: { xp: 30, level: 1 } },
  inventory: { logs: 12, 'raw-shrimp': 3 },
})

/** The view after the head's next repetition: one more done, its XP and its log. */
function afterRepetition(v: QueueView, xp = 10): QueueView {
  const [head, ...rest] = v.tasks
  return {
    ...v,
    version: v.version + 1,
    tasks: [{ ...head, done: head.done + 1 }, ...rest.map((t) => ({ ...t }))],
    repetition: v.repetition && { ...v.repetition, number: v.repetition.number + 1 },
    skills: { ...structuredClone(v.skills), woodcutting: { xp: v.skills.woodcutting.xp + xp, level: v.skills.woodcutting.level + (xp >= 80 ? 1 : 0) } },
    inventory: { ...v.inventory, logs: (v.inventory.logs ?? 0) + 1 },
  }
}

let root: Root
let host: HTMLElement

function show(view: QueueView) {
  act(() => root.render(<SidePanels view={view} display={mergePending(view, [])} catalog={catalog} offline={false} enqueue={enqueue} />))
}

/** Renders made by fn, by component. */
function rendersOf(fn: () => void): Record<string, number> {
  g.__taskqueueRenders = {}
  fn()
  const counts = g.__taskqueueRenders
  g.__taskqueueRenders = undefined
  return counts
}

beforeEach(() => {
  host = document.createElement('div')
  document.body.append(host)
  root = createRoot(host)
  show(before)
})

afterEach(() => {
  act(() => root.unmount())
  host.remove()
})

describe('a completed repetition', () => {
  it('re-renders the skill that gained XP and the item that changed, not the catalog', () => {
    const counts = rendersOf(() => show(afterRepetition(before)))
    expect(counts).toEqual({ SkillsPanel: 1, SkillRow: 1, InventoryPanel: 1, InventoryItem: 1 })
    expect(host.querySelector('[data-testid=skills]')?.textContent).toContain('130')
    expect(host.querySelector('[data-testid=inventory]')?.textContent).toContain('Logs13')
  })

  it('re-renders the open tab\'s entries that use an item (they show what the player has), not the others', () => {
    act(() => (host.querySelector('#skill-tab-crafting') as HTMLButtonElement).click())
    expect(host.querySelector('[data-task-type=saw-planks] [data-testid=have]')?.getAttribute('data-have')).toBe('12')
    const counts = rendersOf(() => show(afterRepetition(before)))
    expect(counts.CatalogPanel).toBeUndefined()
    expect(counts.CatalogEntry).toBe(1) // saw planks, the crafting tab's one entry
    expect(host.querySelector('[data-task-type=saw-planks] [data-testid=have]')?.getAttribute('data-have')).toBe('13')
  })

  it('re-renders nothing when the view is new but shows the same', () => {
    const counts = rendersOf(() => show(structuredClone(before)))
    expect(counts).toEqual({})
  })

  it('re-renders the catalog when a level changes (its tabs and entries show it)', () => {
    const counts = rendersOf(() => show(afterRepetition(before, 100)))
    expect(counts.CatalogPanel).toBe(1)
    expect(counts.CatalogEntry).toBe(2) // the woodcutting tab's two entries: their level changed
    expect(host.querySelector('#skill-tab-woodcutting')?.textContent).toContain('Lv 4')
  })

  it('re-renders the catalog when a task leaves the queue (its "insert before" list shows it)', () => {
    const v = { ...structuredClone(before), version: before.version + 1, tasks: before.tasks.slice(0, 2) }
    const counts = rendersOf(() => show(v))
    expect(counts.CatalogPanel).toBe(1)
    expect(host.querySelectorAll('[data-testid=position] option')).toHaveLength(2) // the end, and before #2
  })
})
