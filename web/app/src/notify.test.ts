import { afterEach, describe, expect, it, vi } from 'vitest'
import { askNotificationsOnce, emptiedNotice, failedNotice, notifyInBackground } from './notify'
import { viewOf } from './testdata'

/** The browser's globals the module reads, as a page would have them. */
function browser(permission: NotificationPermission, visibility: DocumentVisibilityState) {
  const made: { title: string; options: NotificationOptions }[] = []
  const asked = vi.fn(async () => 'granted' as NotificationPermission)
  class FakeNotification {
    static permission = permission
    static requestPermission = asked
    onclick: (() => void) | null = null
    constructor(title: string, options: NotificationOptions) {
      made.push({ title, options })
    }
    close() {}
  }
  const store = new Map<string, string>()
  vi.stubGlobal('window', { Notification: FakeNotification, focus() {} })
  vi.stubGlobal('Notification', FakeNotification)
  vi.stubGlobal('document', { visibilityState: visibility })
  vi.stubGlobal('localStorage', { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => store.set(k, v) })
  return { made, asked }
}

afterEach(() => vi.unstubAllGlobals())

describe('notifications', () => {
  it('asks for permission once, and only while undecided', () => {
    const b = browser('default', 'visible')
    askNotificationsOnce()
    askNotificationsOnce()
    expect(b.asked).toHaveBeenCalledTimes(1)
    vi.unstubAllGlobals()
    const denied = browser('denied', 'visible')
    askNotificationsOnce()
    expect(denied.asked).not.toHaveBeenCalled()
  })

  it('notifies only in the background, with permission', () => {
    const notice = { title: 'Your queue is empty', body: 'b', tag: 't' }
    expect(notifyInBackground(notice)).toBe(false) // no browser at all
    let b = browser('granted', 'visible')
    expect(notifyInBackground(notice)).toBe(false)
    expect(b.made).toEqual([])
    vi.unstubAllGlobals()
    b = browser('granted', 'hidden')
    expect(notifyInBackground(notice)).toBe(true)
    expect(b.made).toEqual([{ title: 'Your queue is empty', options: expect.objectContaining({ body: 'b', tag: 't' }) }])
    vi.unstubAllGlobals()
    b = browser('denied', 'hidden')
    expect(notifyInBackground(notice)).toBe(false)
  })

  it('the queue emptied: it held tasks, a newer view holds none', () => {
    const before = viewOf()
    const after = viewOf({ version: 20, tasks: [], repetition: null, state: 'idle' })
    expect(emptiedNotice(before, after)?.title).toBe('Your queue is empty')
    expect(emptiedNotice(null, after)).toBeNull()
    expect(emptiedNotice(after, { ...after, version: 21 })).toBeNull()
    expect(emptiedNotice(before, { ...after, version: before.version })).toBeNull()
    expect(emptiedNotice(before, viewOf({ version: 20 }))).toBeNull()
    expect(emptiedNotice(before, { ...after, playerId: 'bob' })).toBeNull()
  })

  it('a task failed: its name, reason and progress', () => {
    const e = { type: 'TaskFailed', version: 9, position: '9', occurredAt: '', data: { taskId: 'x', type: 'saw-planks', done: 3, count: 5, reason: 'missing 2 logs' } }
    expect(failedNotice(e, () => 'Saw planks')).toEqual({ title: 'Task failed: Saw planks', body: 'missing 2 logs after 3 of 5.', tag: 'taskqueue-failed-x' })
    expect(failedNotice({ ...e, type: 'TaskCompleted' }, () => '')).toBeNull()
  })
})
