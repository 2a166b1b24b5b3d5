import { describe, expect, it } from 'vitest'
import { reasonFor } from './problems'

const p = (kind: string, detail?: string) => ({ type: `urn:taskqueue:problem:${kind}`, title: kind, detail })

describe('reasonFor', () => {
  it('says known refusals in plain words, without the server internals', () => {
    expect(reasonFor(p('not-found', 'remove task 0259… of alice: task not found'))).toBe('That task is no longer in the queue (it finished, or was removed elsewhere).')
    expect(reasonFor(p('queue-full'))).toBe('The queue was full.')
    expect(reasonFor(p('requirement-not-met', 'woodcutting level 5 required'))).toBe('Your level is too low: woodcutting level 5 required.')
  })
  it("falls back to the server's detail, then its title", () => {
    expect(reasonFor(p('validation', 'count must be between 1 and 1000'))).toBe('count must be between 1 and 1000')
    expect(reasonFor(p('http-418'))).toBe('http-418')
  })
})
