// Notifications (the browser's Notification API) when the queue empties or a
// task fails while the tab is in the background. Permission is asked once, the
// first time the player queues something (a click: a moment the request makes
// sense), never on load.
import { NOTIFICATIONS_ASKED_KEY as ASKED_KEY } from './localdata'
import type { DomainEvent, QueueView } from './types'

function supported(): boolean {
  return typeof window !== 'undefined' && 'Notification' in window
}

/** Asks for permission once per browser profile, when it is still undecided. */
export function askNotificationsOnce(): void {
  if (!supported() || Notification.permission !== 'default') return
  try {
    if (localStorage.getItem(ASKED_KEY)) return
    localStorage.setItem(ASKED_KEY, new Date().toISOString())
  } catch {
    return
  }
  void Promise.resolve(Notification.requestPermission()).catch(() => {})
}

export interface Notice {
  title: string
  body: string
  /** One notification per tag: a newer one replaces it. */
  tag: string
}

/** The queue emptied between two views of the same player (it held tasks, it holds none). */
export function emptiedNotice(prev: QueueView | null, next: QueueView): Notice | null {
  if (!prev || prev.playerId !== next.playerId || next.version <= prev.version) return null
  if (prev.tasks.length === 0 || next.tasks.length > 0) return null
  return { title: 'Your queue is empty', body: 'Every task is done. Queue more to keep going.', tag: 'taskqueue-empty' }
}

/** A TaskFailed event, in words. */
export function failedNotice(e: DomainEvent, taskName: (type: string) => string): Notice | null {
  if (e.type !== 'TaskFailed') return null
  const name = taskName(String(e.data.type ?? ''))
  const reason = String(e.data.reason ?? '')
  const done = Number(e.data.done ?? 0)
  const count = Number(e.data.count ?? 0)
  const progress = count > 0 ? ` after ${done} of ${count}` : ''
  return { title: `Task failed: ${name}`, body: `${reason || 'It could not go on'}${progress}.`, tag: `taskqueue-failed-${String(e.data.taskId ?? '')}` }
}

/** Shows notice when the tab is hidden and the player allowed it; true when shown. */
export function notifyInBackground(notice: Notice | null): boolean {
  if (!notice || !supported() || Notification.permission !== 'granted' || document.visibilityState !== 'hidden') return false
  const options = { body: notice.body, tag: notice.tag, icon: '/icon-192.png' }
  try {
    const n = new Notification(notice.title, options)
    n.onclick = () => {
      window.focus()
      n.close()
    }
  } catch {
    // Where pages may not construct them (Chrome on Android), the service worker shows it.
    void navigator.serviceWorker?.ready.then((r) => r.showNotification(notice.title, options)).catch(() => {})
  }
  return true
}
