// Props that keep their identity while what they hold is the same, so that a
// memoised component given them does not re-render: each queue view from the
// server is a new object, though most of it is unchanged.
import { useRef } from 'react'

/** value, or the one returned last time when equal to it. */
export function useStable<T>(value: T, equal: (a: T, b: T) => boolean): T {
  const ref = useRef(value)
  if (ref.current !== value && !equal(ref.current, value)) ref.current = value
  return ref.current
}

/** Whether two records have the same keys with equal values. */
export function sameRecord<V>(a: Readonly<Record<string, V>>, b: Readonly<Record<string, V>>, equal: (x: V, y: V) => boolean = Object.is): boolean {
  if (a === b) return true
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  return ka.every((k) => k in b && equal(a[k], b[k]))
}
