// The JSON shapes of the HTTP API, from its spec (api/openapi.yaml, the one
// source of truth; docs/API.md is its prose). api-types.ts is generated from
// the spec by `npm run gen:types` and must not be edited; .ci/web fails when
// it is stale. Only the WebSocket's shapes (docs/REALTIME.md) are written here.
import type { components } from './api-types'

type Schemas = components['schemas']

export type QueueTask = Schemas['Task']
export type Repetition = Schemas['Repetition']
export type SkillState = Schemas['SkillState']
/** What the queue is doing: idle (runs, holds nothing), running, stopped. */
export type QueueState = Schemas['QueueStateName']
export type QueueView = Schemas['QueueView']

export type Catalog = Schemas['Catalog']
export type CatalogSkill = Catalog['skills'][number]
export type CatalogItem = Catalog['items'][number]
export type CatalogTask = Schemas['TaskType']

/** An RFC 9457 problem as the server sends it. */
export type Problem = Schemas['Problem']

/** One finished task of GET /api/queue/{playerId}/history. */
export type HistoryEntry = Schemas['HistoryEntry']
export type HistoryPage = Schemas['HistoryPage']

/** A domain event as it appears in WebSocket messages (docs/REALTIME.md). */
export interface DomainEvent {
  type: string
  version: number
  position: string
  occurredAt: string
  data: Record<string, unknown>
}
