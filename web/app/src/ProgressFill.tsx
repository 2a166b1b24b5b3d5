// The fill of the running repetition's bar. One element per repetition (the
// caller keys it), so a new repetition starts at its own fraction instead of
// sliding back from the last one; from there a single linear transition runs
// it to full exactly at the (local estimate of the) due time, instead of
// trailing behind 200 ms ticks. With reduced motion it follows the ticks.
import { useLayoutEffect, useRef } from 'react'

const reducedMotion = () => typeof matchMedia === 'function' && matchMedia('(prefers-reduced-motion: reduce)').matches

export function ProgressFill({ fraction, dueInMs }: { fraction: number; dueInMs: number | null }) {
  const ref = useRef<HTMLDivElement>(null)
  const animate = dueInMs !== null && !reducedMotion()
  // When the due time moves (a new clock offset), restart from where the bar is.
  const dueLocal = dueInMs === null ? null : Math.round((Date.now() + dueInMs) / 50)
  useLayoutEffect(() => {
    const el = ref.current
    if (!el || !animate || dueLocal === null) return
    const from = el.style.transform ? new DOMMatrixReadOnly(getComputedStyle(el).transform).a : fraction
    el.style.transition = 'none'
    el.style.transform = `scaleX(${Math.max(from, fraction)})`
    void el.getBoundingClientRect() // commit the start before the transition
    const left = Math.max(0, dueLocal * 50 - Date.now())
    el.style.transition = `transform ${left}ms linear`
    el.style.transform = 'scaleX(1)'
    // fraction is read at the start only: the transition carries it on.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [animate, dueLocal])
  return <div ref={ref} className="bar-fill" data-testid="bar-fill" style={animate ? undefined : { transform: `scaleX(${fraction})` }} />
}
