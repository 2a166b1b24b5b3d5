import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { RealtimeClient, parseServerMessage, type RealtimeState } from './realtime'
import { viewOf } from './testdata'

// A stand-in for the browser's WebSocket: records what the client sends and
// lets the test open, message and close it.
class TestSocket {
  readyState = 0
  sent: string[] = []
  onopen: (() => void) | null = null
  onmessage: ((ev: { data: unknown }) => void) | null = null
  onclose: ((ev: { code: number }) => void) | null = null
  onerror: (() => void) | null = null
  constructor(readonly url: string) {}
  send(data: string) {
    this.sent.push(data)
  }
  close() {
    this.readyState = 3
    this.onclose?.({ code: 1000 })
  }
  open() {
    this.readyState = 1
    this.onopen?.()
  }
  receive(m: unknown) {
    this.onmessage?.({ data: JSON.stringify(m) })
  }
  drop(code = 1006) {
    this.readyState = 3
    this.onclose?.({ code })
  }
}

describe('RealtimeClient', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('subscribes, follows positions, and resumes from the last one after a drop', () => {
    const sockets: TestSocket[] = []
    const states: RealtimeState[] = []
    const views: string[] = []
    const client = new RealtimeClient({
      url: 'ws://host/api/ws',
      token: 'tok en',
      playerId: 'alice',
      onQueue: (v, pos) => views.push(`${v.version}@${pos}`),
      onState: (s) => states.push(s),
      socket: (url) => {
        const s = new TestSocket(url)
        sockets.push(s)
        return s as unknown as WebSocket
      },
    })
    client.start()
    expect(sockets[0].url).toBe('ws://host/api/ws?access_token=tok%20en')
    sockets[0].open()
    expect(JSON.parse(sockets[0].sent[0])).toEqual({ type: 'subscribe', playerId: 'alice' })
    expect(states.at(-1)).toBe('connecting')
    sockets[0].receive({ type: 'subscribed', playerId: 'alice', position: '40' })
    expect(states.at(-1)).toBe('live')
    sockets[0].receive({ type: 'event', position: '41', event: { type: 'TaskEnqueued', version: 15, position: '41', occurredAt: '', data: {} }, queue: viewOf({ version: 15 }) })
    sockets[0].receive({ type: 'reset', position: '90', queue: viewOf({ version: 20 }) })
    sockets[0].receive('garbage')
    expect(views).toEqual(['15@41', '20@90'])

    sockets[0].drop()
    expect(states.at(-1)).toBe('reconnecting')
    vi.advanceTimersByTime(5000)
    expect(sockets).toHaveLength(2)
    sockets[1].open()
    expect(JSON.parse(sockets[1].sent[0])).toEqual({ type: 'subscribe', playerId: 'alice', since: '90' })
    sockets[1].receive({ type: 'subscribed', playerId: 'alice', position: '90' })
    expect(states.at(-1)).toBe('live')
    // A refusal (4403) is not retried soon: the app polls meanwhile.
    sockets[1].drop(4403)
    expect(states.at(-1)).toBe('unavailable')
    vi.advanceTimersByTime(20000)
    expect(sockets).toHaveLength(2)
    client.stop()
    expect(states.at(-1)).toBe('closed')
  })

  it('reports unavailable when the server never accepts the socket', () => {
    const states: RealtimeState[] = []
    const client = new RealtimeClient({
      url: 'ws://host/api/ws',
      token: 't',
      playerId: 'alice',
      onQueue: () => {},
      onState: (s) => states.push(s),
      socket: (url) => {
        const s = new TestSocket(url)
        queueMicrotask(() => s.drop())
        return s as unknown as WebSocket
      },
    })
    client.start()
    return (async () => {
      for (let i = 0; i < 3; i++) {
        await Promise.resolve()
        vi.advanceTimersByTime(10000)
      }
      await Promise.resolve()
      expect(states).toContain('unavailable')
      client.stop()
    })()
  })
})

describe('parseServerMessage', () => {
  it('accepts the documented shapes only', () => {
    expect(parseServerMessage('{"type":"reset","position":"1","queue":{}}')?.type).toBe('reset')
    expect(parseServerMessage('{"type":"event","position":"1"}')).toBeNull()
    expect(parseServerMessage('{"type":"mystery"}')).toBeNull()
    expect(parseServerMessage(new ArrayBuffer(2))).toBeNull()
  })
})
