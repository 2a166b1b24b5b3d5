// A modal question before an action that loses progress (Stop, removing the
// running task). The focus starts on the safe choice; Escape cancels; Tab and
// Shift+Tab stay inside; the focus goes back to the button that opened it.
import { useId, useState, type ReactNode } from 'react'
import { useModalFocus } from './modalFocus'

export function ConfirmDialog({
  title,
  text,
  confirm,
  cancel,
  onConfirm,
  onCancel,
}: {
  title: string
  text: ReactNode
  confirm: string
  cancel: string
  onConfirm: () => void
  onCancel: () => void
}) {
  const id = useId()
  const { first: safe, box, onKeyDown } = useModalFocus(onCancel)
  return (
    <div className="dialog-backdrop" onClick={(e) => e.target === e.currentTarget && onCancel()}>
      <div
        className="dialog card"
        role="alertdialog"
        aria-modal="true"
        aria-labelledby={`${id}-title`}
        aria-describedby={`${id}-text`}
        data-testid="confirm-dialog"
        ref={box}
        onKeyDown={onKeyDown}
      >
        <h2 id={`${id}-title`}>{title}</h2>
        <p id={`${id}-text`}>{text}</p>
        <div className="row dialog-actions">
          <button ref={safe} type="button" className="primary" onClick={onCancel} data-testid="confirm-cancel">
            {cancel}
          </button>
          <button type="button" className="danger" onClick={onConfirm} data-testid="confirm-ok">
            {confirm}
          </button>
        </div>
      </div>
    </div>
  )
}

/**
 * A button whose action waits for a yes in a ConfirmDialog. ask: whether to
 * ask at all (false runs the action at once).
 */
export function ConfirmButton({
  children,
  ask,
  dialog,
  onConfirm,
  ...button
}: {
  children: ReactNode
  ask: boolean
  dialog: { title: string; text: ReactNode; confirm: string; cancel: string }
  onConfirm: () => void
  className?: string
  'aria-label'?: string
  'data-testid'?: string
}) {
  const [open, setOpen] = useState(false)
  return (
    <>
      <button type="button" {...button} aria-haspopup={ask ? 'dialog' : undefined} onClick={() => (ask ? setOpen(true) : onConfirm())}>
        {children}
      </button>
      {open && (
        <ConfirmDialog
          {...dialog}
          onCancel={() => setOpen(false)}
          onConfirm={() => {
            setOpen(false)
            onConfirm()
          }}
        />
      )}
    </>
  )
}

/** What Stop loses: the running repetition's progress (its inputs come back). */
export function stopDialog(name: string) {
  return {
    title: 'Stop the queue?',
    text: `The repetition of ${name} running now is cancelled: its progress is lost (its inputs come back). ${name} stays first, and Start runs it again.`,
    confirm: 'Stop the queue',
    cancel: 'Keep running',
  }
}

/** What removing the running task loses: the repetition under way and those left. */
export function removeRunningDialog(name: string, left: number) {
  return {
    title: `Remove ${name}?`,
    text: `It is running now: the repetition under way is cancelled (its inputs come back) and ${left === 1 ? 'the last one left is' : `the ${left} left are`} dropped. The next task starts.`,
    confirm: `Remove ${name}`,
    cancel: 'Keep it',
  }
}
