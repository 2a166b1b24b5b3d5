// Signing out: the server ends the session (POST /api/auth/logout), or, when
// it cannot be reached, the logout waits in localStorage and goes out at the
// next chance (sendQueuedLogouts); the player's local copy of their queue,
// skills and inventory is removed, and the outbox keeps their unsent
// commands only if they chose to.
import { Api, ApiError, isRetryable } from './api'
import type { Outbox } from './outbox'
import { cacheKey } from './localdata'

const LOGOUTS_KEY = 'taskqueue.logouts'

function queued(): string[] {
  try {
    const v = JSON.parse(localStorage.getItem(LOGOUTS_KEY) ?? '[]')
    return Array.isArray(v) ? v.filter((t) => typeof t === 'string') : []
  } catch {
    return []
  }
}

function setQueued(tokens: string[]): void {
  if (tokens.length === 0) localStorage.removeItem(LOGOUTS_KEY)
  else localStorage.setItem(LOGOUTS_KEY, JSON.stringify(tokens))
}

/** Ends the session of token; true when the server has it (or it had already ended). */
async function logout(token: string): Promise<boolean> {
  try {
    await new Api(token).logout()
    return true
  } catch (err) {
    // 401: already ended or expired; 404: the server has no sessions to end.
    if (err instanceof ApiError && !isRetryable(err)) return true
    if (err instanceof ApiError && err.status === 401) return true
    return false
  }
}

/** Sends the logouts that waited for the server; safe to call at any time. */
export async function sendQueuedLogouts(): Promise<void> {
  const done = new Set<string>()
  for (const token of queued()) if (await logout(token)) done.add(token)
  // Another sign-out may have queued one meanwhile: read the list again.
  if (done.size > 0) setQueued(queued().filter((t) => !done.has(t)))
}

/**
 * Signs playerId out: clears their local data and ends the session. The
 * logout is queued before it is sent, so a page closed (or offline) before
 * the answer sends it again at the next load.
 */
export async function signOutPlayer(token: string, playerId: string, box: Outbox, keepUnsent: boolean): Promise<void> {
  try {
    localStorage.removeItem(cacheKey(playerId))
    setQueued([...queued(), token])
  } catch {
    // Storage blocked: nothing was cached either.
  }
  await box.discard(playerId, keepUnsent)
  void sendQueuedLogouts()
}
