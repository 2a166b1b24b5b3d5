// The HTTP client of docs/API.md: bearer auth, problem+json errors, idempotency
// keys. Every function throws ApiError for an answer the server gave (with its
// problem) and NetworkError when no answer came (offline, connection refused):
// the outbox keeps a command on NetworkError and drops it on a client error.
import type { Catalog, HistoryPage, Problem, QueueTask, QueueView } from './types'

export class ApiError extends Error {
  readonly problem: Problem
  constructor(problem: Problem) {
    super(problem.detail || problem.title || `HTTP ${problem.status}`)
    this.name = 'ApiError'
    this.problem = problem
  }
  get status(): number {
    return this.problem.status
  }
  /** The problem type without the urn:taskqueue:problem: prefix. */
  get kind(): string {
    return this.problem.type.replace(/^urn:taskqueue:problem:/, '')
  }
}

export class NetworkError extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause))
    this.name = 'NetworkError'
  }
}

/** True when the server might accept the same request later (keep it in the outbox).
 * 401 counts: the player signs in again and the command goes out then. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof NetworkError) return true
  if (err instanceof ApiError) return err.status >= 500 || err.status === 429 || err.status === 401 || (err.status === 409 && err.kind === 'conflict')
  return false
}

export interface Session {
  token: string
  playerId: string
  role: string
  expiresAt?: string
  /** Set when the OpenID provider signed the player in (see oidc.ts). */
  oidc?: { refreshToken?: string; idToken?: string }
}

export interface RequestOptions {
  method?: string
  body?: unknown
  idempotencyKey?: string
  signal?: AbortSignal
}

export class Api {
  readonly base: string
  private readonly token: string | null

  constructor(token: string | null, base = '') {
    this.token = token
    this.base = base
  }

  async request<T>(path: string, options: RequestOptions = {}): Promise<{ body: T; response: Response }> {
    const headers: Record<string, string> = { Accept: 'application/json, application/problem+json' }
    if (this.token) headers.Authorization = `Bearer ${this.token}`
    if (options.body !== undefined) headers['Content-Type'] = 'application/json'
    if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey
    let response: Response
    try {
      response = await fetch(this.base + path, {
        method: options.method ?? 'GET',
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal,
        cache: 'no-store',
      })
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') throw err
      throw new NetworkError(err)
    }
    const text = await response.text().catch(() => '')
    let parsed: unknown = undefined
    if (text) {
      try {
        parsed = JSON.parse(text)
      } catch {
        parsed = undefined
      }
    }
    if (!response.ok) {
      const p = (parsed ?? {}) as Partial<Problem>
      throw new ApiError({
        type: p.type ?? `urn:taskqueue:problem:http-${response.status}`,
        title: p.title ?? response.statusText ?? 'Request failed',
        status: p.status ?? response.status,
        detail: p.detail ?? (parsed === undefined && text ? text.slice(0, 200) : undefined),
        field: p.field,
        instance: p.instance,
        requestId: p.requestId ?? response.headers.get('X-Request-Id') ?? undefined,
      })
    }
    return { body: parsed as T, response }
  }

  async devToken(player: string, role: 'player' | 'admin' = 'player'): Promise<{ token: string; expiresAt: string }> {
    return (await this.request<{ token: string; expiresAt: string }>('/api/auth/dev-token', {
      method: 'POST',
      body: { player, role },
    })).body
  }

  /** The caller as the server reads its token (GET /api/auth/me): with an OpenID
   * provider the player ID and role come from the claims and role map the server
   * is configured with, not necessarily the token's "sub" and "role". */
  async me(): Promise<{ playerId: string; role: string }> {
    return (await this.request<{ playerId: string; role: string }>('/api/auth/me')).body
  }

  /** Ends the caller's session on the server (POST /api/auth/logout). */
  async logout(): Promise<void> {
    await this.request<void>('/api/auth/logout', { method: 'POST' })
  }

  async catalog(): Promise<Catalog> {
    return (await this.request<Catalog>('/api/catalog')).body
  }

  /**
   * The queue view. With minVersion (the version a command of this client
   * answered) the server answers that version or a later one, never an older
   * one (503 when its read side cannot get there in time).
   */
  async queue(playerId: string, signal?: AbortSignal, minVersion?: number): Promise<QueueView> {
    const q = minVersion !== undefined && minVersion > 0 ? `?minVersion=${minVersion}` : ''
    return (await this.request<QueueView>(`/api/queue/${encodeURIComponent(playerId)}${q}`, { signal })).body
  }

  async history(playerId: string, filter: { type?: string; from?: string; cursor?: string; limit?: number }, signal?: AbortSignal): Promise<HistoryPage> {
    const q = new URLSearchParams()
    if (filter.type) q.set('type', filter.type)
    if (filter.from) q.set('from', filter.from)
    if (filter.cursor) q.set('cursor', filter.cursor)
    if (filter.limit) q.set('limit', String(filter.limit))
    const qs = q.toString()
    return (await this.request<HistoryPage>(`/api/queue/${encodeURIComponent(playerId)}/history${qs ? '?' + qs : ''}`, { signal })).body
  }

  /** Queues a task; version is the queue's version after it (the ETag), to read this write with queue(). */
  async enqueue(playerId: string, body: { type: string; count: number; position?: number }, key: string): Promise<{ task: QueueTask; version?: number }> {
    const { body: task, response } = await this.request<QueueTask>(`/api/queue/${encodeURIComponent(playerId)}/tasks`, {
      method: 'POST',
      body,
      idempotencyKey: key,
    })
    return { task, version: etagVersion(response.headers.get('ETag')) }
  }

  async remove(playerId: string, taskId: string, key: string): Promise<QueueView> {
    return (await this.request<QueueView>(
      `/api/queue/${encodeURIComponent(playerId)}/tasks/${encodeURIComponent(taskId)}`,
      { method: 'DELETE', idempotencyKey: key },
    )).body
  }

  async stop(playerId: string, key: string): Promise<QueueView> {
    return (await this.request<QueueView>(`/api/queue/${encodeURIComponent(playerId)}/stop`, { method: 'POST', idempotencyKey: key })).body
  }

  async start(playerId: string, key: string): Promise<QueueView> {
    return (await this.request<QueueView>(`/api/queue/${encodeURIComponent(playerId)}/start`, { method: 'POST', idempotencyKey: key })).body
  }

  async reorder(playerId: string, order: string[], key: string): Promise<QueueView> {
    return (await this.request<QueueView>(`/api/queue/${encodeURIComponent(playerId)}/reorder`, {
      method: 'PUT',
      body: { order },
      idempotencyKey: key,
    })).body
  }
}

/** The queue version in an ETag ("14" or W/"14"), undefined when there is none. */
export function etagVersion(etag: string | null): number | undefined {
  const m = /^(?:W\/)?"(\d+)"$/.exec(etag?.trim() ?? '')
  return m ? Number(m[1]) : undefined
}

/** Reads sub, role and exp from a JWT without checking it (the server checks it). */
export function sessionFromToken(token: string): Session {
  const parts = token.trim().split('.')
  if (parts.length !== 3) throw new Error('This is not a JWT (expected three dot-separated parts).')
  let claims: { sub?: unknown; role?: unknown; exp?: unknown }
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/')
    const json = decodeURIComponent(
      Array.from(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
    )
    claims = JSON.parse(json)
  } catch {
    throw new Error('The token payload is not readable JSON.')
  }
  if (typeof claims.sub !== 'string' || claims.sub === '') throw new Error('The token has no subject (sub).')
  return {
    token: token.trim(),
    playerId: claims.sub,
    role: typeof claims.role === 'string' ? claims.role : 'player',
    expiresAt: typeof claims.exp === 'number' ? new Date(claims.exp * 1000).toISOString() : undefined,
  }
}
