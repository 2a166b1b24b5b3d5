// The WebSocket client for GET /api/ws (the protocol is documented in
// docs/REALTIME.md). Until the server answers on
// /api/ws this client reports 'unavailable' and the app polls GET /api/queue.
//
// Protocol as this client speaks it:
//   client → {"type":"subscribe","playerId":"alice","since":"1042"}   (since omitted on first connect)
//   server → {"type":"subscribed","playerId":"alice","position":"1042"}
//   server → {"type":"event","position":"1043","event":{…DomainEvent},"queue":{…QueueView}}
//            (queue only on a command's last event: the view after the whole command)
//   server → {"type":"reset","position":"1100","queue":{…QueueView}}    (too far behind: a fresh snapshot)
//   server → {"type":"error","problem":{…}}                              (then closes with a 4xxx code)
// The token goes in ?access_token= (browsers cannot set headers on a socket).
// Positions are opaque strings: the client stores the last one it saw and
// sends it back on reconnect; it never compares two of them.
import type { DomainEvent, Problem, QueueView } from './types'

export type RealtimeState = 'connecting' | 'live' | 'reconnecting' | 'unavailable' | 'closed'

export type ServerMessage =
  | { type: 'subscribed'; position?: string; playerId?: string }
  | { type: 'event'; position: string; event: DomainEvent; queue?: QueueView }
  | { type: 'reset'; position: string; queue: QueueView }
  | { type: 'error'; problem: Problem }

export interface RealtimeOptions {
  /** ws:// or wss:// URL of /api/ws, without the token. */
  url: string
  token: string
  playerId: string
  /** The last position a previous connection saw, if any. */
  since?: string
  onQueue: (view: QueueView, position: string) => void
  onEvent?: (event: DomainEvent) => void
  onState: (state: RealtimeState) => void
  /** Factory for tests. */
  socket?: (url: string) => WebSocket
  /** Backoff bounds in ms. */
  minDelayMs?: number
  maxDelayMs?: number
}

export function parseServerMessage(data: unknown): ServerMessage | null {
  if (typeof data !== 'string') return null
  let m: unknown
  try {
    m = JSON.parse(data)
  } catch {
    return null
  }
  if (!m || typeof m !== 'object') return null
  const o = m as Record<string, unknown>
  if (o.type === 'event' && typeof o.position === 'string' && o.event && typeof o.event === 'object') return o as unknown as ServerMessage
  if (o.type === 'reset' && typeof o.position === 'string' && o.queue && typeof o.queue === 'object') return o as unknown as ServerMessage
  if (o.type === 'subscribed') return o as unknown as ServerMessage
  if (o.type === 'error') return o as unknown as ServerMessage
  return null
}

export class RealtimeClient {
  private readonly opts: RealtimeOptions
  private ws: WebSocket | null = null
  private timer: ReturnType<typeof setTimeout> | null = null
  private failures = 0
  private everOpened = false
  private stopped = false
  /** The last global position received. */
  position: string | undefined

  constructor(opts: RealtimeOptions) {
    this.opts = opts
    this.position = opts.since
  }

  start(): void {
    this.stopped = false
    this.connect()
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.ws?.close(1000, 'bye')
    this.ws = null
    this.opts.onState('closed')
  }

  /** Reconnect now (e.g. the browser came back online). */
  kick(): void {
    if (this.stopped || (this.ws && this.ws.readyState <= 1)) return
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.connect()
  }

  private connect(): void {
    this.opts.onState(this.everOpened ? 'reconnecting' : 'connecting')
    const url = `${this.opts.url}?access_token=${encodeURIComponent(this.opts.token)}`
    let ws: WebSocket
    try {
      ws = this.opts.socket ? this.opts.socket(url) : new WebSocket(url)
    } catch {
      this.retry()
      return
    }
    this.ws = ws
    ws.onopen = () => {
      const msg: Record<string, string> = { type: 'subscribe', playerId: this.opts.playerId }
      if (this.position !== undefined) msg.since = this.position
      ws.send(JSON.stringify(msg))
    }
    ws.onmessage = (ev) => {
      const m = parseServerMessage(ev.data)
      if (!m) return
      if (m.type === 'error') return
      if (m.type === 'subscribed') {
        // Live from here on: the server checked the token and the queue.
        this.everOpened = true
        this.failures = 0
        if (m.position !== undefined && this.position === undefined) this.position = m.position
        this.opts.onState('live')
        return
      }
      this.position = m.position
      if (m.type === 'event') this.opts.onEvent?.(m.event)
      if (m.queue) this.opts.onQueue(m.queue, m.position)
    }
    ws.onclose = (ev) => {
      if (this.ws === ws) this.ws = null
      if (this.stopped) return
      // 4400 bad request, 4401 unauthorized, 4403 forbidden: retrying soon
      // cannot help; poll and try again rarely (a new token makes a new client).
      if (ev && (ev.code === 4400 || ev.code === 4401 || ev.code === 4403)) this.failures = Math.max(this.failures, 10)
      this.retry()
    }
    ws.onerror = () => {
      // onclose follows and schedules the retry.
    }
  }

  private retry(): void {
    this.failures++
    const min = this.opts.minDelayMs ?? 1000
    const max = this.opts.maxDelayMs ?? 30000
    // Never opened after a few tries: the server has no /api/ws (yet); poll and try rarely.
    const unavailable = this.failures >= 10 || (!this.everOpened && this.failures >= 3)
    this.opts.onState(unavailable ? 'unavailable' : 'reconnecting')
    const cap = unavailable ? Math.max(max, 60000) : max
    const delay = Math.min(cap, min * 2 ** Math.min(10, this.failures - 1)) * (0.75 + Math.random() * 0.5)
    this.timer = setTimeout(() => {
      this.timer = null
      if (!this.stopped) this.connect()
    }, delay)
  }
}
