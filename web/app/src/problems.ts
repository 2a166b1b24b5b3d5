// What the player reads when the server refuses a command: the problem kinds
// of docs/API.md in plain words, the server's detail for the others.

/** Why the server refused a command, in the player's words where the kind is known. */
export function reasonFor(problem: { type: string; title: string; detail?: string }): string {
  switch (problem.type.replace(/^urn:taskqueue:problem:/, '')) {
    case 'not-found':
      return 'That task is no longer in the queue (it finished, or was removed elsewhere).'
    case 'queue-full':
      return 'The queue was full.'
    case 'requirement-not-met':
      return problem.detail ? `Your level is too low: ${problem.detail}.` : 'Your level is too low for that task.'
    case 'idempotency-key-reused':
      return 'It clashed with an earlier attempt of a different change.'
    case 'forbidden':
      return 'You may not change this queue.'
    default:
      return problem.detail || problem.title
  }
}
