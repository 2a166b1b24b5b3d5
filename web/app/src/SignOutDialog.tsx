// Asked at sign-out when commands wait in the outbox: keep them (they go out
// when the player signs in again) or discard them.
import { useModalFocus } from './modalFocus'

export function SignOutDialog({ waiting, onKeep, onDiscard, onCancel }: { waiting: number; onKeep: () => void; onDiscard: () => void; onCancel: () => void }) {
  const { first, box, onKeyDown } = useModalFocus(onCancel)
  return (
    <div className="dialog-backdrop">
      <div
        className="dialog card"
        role="alertdialog"
        aria-modal="true"
        aria-labelledby="signout-title"
        aria-describedby="signout-text"
        data-testid="signout-dialog"
        ref={box}
        onKeyDown={onKeyDown}
      >
        <h2 id="signout-title">Sign out with unsent changes?</h2>
        <p id="signout-text">
          {waiting === 1 ? '1 change has' : `${waiting} changes have`} not reached the server yet. Keep {waiting === 1 ? 'it' : 'them'} on this device to send when you
          sign in again, or discard {waiting === 1 ? 'it' : 'them'}.
        </p>
        <div className="row dialog-actions">
          <button ref={first} type="button" className="primary" onClick={onKeep}>
            Keep and sign out
          </button>
          <button type="button" onClick={onDiscard}>
            Discard and sign out
          </button>
          <button type="button" className="ghost" onClick={onCancel}>
            Cancel
          </button>
        </div>
      </div>
    </div>
  )
}
