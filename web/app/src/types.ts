// The JSON shapes of docs/API.md. Keep them in step with that page.

export interface QueueTask {
  taskId: string
  type: string
  count: number
  done: number
  enqueuedAt: string
}

export interface Repetition {
  taskId: string
  number: number
  startedAt: string
  dueAt: string
  durationMs: number
  efficiency: number
}

export interface SkillState {
  xp: number
  level: number
}

export interface QueueView {
  playerId: string
  version: number
  running: boolean
  stoppedReason: string
  limit: number
  tasks: QueueTask[]
  repetition: Repetition | null
  skills: Record<string, SkillState>
  inventory: Record<string, number>
  updatedAt: string
  serverTime: string
}

export interface CatalogSkill {
  id: string
  name: string
}

export interface CatalogItem {
  id: string
  name: string
}

export interface CatalogTask {
  id: string
  name: string
  skill: string
  levelRequired: number
  baseDurationMs: number
  inputs: Record<string, number>
  outputs: Record<string, number>
  xp: number
}

export interface Catalog {
  skills: CatalogSkill[]
  items: CatalogItem[]
  tasks: CatalogTask[]
  levels: { max: number; xpForLevel: number[] }
}

/** An RFC 9457 problem as the server sends it. */
export interface Problem {
  type: string
  title: string
  status: number
  detail?: string
  field?: string
  instance?: string
  requestId?: string
}

/** A domain event as it appears in WebSocket messages and the admin event log. */
export interface DomainEvent {
  type: string
  version: number
  position: string
  occurredAt: string
  data: Record<string, unknown>
}

/** One finished task of GET /api/queue/{playerId}/history (query.HistoryEntry). */
export interface HistoryEntry {
  taskId: string
  type: string
  outcome: 'completed' | 'failed' | 'cancelled' | string
  reason: string
  count: number
  repetitionsDone: number
  enqueuedAt: string
  startedAt: string | null
  finishedAt: string
  durationMs: number | null
  xp: number
  itemsGranted: Record<string, number> | null
  itemsConsumed: Record<string, number> | null
  efficiency: number | null
}

export interface HistoryPage {
  entries: HistoryEntry[]
  nextCursor: string
}
