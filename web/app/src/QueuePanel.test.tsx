// @vitest-environment happy-dom
// What a keyboard move of a row re-renders in a 61-task queue (a running head
// and 60 waiting rows), counted by countRender (renders.ts) in a real React
// tree with dnd-kit: a press re-renders the list and the rows whose places
// changed, not every row.
import { act } from 'react'
import { createRoot, type Root } from 'react-dom/client'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { mergePending } from './merge'
import { QueuePanel } from './QueuePanel'
import { viewOf } from './testdata'
import type { Catalog, QueueView } from './types'
import type { TaskQueueState } from './useTaskQueue'

const catalog: Catalog = {
  skills: [{ id: 'woodcutting', name: 'Woodcutting' }],
  items: [{ id: 'logs', name: 'Logs' }],
  tasks: [
    { id: 'chop-wood', name: 'Chop wood', skill: 'woodcutting', levelRequired: 1, baseDurationMs: 3000, inputs: {}, outputs: { logs: 1 }, xp: 10 },
    { id: 'chop-oak', name: 'Chop oak', skill: 'woodcutting', levelRequired: 1, baseDurationMs: 4000, inputs: {}, outputs: { logs: 2 }, xp: 20 },
  ],
  levels: { max: 10, xpForLevel: [0, 0, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800] },
}

const g = globalThis as { __taskqueueRenders?: Record<string, number>; IS_REACT_ACT_ENVIRONMENT?: boolean }
g.IS_REACT_ACT_ENVIRONMENT = true

const TASKS = 61
const view: QueueView = viewOf({
  limit: 100,
  tasks: Array.from({ length: TASKS }, (_, i) => ({ taskId: `t${i}`, type: i % 2 ? 'chop-oak' : 'chop-wood', count: i + 1, done: 0, enqueuedAt: '2026-11-29T14:00:00Z' })),
  repetition: { taskId: 't0', number: 1, startedAt: '2026-11-29T14:00:09Z', dueAt: '2026-11-29T14:00:12Z', durationMs: 3000, efficiency: 1 },
})
const t0 = Date.parse('2026-11-29T15:00:00Z')
const ends = new Map(view.tasks.map((t, i) => [t.taskId, t0 + i * 60_000]))

let root: Root
let host: HTMLElement
let reorders: string[][]

function show() {
  const noop = async () => {}
  const commands = {
    enqueue: noop,
    remove: noop,
    stop: noop,
    start: noop,
    reorder: async (order: string[]) => void reorders.push(order),
    cancel: noop,
    dismiss: noop,
    retry: () => {},
  }
  const q = {
    view,
    display: mergePending(view, []),
    estimated: false,
    offset: 0,
    ends,
    catalog,
    pending: [],
    rejections: [],
    inFlight: null,
    connection: 'live',
    commands,
  } as unknown as TaskQueueState
  act(() => root.render(<QueuePanel q={q} />))
}

/** Renders made by fn, by component (the head task's clock is left out: it ticks on its own). */
function rendersOf(fn: () => void): Record<string, number> {
  g.__taskqueueRenders = {}
  fn()
  const counts = g.__taskqueueRenders
  g.__taskqueueRenders = undefined
  delete counts.HeadTask
  delete counts.RunningRates
  return counts
}

const rows = () => [...host.querySelectorAll<HTMLElement>('[data-testid=waiting] [data-testid=task]')]
const row = (id: string) => host.querySelector<HTMLElement>(`[data-testid=waiting] [data-task-id="${id}"]`)!
const handle = (id: string) => row(id).querySelector<HTMLButtonElement>('.handle')!
const press = (id: string, key: string) =>
  rendersOf(() => act(() => void handle(id).dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true }))))

/**
 * Renders made by a keydown as the browser runs it (no act): those before the
 * page can paint (React renders a keydown's updates in a microtask), and those
 * after, in transitions (the scheduler's later tasks).
 */
async function pressAndIdle(id: string, key: string): Promise<{ atKey: Record<string, number>; later: Record<string, number> }> {
  g.IS_REACT_ACT_ENVIRONMENT = false
  try {
    g.__taskqueueRenders = {}
    handle(id).dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true }))
    for (let i = 0; i < 5; i++) await Promise.resolve()
    const atKey = g.__taskqueueRenders
    g.__taskqueueRenders = {}
    // Until nothing more renders for 200 ms (a transition yields to the browser every few ms).
    const counted = () => JSON.stringify([g.__taskqueueRenders?.WaitingList, g.__taskqueueRenders?.WaitingItem])
    let seen = ''
    for (let i = 0; i < 25 && seen !== counted(); i++) {
      seen = counted()
      await new Promise((r) => setTimeout(r, 200))
    }
    const later = g.__taskqueueRenders
    g.__taskqueueRenders = undefined
    for (const c of [atKey, later]) {
      delete c.HeadTask
      delete c.RunningRates
    }
    return { atKey, later }
  } finally {
    g.IS_REACT_ACT_ENVIRONMENT = true
  }
}
const announced = () => host.querySelector('[data-testid=move-announcement]')?.textContent

beforeEach(() => {
  reorders = []
  host = document.createElement('div')
  document.body.append(host)
  root = createRoot(host)
  show()
})

afterEach(() => {
  act(() => root.unmount())
  host.remove()
})

describe('a keyboard move in a 61-task queue', () => {
  it('re-renders the picked row on pickup, the two rows that swap places on each press, and nothing else', async () => {
    expect(rows()).toHaveLength(TASKS - 1)
    const last = `t${TASKS - 1}`
    expect(press(last, ' ')).toEqual({ WaitingList: 1, WaitingItem: 1 })
    expect(handle(last).getAttribute('aria-pressed')).toBe('true')
    expect(host.querySelector('[data-testid=waiting]')?.classList.contains('is-moving')).toBe(true) // the end times are hidden
    expect(announced()).toBe('Picked up Chop wood at position 61.')

    for (let i = 1; i <= 3; i++) {
      expect(press(last, 'ArrowUp')).toEqual({ WaitingList: 1, WaitingItem: 2 })
      const at = rows().findIndex((r) => r.dataset.taskId === last)
      expect(at).toBe(TASKS - 2 - i)
      expect(row(last).querySelector('.pos')?.textContent).toBe(String(TASKS - i))
      expect(handle(last).getAttribute('aria-label')).toBe(`Move Chop wood (position ${TASKS - i})`)
      // The row it passed has its number too.
      expect(rows()[at + 1].querySelector('.pos')?.textContent).toBe(String(TASKS - i + 1))
    }
    expect(announced()).toBe('Chop wood moved to position 58.')

    // Dropped: the row is put down where it is and the order is sent, no other
    // row re-rendered before the page can paint; then dnd-kit gets the new
    // order (its context re-renders every row, in a transition).
    const { atKey, later } = await pressAndIdle(last, ' ')
    expect(atKey).toEqual({ WaitingList: 1, WaitingItem: 1 })
    expect(later).toEqual({ WaitingList: 1, WaitingItem: TASKS - 1 })
    expect(handle(last).getAttribute('aria-pressed')).toBe('false')
    expect(host.querySelector('[data-testid=waiting]')?.classList.contains('is-moving')).toBe(false)
    expect(announced()).toBe('Chop wood dropped at position 58.')
    const want = view.tasks.map((t) => t.taskId)
    want.splice(TASKS - 1, 1)
    want.splice(TASKS - 4, 0, last)
    expect(reorders).toEqual([want.slice(1)])
    expect(rows().map((r) => r.dataset.taskId)).toEqual(want.slice(1))
  })

  it('re-renders on escape the rows that go back to their places, and sends nothing', () => {
    const id = 't30'
    press(id, 'Enter')
    press(id, 'ArrowDown')
    press(id, 'ArrowDown')
    expect(press(id, 'Escape')).toEqual({ WaitingList: 1, WaitingItem: 3 }) // it and the two it passed
    expect(announced()).toBe('Moving Chop wood was cancelled.')
    expect(rows().map((r) => r.dataset.taskId)).toEqual(view.tasks.slice(1).map((t) => t.taskId))
    expect(row(id).querySelector('.pos')?.textContent).toBe('31')
    expect(reorders).toEqual([])
  })

  it('does not re-render on a press that cannot move the row (the first waiting row, up)', () => {
    press('t1', ' ')
    expect(press('t1', 'ArrowUp')).toEqual({ WaitingList: 1 }) // the announcement, again
    expect(row('t1').querySelector('.pos')?.textContent).toBe('2')
  })
})
