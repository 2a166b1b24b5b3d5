// The repetitions a player may queue at once (domain.MinCount and MaxCount),
// and why a typed count is not one of them, in the player's words.

export const MIN_COUNT = 1
export const MAX_COUNT = 1000

/** Why raw (the count field's text) cannot be queued; null when it can. */
export function countProblem(raw: string): string | null {
  const text = raw.trim()
  if (text === '') return `Enter how many times to repeat it (${MIN_COUNT} to ${MAX_COUNT}).`
  const n = Number(text)
  if (!Number.isFinite(n)) return `Enter a whole number from ${MIN_COUNT} to ${MAX_COUNT}.`
  if (!Number.isInteger(n)) return 'Repetitions are whole: no fractions.'
  if (n < MIN_COUNT) return `At least ${MIN_COUNT} repetition.`
  if (n > MAX_COUNT) return `At most ${MAX_COUNT} repetitions at once.`
  return null
}
