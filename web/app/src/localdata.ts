// The keys of what the app keeps in localStorage, in one place so that
// signing out (signout.ts) removes what the queue (useTaskQueue.ts) wrote.

/** The player's last queue view (queue, skills, inventory), for offline reloads. */
export const cacheKey = (playerId: string) => `taskqueue.view.${playerId}`

/** Whether the app asked for notification permission: the browser profile's, not the player's (kept at sign-out). */
export const NOTIFICATIONS_ASKED_KEY = 'taskqueue.notifications.asked'

/** The outbox's dismissed rejections whose deletion from IndexedDB may not have completed (outbox.ts). */
export const DISMISSED_KEY = 'taskqueue.outbox.dismissed'
