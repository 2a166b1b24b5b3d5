import {
  DndContext,
  MeasuringStrategy,
  PointerSensor,
  closestCenter,
  useSensor,
  useSensors,
  type Announcements,
  type DragEndEvent,
} from '@dnd-kit/core'
import { SortableContext, arrayMove, useSortable, verticalListSortingStrategy } from '@dnd-kit/sortable'
import { CSS } from '@dnd-kit/utilities'
import { memo, startTransition, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type KeyboardEvent as ReactKeyboardEvent } from 'react'
import { ConfirmButton, removeRunningDialog, stopDialog } from './ConfirmDialog'
import { isPendingTaskId, type DisplayTask } from './merge'
import { reasonFor } from './problems'
import { ProgressFill } from './ProgressFill'
import { RunningRates } from './RunningRates'
import { computeProgress, formatClock, formatDuration } from './progress'
import { countRender } from './renders'
import type { Catalog, QueueState, QueueView } from './types'
import type { TaskQueueState } from './useTaskQueue'

function taskName(catalog: Catalog | null, type: string): string {
  return catalog?.tasks.find((t) => t.id === type)?.name ?? type
}

function describeCommand(catalog: Catalog | null, c: TaskQueueState['pending'][number]['command']): string {
  switch (c.kind) {
    case 'enqueue':
      return `Add ${taskName(catalog, c.type)} ×${c.count}${c.position === undefined ? '' : ` at position ${c.position + 1}`}`
    case 'remove':
      return `Remove ${c.label ?? 'a task'}`
    case 'stop':
      return 'Stop the queue'
    case 'start':
      return 'Start the queue'
    case 'reorder':
      return 'Reorder the queue'
  }
}

/** How each queue state shows: an empty queue is idle, not running. */
const stateBadge: Record<QueueState, { label: string; className: string }> = {
  running: { label: 'Running', className: 'badge-run' },
  idle: { label: 'Idle', className: 'badge-idle' },
  stopped: { label: 'Stopped', className: 'badge-stop' },
}

const noEnds = new Map<string, number>()

/**
 * The end times, each kept as it was while it moves by less than half a
 * second and shows the same clock time: every view recomputes them against
 * the server's clock, whose offset jitters, and a moved end would re-render
 * its row for nothing. The header, the head task and the rows all use these.
 */
function useStableEnds(ends: Map<string, number>): Map<string, number> {
  const prev = useRef(ends)
  const p = prev.current
  if (p === ends) return p
  const out = new Map<string, number>()
  let same = p.size === ends.size
  for (const [id, at] of ends) {
    const was = p.get(id)
    const keep = was !== undefined && Math.abs(was - at) < 500 && formatClock(was) === formatClock(at)
    out.set(id, keep ? was : at)
    if (!keep) same = false
  }
  if (!same) prev.current = out
  return prev.current
}

export function QueuePanel({ q }: { q: TaskQueueState }) {
  countRender('QueuePanel')
  const { view, display, catalog, commands } = q
  // The queue ends when its last task does (unknown while one waits to be sent).
  // Nothing ends while the queue is stopped (or a Stop waits to be sent).
  const ends = useStableEnds(display?.running ? q.ends : noEnds)
  if (!view || !display) {
    return (
      <div className="card queue">
        <h2>Your queue</h2>
        <p className="muted">{q.connection === 'offline' ? 'Offline, and no saved copy of your queue yet.' : 'Loading your queue…'}</p>
      </div>
    )
  }
  const head = display.headLocked ? display.tasks[0] : undefined
  const waiting = display.headLocked ? display.tasks.slice(1) : display.tasks
  const realCount = view.tasks.length
  // An empty queue has nothing held back: no "stopped" banner (an old server
  // stopped queues that offline progress had drained).
  const stoppedByServer = !display.running && display.tasks.length > 0 && view.stoppedReason
  const lastEnd = display.tasks.length > 0 ? ends.get(display.tasks[display.tasks.length - 1].taskId) : undefined
  const allDone = display.running && display.tasks.every((t) => !t.pending) ? lastEnd : undefined
  return (
    <div className="card queue" data-testid="queue">
      <div className="queue-head">
        <h2>Your queue</h2>
        <span className={`badge ${stateBadge[display.state].className}`} data-testid="queue-state" data-state={display.state}>
          {stateBadge[display.state].label}
          {display.pendingRunning && <span className="pending-mark"> · pending</span>}
        </span>
        {q.estimated && (
          <span className="badge badge-estimated" data-testid="estimated" title="The server cannot be reached: this is where your queue should be by now, by the rules. It is confirmed when the server answers again.">
            estimated
          </span>
        )}
        <span className="muted count" data-testid="queue-count">
          {display.tasks.length} / {view.limit} tasks
        </span>
        {allDone !== undefined && (
          <span className="muted count" data-testid="queue-ends" data-ends-at={allDone}>
            · all done at {formatClock(allDone)}
          </span>
        )}
        <div className="spacer" />
        {/* Idle (running, nothing queued): nothing to stop or start. */}
        {display.state === 'running' && (
          <ConfirmButton ask={display.headLocked && !!head && head.pending !== 'remove'} dialog={stopDialog(head ? taskName(catalog, head.type) : 'the running task')} onConfirm={() => void commands.stop()} data-testid="stop">
            Stop
          </ConfirmButton>
        )}
        {display.state === 'stopped' && (
          <button type="button" className="primary" onClick={() => void commands.start()} data-testid="start" disabled={display.tasks.length === 0 && realCount === 0}>
            Start
          </button>
        )}
      </div>
      {stoppedByServer && (
        <p className="banner banner-bad" data-testid="stopped-reason">
          Stopped by the server: {view.stoppedReason}
        </p>
      )}
      <Outbox q={q} />
      {display.tasks.length === 0 && <p className="empty muted">Nothing queued. Pick a task from the catalog to get going.</p>}
      {head && <HeadTask task={head} view={view} offset={q.offset} catalog={catalog} endsAt={ends.get(head.taskId)} onRemove={() => void commands.remove(head.taskId, taskName(catalog, head.type))} />}
      {waiting.length > 0 && (
        <>
          <h3 className="subhead">{head ? 'Up next' : 'Waiting'}</h3>
          <WaitingList tasks={waiting} headLocked={display.headLocked} ends={ends} catalog={catalog} inFlight={q.inFlight} commands={commands} />
        </>
      )}
    </div>
  )
}

/** What a screen reader says of the bar: "repetition 3 of 10, 2 s left", not "22". */
function progressText(p: ReturnType<typeof computeProgress>, task: DisplayTask): string {
  if (!p) return `${task.done} of ${task.count} done`
  return `repetition ${p.repetition} of ${p.count}, ${p.overdue ? 'finishing' : `${Math.ceil(p.remainingMs / 1000)} s left`}`
}

function HeadTask({
  task,
  view,
  offset,
  catalog,
  endsAt,
  onRemove,
}: {
  task: DisplayTask
  view: QueueView
  offset: number
  catalog: Catalog | null
  endsAt: number | undefined
  onRemove: () => void
}) {
  countRender('HeadTask')
  const [now, setNow] = useState(() => Date.now())
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), 200)
    return () => clearInterval(id)
  }, [])
  const p = computeProgress(view, offset, now)
  return (
    <div className={`head-task ${task.pending === 'remove' ? 'is-removing' : ''}`} data-testid="head-task" data-task-id={task.taskId} data-task-type={task.type}>
      <div className="row">
        <div className="task-title">
          <span className="task-name">{taskName(catalog, task.type)}</span>
          <span className="muted"> ×{task.count}</span>
          <EndsAt at={endsAt} />
        </div>
        <div className="spacer" />
        {task.pending === 'remove' ? (
          <span className="pending-mark">removing…</span>
        ) : (
          <ConfirmButton ask dialog={removeRunningDialog(taskName(catalog, task.type), task.count - task.done)} onConfirm={onRemove} className="ghost small" aria-label={`Remove ${taskName(catalog, task.type)}`} data-testid="remove-running">
            Remove
          </ConfirmButton>
        )}
      </div>
      <div className="bar bar-progress" role="progressbar" aria-label="Repetition progress" aria-valuemin={0} aria-valuemax={100} aria-valuenow={p ? Math.round(p.fraction * 100) : 0}
        aria-valuetext={progressText(p, task)}
      >
        <ProgressFill
          key={view.repetition ? `${view.repetition.taskId}:${view.repetition.number}` : 'none'}
          fraction={p ? p.fraction : 0}
          dueInMs={p && !p.overdue ? p.remainingMs : null}
        />
      </div>
      <div className="row tiny progress-text">
        <span data-testid="repetition">{p ? `Repetition ${p.repetition} of ${p.count}` : `${task.done} of ${task.count} done`}</span>
        <span className="mono" data-testid="time-left">
          {p ? (p.overdue ? 'finishing…' : `${formatDuration(p.remainingMs)} left · task ${formatDuration(p.taskRemainingMs)}`) : ''}
        </span>
      </div>
      <RunningRates view={view} catalog={catalog} />
    </div>
  )
}

type Commands = TaskQueueState['commands']

/** The same array while the ids keep their order, so the sortable context and the rows keep stable props. */
function useStableIds(ids: string[]): string[] {
  const ref = useRef(ids)
  if (ref.current.length !== ids.length || ref.current.some((id, i) => id !== ids[i])) ref.current = ids
  return ref.current
}

/** A row being moved with the keyboard: the order as the player sees it now, and where it started. */
interface KeyboardMove {
  id: string
  order: string[]
  start: string[]
}

/**
 * The waiting tasks, in a sortable list. The pointer drags with dnd-kit; the
 * keyboard moves a row without it: space or enter picks the row up, each arrow
 * press moves it one place at once (the order lives in a ref, so presses
 * faster than the page renders are never lost, and the row's number follows
 * at once), space or enter drops it there and sends the order, escape cancels.
 */
const WaitingList = memo(function WaitingList({
  tasks,
  headLocked,
  ends,
  catalog,
  inFlight,
  commands,
}: {
  tasks: DisplayTask[]
  headLocked: boolean
  ends: Map<string, number>
  catalog: Catalog | null
  inFlight: string | null | undefined
  commands: Commands
}) {
  countRender('WaitingList')
  const sensors = useSensors(useSensor(PointerSensor, pointerOptions))
  const serverIds = useStableIds(tasks.map((t) => t.taskId))
  const byId = useMemo(() => new Map(tasks.map((t) => [t.taskId, t])), [tasks])
  const names = useMemo(() => new Map(catalog?.tasks.map((t) => [t.id, t.name]) ?? []), [catalog])
  const nameOf = (type: string) => names.get(type) ?? type

  // The keyboard move in progress (the ref is the truth; the state renders it),
  // and after a drop the order sent, shown until the queue shows it.
  const moveRef = useRef<KeyboardMove | null>(null)
  const [move, setMove] = useState<KeyboardMove | null>(null)
  const [held, setHeld] = useState<string[] | null>(null)
  const [announcement, setAnnouncement] = useState('')
  const listRef = useRef<HTMLOListElement>(null)

  /** An order laid over the current tasks: the ones gone dropped, new ones at the end. */
  const overlay = (order: string[]) => {
    const present = order.filter((id) => byId.has(id))
    const seen = new Set(present)
    return [...present, ...serverIds.filter((id) => !seen.has(id))]
  }
  const shownIds = useStableIds(move ? overlay(move.order) : held ? overlay(held) : serverIds)
  // What dnd-kit's sortable context holds: during a keyboard move, the order
  // at the pickup (nothing is dragged by dnd-kit then, and a pointer drag
  // ends the keyboard move first; outside a drag, the order of its items
  // shows nowhere). A new items array changes the context every useSortable
  // reads, which re-renders every row, memoised or not: this way a press
  // re-renders only the two rows whose places changed, and after a drop
  // dnd-kit gets the new order in a transition, after the drop is painted.
  const [frozen, setFrozen] = useState<string[] | null>(null)
  const sortableIds = useStableIds(frozen ? overlay(frozen) : shownIds)
  useEffect(() => {
    if (!held) return
    const present = held.filter((id) => byId.has(id))
    if (present.length === serverIds.length && present.every((id, i) => id === serverIds[i])) {
      setHeld(null)
      return
    }
    const t = setTimeout(() => setHeld(null), 5000) // refused or overtaken: the queue as it is
    return () => clearTimeout(t)
  }, [held, serverIds, byId])

  // A moved row keeps the focus (React may re-insert its element) and stays in sight.
  useLayoutEffect(() => {
    if (!move) return
    const handle = listRef.current?.querySelector<HTMLElement>(`[data-task-id="${CSS_escape(move.id)}"] .handle`)
    if (!handle) return
    if (document.activeElement !== handle) handle.focus()
    handle.scrollIntoView({ block: 'nearest' })
  }, [move])

  const firstPosition = headLocked ? 2 : 1
  const idsRef = useRef(shownIds)
  idsRef.current = shownIds
  const byIdRef = useRef(byId)
  byIdRef.current = byId
  const namesRef = useRef(names)
  namesRef.current = names
  // One stable handler for every row, reading the latest state from refs.
  const onHandleKey = useCallback(
    (id: string, e: ReactKeyboardEvent) => {
      const label = (x: string) => {
        const t = byIdRef.current.get(x)
        return t ? (namesRef.current.get(t.type) ?? t.type) : 'the task'
      }
      const m = moveRef.current
      const set = (next: KeyboardMove | null, moved = false) => {
        moveRef.current = next
        setMove(next)
        if (next) return
        // Dropped in a new place: dnd-kit gets the order once the drop is
        // painted. Cancelled, or dropped where it was: nothing changes for dnd-kit.
        if (moved) startTransition(() => setFrozen(null))
        else setFrozen(null)
      }
      if (!m || m.id !== id) {
        if (e.key !== ' ' && e.key !== 'Enter') return
        e.preventDefault()
        const order = idsRef.current
        set({ id, order, start: order })
        setFrozen(order)
        setAnnouncement(`Picked up ${label(id)} at position ${firstPosition + order.indexOf(id)}.`)
        return
      }
      const at = m.order.indexOf(id)
      switch (e.key) {
        case 'ArrowUp':
        case 'ArrowDown': {
          e.preventDefault()
          const to = e.key === 'ArrowUp' ? Math.max(0, at - 1) : Math.min(m.order.length - 1, at + 1)
          if (to !== at) set({ ...m, order: arrayMove(m.order, at, to) })
          setAnnouncement(`${label(id)} moved to position ${firstPosition + to}.`)
          return
        }
        case ' ':
        case 'Enter': {
          e.preventDefault()
          const moved = m.order.some((x, i) => x !== m.start[i])
          set(null, moved)
          setAnnouncement(`${label(id)} dropped at position ${firstPosition + at}.`)
          if (moved) {
            setHeld(m.order)
            void commands.reorder(m.order.filter((x) => !isPendingTaskId(x)))
          }
          return
        }
        case 'Escape': {
          e.preventDefault()
          set(null)
          setAnnouncement(`Moving ${label(id)} was cancelled.`)
          return
        }
        case 'Tab':
          e.preventDefault() // the row stays picked up until dropped or cancelled
          return
      }
    },
    [commands, firstPosition],
  )
  // A row that leaves the queue while picked up ends the move.
  useEffect(() => {
    if (move && !byId.has(move.id)) {
      moveRef.current = null
      setMove(null)
      setFrozen(null)
    }
  }, [move, byId])

  // A pointer drag while a row is picked up with the keyboard cancels the keyboard move.
  function onDragStart() {
    setFrozen(null)
    if (!moveRef.current) return
    moveRef.current = null
    setMove(null)
  }
  function onDragEnd(e: DragEndEvent) {
    const { active, over } = e
    if (!over || active.id === over.id) return
    const from = shownIds.indexOf(String(active.id))
    const to = shownIds.indexOf(String(over.id))
    if (from < 0 || to < 0) return
    const order = arrayMove(shownIds, from, to)
    setHeld(order)
    void commands.reorder(order.filter((id) => !isPendingTaskId(id)))
  }
  // Screen-reader announcements of pointer drags, in words (task names and
  // positions), not IDs. One object, reading the latest state from refs:
  // dnd-kit re-subscribes its announcer whenever it gets a new one.
  const firstRef = useRef(firstPosition)
  firstRef.current = firstPosition
  const announcements = useMemo<Announcements>(() => {
    const label = (id: string | number) => {
      const t = byIdRef.current.get(String(id))
      return t ? (namesRef.current.get(t.type) ?? t.type) : 'the task'
    }
    const positionOf = (id: string | number | undefined) => firstRef.current + Math.max(0, idsRef.current.indexOf(String(id)))
    return {
      onDragStart: ({ active }) => `Picked up ${label(active.id)} at position ${positionOf(active.id)}.`,
      onDragOver: ({ active, over }) => (over ? `${label(active.id)} moved to position ${positionOf(over.id)}.` : `${label(active.id)} is not over a position.`),
      onDragEnd: ({ active, over }) => (over ? `${label(active.id)} dropped at position ${positionOf(over.id)}.` : `${label(active.id)} dropped.`),
      onDragCancel: ({ active }) => `Moving ${label(active.id)} was cancelled.`,
    }
  }, [])
  const accessibility = useMemo(() => ({ announcements, screenReaderInstructions }), [announcements])
  return (
    <DndContext
      sensors={sensors}
      collisionDetection={closestCenter}
      measuring={measuring}
      onDragStart={onDragStart}
      onDragEnd={onDragEnd}
      accessibility={accessibility}
    >
      <SortableContext items={sortableIds} strategy={verticalListSortingStrategy}>
        {/* While a row is moved, the end times (of the order as it was) are hidden by the class, not by re-rendering every row. */}
        <ol className={`waiting ${move ? 'is-moving' : ''}`} data-testid="waiting" ref={listRef}>
          {shownIds.map((id, i) => {
            const t = byId.get(id)!
            return (
              <WaitingItem
                key={id}
                task={t}
                position={firstPosition + i}
                endsAt={ends.get(id)}
                name={nameOf(t.type)}
                sending={t.sending === true || (t.pendingKey !== undefined && t.pendingKey === inFlight)}
                picked={move?.id === id}
                onKey={onHandleKey}
                commands={commands}
              />
            )
          })}
        </ol>
      </SortableContext>
      <div className="visually-hidden" aria-live="assertive" aria-atomic="true" data-testid="move-announcement">
        {announcement}
      </div>
    </DndContext>
  )
})

const measuring = { droppable: { strategy: MeasuringStrategy.Always } }
// One object for every render: useSensor memoises on it, and a new sensor
// changes dnd-kit's internal context, which re-renders every sortable row.
const pointerOptions = { activationConstraint: { distance: 4 } }
const screenReaderInstructions = {
  draggable: 'To move a task, press space or enter. Use the up and down arrow keys to move it one place at a time, space or enter to drop it there, escape to cancel.',
}

// CSS.escape, where the browser has it (task ids are UUIDs: nothing to escape otherwise).
const CSS_escape = (s: string) => (typeof globalThis.CSS?.escape === 'function' ? globalThis.CSS.escape(s) : s)

interface WaitingItemProps {
  task: DisplayTask
  position: number
  endsAt: number | undefined
  name: string
  sending: boolean
  picked: boolean
  onKey: (id: string, e: ReactKeyboardEvent) => void
  commands: Commands
}

/** Equal when nothing shown changed: the task's fields (each view brings new objects), its end (useStableEnds), its place. */
function sameItem(a: WaitingItemProps, b: WaitingItemProps): boolean {
  const x = a.task
  const y = b.task
  const sameTask =
    x === y ||
    (x.taskId === y.taskId && x.type === y.type && x.count === y.count && x.done === y.done && x.pending === y.pending && x.pendingKey === y.pendingKey && x.sending === y.sending)
  const sameEnd = a.endsAt === b.endsAt
  return sameTask && sameEnd && a.position === b.position && a.name === b.name && a.sending === b.sending && a.picked === b.picked && a.onKey === b.onKey && a.commands === b.commands
}

const WaitingItem = memo(function WaitingItem({ task, position, endsAt, name, sending, picked, onKey, commands }: WaitingItemProps) {
  countRender('WaitingItem')
  const pendingAdd = task.pending === 'add'
  const { attributes, listeners, setNodeRef, setActivatorNodeRef, transform, transition, isDragging } = useSortable({
    id: task.taskId,
    disabled: pendingAdd || task.pending === 'remove',
  })
  return (
    <li
      ref={setNodeRef}
      style={{ transform: CSS.Translate.toString(transform), transition }}
      className={`task ${isDragging || picked ? 'is-dragging' : ''} ${task.pending ? 'is-pending' : ''} ${task.pending === 'remove' ? 'is-removing' : ''}`}
      data-testid="task"
      data-task-id={task.taskId}
      data-task-type={task.type}
      data-pending={task.pending ?? ''}
    >
      <button
        type="button"
        className="handle"
        ref={setActivatorNodeRef}
        {...attributes}
        {...listeners}
        aria-pressed={picked}
        onKeyDown={(e) => onKey(task.taskId, e)}
        aria-label={`Move ${name} (position ${position})`}
        disabled={pendingAdd || task.pending === 'remove'}
      >
        <svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">
          <circle cx="4" cy="3" r="1.3" />
          <circle cx="10" cy="3" r="1.3" />
          <circle cx="4" cy="7" r="1.3" />
          <circle cx="10" cy="7" r="1.3" />
          <circle cx="4" cy="11" r="1.3" />
          <circle cx="10" cy="11" r="1.3" />
        </svg>
      </button>
      <span className="pos mono">{position}</span>
      <span className="task-title">
        <span className="task-name">{name}</span>
        <span className="muted"> ×{task.count}</span>
        {task.done > 0 && <span className="muted tiny"> ({task.done} done)</span>}
        <EndsAt at={endsAt} />
      </span>
      <span className="spacer" />
      {task.pending && <span className="pending-mark">{sending ? 'sending…' : task.pending === 'add' ? 'pending' : 'removing…'}</span>}
      {pendingAdd ? (
        !sending && (
          <button type="button" className="ghost small" onClick={() => task.pendingKey && void commands.cancel(task.pendingKey)}>
            Cancel
          </button>
        )
      ) : (
        task.pending !== 'remove' && (
          <button type="button" className="ghost small" onClick={() => void commands.remove(task.taskId, name)} aria-label={`Remove ${name}`}>
            Remove
          </button>
        )
      )}
    </li>
  )
}, sameItem)

/** "ends 4:42 PM": when a task ends by the rules (nothing when unknown: stopped, or not sent yet). */
function EndsAt({ at }: { at: number | undefined }) {
  if (at === undefined) return null
  return (
    <span className="muted tiny ends" data-testid="ends-at" data-ends-at={at}>
      {' '}
      · ends {formatClock(at)}
    </span>
  )
}

function Outbox({ q }: { q: TaskQueueState }) {
  const waiting = q.pending.length
  if (waiting === 0 && q.rejections.length === 0) return null
  return (
    <div className="outbox" data-testid="outbox">
      {waiting > 0 && (
        <p className="banner banner-info" data-testid="outbox-pending">
          {waiting === 1 ? '1 change waits' : `${waiting} changes wait`} to be sent
          {q.connection === 'offline' || q.connection === 'reconnecting' ? ' when you are back online.' : '…'}
          {(q.connection === 'offline' || q.connection === 'reconnecting') && (
            <button type="button" className="link" onClick={q.commands.retry}>
              Retry now
            </button>
          )}
        </p>
      )}
      {q.rejections.map((r) => (
        <p key={r.entry.key} className="banner banner-bad" data-testid="rejection">
          <span>
            <strong>Not done:</strong> {describeCommand(q.catalog, r.entry.command)}. {reasonFor(r.problem)}
          </span>
          <button type="button" className="link" onClick={() => q.commands.dismiss(r.entry.key)} aria-label="Dismiss">
            Dismiss
          </button>
        </p>
      ))}
    </div>
  )
}
