import { describe, expect, it } from 'vitest'
import { applyOrder, mergePending, pendingTaskId, rebaseOrder } from './merge'
import { entryOf, viewOf } from './testdata'
import type { QueueView } from './types'

const ids = (tasks: { taskId: string }[]) => tasks.map((t) => t.taskId)

describe('mergePending', () => {
  it('shows the server view unchanged when nothing is pending', () => {
    const v = viewOf()
    const d = mergePending(v, [])
    expect(ids(d.tasks)).toEqual(['a', 'b', 'c'])
    expect(d.running).toBe(true)
    expect(d.pendingRunning).toBeUndefined()
    expect(d.headLocked).toBe(true)
  })

  it('puts a pending enqueue at the end, or at its position but never before a running head', () => {
    const end = entryOf({ kind: 'enqueue', type: 'chop-wood', count: 4 })
    const front = entryOf({ kind: 'enqueue', type: 'saw-planks', count: 1, position: 0 })
    const d = mergePending(viewOf(), [end, front])
    expect(ids(d.tasks)).toEqual(['a', pendingTaskId(front.key), 'b', 'c', pendingTaskId(end.key)])
    expect(d.tasks[1]).toMatchObject({ pending: 'add', pendingKey: front.key, count: 1, done: 0 })
  })

  it('lets a pending enqueue go first when no repetition runs', () => {
    const front = entryOf({ kind: 'enqueue', type: 'saw-planks', count: 1, position: 0 })
    const d = mergePending(viewOf({ repetition: null, running: false }), [front])
    expect(ids(d.tasks)[0]).toBe(pendingTaskId(front.key))
    expect(d.headLocked).toBe(false)
  })

  it('marks a pending removal and shows a pending stop or start', () => {
    const d = mergePending(viewOf(), [entryOf({ kind: 'remove', taskId: 'b' }), entryOf({ kind: 'stop' })])
    expect(d.tasks.find((t) => t.taskId === 'b')?.pending).toBe('remove')
    expect(d.running).toBe(false)
    expect(d.pendingRunning).toBe('stop')
    const s = mergePending(viewOf({ running: false, repetition: null }), [entryOf({ kind: 'start' })])
    expect(s.running).toBe(true)
    expect(s.pendingRunning).toBe('start')
  })

  it('applies a pending reorder to the waiting tasks only', () => {
    const d = mergePending(viewOf(), [entryOf({ kind: 'reorder', order: ['c', 'b'] })])
    expect(ids(d.tasks)).toEqual(['a', 'c', 'b'])
  })

  it('ignores entries of another player', () => {
    const d = mergePending(viewOf(), [entryOf({ kind: 'stop' }, 'bob'), entryOf({ kind: 'remove', taskId: 'b' }, 'bob')])
    expect(d.running).toBe(true)
    expect(d.tasks.every((t) => !t.pending)).toBe(true)
  })

  it('drops the overlay once the server view includes the change: the server wins', () => {
    // The reorder was rejected: with the entry gone, the server's order shows again.
    const v = viewOf()
    const withPending = mergePending(v, [entryOf({ kind: 'reorder', order: ['c', 'b'] })])
    expect(ids(withPending.tasks)).toEqual(['a', 'c', 'b'])
    expect(ids(mergePending(v, []).tasks)).toEqual(['a', 'b', 'c'])
  })
})

describe('applyOrder', () => {
  it('keeps tasks not named in the order after the named ones', () => {
    const tasks = viewOf().tasks
    expect(ids(applyOrder(tasks, ['c'], true))).toEqual(['a', 'c', 'b'])
    expect(ids(applyOrder(tasks, ['c', 'zzz'], false))).toEqual(['c', 'a', 'b'])
  })
})

describe('rebaseOrder', () => {
  it('is the wanted order when the queue did not change', () => {
    expect(rebaseOrder(viewOf(), ['c', 'b'])).toEqual(['c', 'b'])
  })

  it('drops tasks that are gone or now running and appends new waiting tasks in server order', () => {
    const v = viewOf({
      tasks: [
        { taskId: 'b', type: 'saw-planks', count: 5, done: 0, enqueuedAt: '' },
        { taskId: 'c', type: 'chop-wood', count: 2, done: 0, enqueuedAt: '' },
        { taskId: 'd', type: 'chop-wood', count: 1, done: 0, enqueuedAt: '' },
        { taskId: 'e', type: 'chop-wood', count: 1, done: 0, enqueuedAt: '' },
      ],
      repetition: { taskId: 'b', number: 1, startedAt: '2026-11-29T14:00:12Z', dueAt: '2026-11-29T14:00:15Z', durationMs: 3000, efficiency: 1 },
    })
    // The player wanted c, b, a (a finished meanwhile, b now runs).
    expect(rebaseOrder(v, ['c', 'b', 'a'])).toEqual(['c', 'd', 'e'])
  })

  it('covers every task when no repetition runs', () => {
    const v = viewOf({ repetition: null, running: false })
    expect(rebaseOrder(v, ['c'])).toEqual(['c', 'a', 'b'])
  })
})

describe('the queue state shown', () => {
  it('is the server view\'s state with nothing pending: an empty running queue is idle', () => {
    expect(mergePending(viewOf(), []).state).toBe('running')
    expect(mergePending(viewOf({ tasks: [], repetition: null, state: 'idle' }), []).state).toBe('idle')
    expect(mergePending(viewOf({ running: false, repetition: null, state: 'stopped' }), []).state).toBe('stopped')
  })

  it('is the state the pending commands would leave', () => {
    const idle = viewOf({ tasks: [], repetition: null, state: 'idle' })
    expect(mergePending(idle, [entryOf({ kind: 'enqueue', type: 'chop-wood', count: 1 })]).state).toBe('running')
    expect(mergePending(viewOf(), [entryOf({ kind: 'stop' })]).state).toBe('stopped')
    const one = viewOf({ tasks: [viewOf().tasks[0]] })
    expect(mergePending(one, [entryOf({ kind: 'remove', taskId: 'a' })]).state).toBe('idle')
  })

  it('is derived for a saved view from before the server sent it', () => {
    const { state: _, ...old } = viewOf({ tasks: [], repetition: null })
    expect(mergePending(old as QueueView, []).state).toBe('idle')
  })
})
