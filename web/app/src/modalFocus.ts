// What a modal dialog does with the focus: it starts on the first (safe)
// choice and goes back to what had it when the dialog closes; Escape
// cancels; Tab and Shift+Tab wrap round inside the dialog.
import { useEffect, useRef, type KeyboardEvent } from 'react'

export function useModalFocus(onCancel: () => void) {
  const first = useRef<HTMLButtonElement>(null)
  const box = useRef<HTMLDivElement>(null)
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null
    first.current?.focus()
    return () => before?.focus()
  }, [])
  function onKeyDown(e: KeyboardEvent) {
    if (e.key === 'Escape') {
      e.preventDefault()
      return onCancel()
    }
    if (e.key !== 'Tab' || !box.current) return
    const controls = [...box.current.querySelectorAll<HTMLElement>('button:not(:disabled)')]
    const at = controls.indexOf(document.activeElement as HTMLElement)
    const next = e.shiftKey ? (at <= 0 ? controls.length - 1 : at - 1) : at === controls.length - 1 ? 0 : at + 1
    e.preventDefault()
    controls[next]?.focus()
  }
  return { first, box, onKeyDown }
}
