// Builders for tests: a queue view shaped like docs/API.md's example.
import type { OutboxEntry, Command } from './outbox'
import type { QueueView } from './types'

export function viewOf(partial: Partial<QueueView> = {}): QueueView {
  return {
    playerId: 'alice',
    version: 14,
    state: 'running',
    running: true,
    stoppedReason: '',
    limit: 10,
    tasks: [
      { taskId: 'a', type: 'chop-wood', count: 10, done: 3, enqueuedAt: '2026-11-29T14:00:00Z' },
      { taskId: 'b', type: 'saw-planks', count: 5, done: 0, enqueuedAt: '2026-11-29T14:00:02Z' },
      { taskId: 'c', type: 'chop-wood', count: 2, done: 0, enqueuedAt: '2026-11-29T14:00:03Z' },
    ],
    repetition: {
      taskId: 'a',
      number: 4,
      startedAt: '2026-11-29T14:00:09Z',
      dueAt: '2026-11-29T14:00:12Z',
      durationMs: 3000,
      efficiency: 1,
    },
    skills: { woodcutting: { xp: 120, level: 3 } },
    inventory: { logs: 12 },
    updatedAt: '2026-11-29T14:00:09Z',
    serverTime: '2026-11-29T14:00:10.500Z',
    ...partial,
  }
}

let seq = 0
export function entryOf(command: Command, playerId = 'alice'): OutboxEntry {
  seq++
  return { key: `k${seq}`, seq, playerId, command, createdAt: '2026-11-29T14:00:11Z', attempts: 0 }
}
