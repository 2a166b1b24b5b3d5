import {
  DndContext,
  KeyboardSensor,
  MeasuringStrategy,
  PointerSensor,
  closestCenter,
  useSensor,
  useSensors,
  type Announcements,
  type DragEndEvent,
} from '@dnd-kit/core'
import { SortableContext, arrayMove, sortableKeyboardCoordinates, useSortable, verticalListSortingStrategy } from '@dnd-kit/sortable'
import { CSS } from '@dnd-kit/utilities'
import { useEffect, useState } from 'react'
import { ConfirmButton, removeRunningDialog, stopDialog } from './ConfirmDialog'
import { isPendingTaskId, type DisplayTask } from './merge'
import { reasonFor } from './problems'
import { ProgressFill } from './ProgressFill'
import { RunningRates } from './RunningRates'
import { computeProgress, formatClock, formatDuration } from './progress'
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

export function QueuePanel({ q }: { q: TaskQueueState }) {
  const { view, display, catalog, commands } = q
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
  // The queue ends when its last task does (unknown while one waits to be sent).
  // Nothing ends while the queue is stopped (or a Stop waits to be sent).
  const ends = display.running ? q.ends : noEnds
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
          <WaitingList tasks={waiting} headLocked={display.headLocked} ends={ends} q={q} />
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

function WaitingList({ tasks, headLocked, ends, q }: { tasks: DisplayTask[]; headLocked: boolean; ends: Map<string, number>; q: TaskQueueState }) {
  const sensors = useSensors(
    useSensor(PointerSensor, { activationConstraint: { distance: 4 } }),
    useSensor(KeyboardSensor, { coordinateGetter: sortableKeyboardCoordinates }),
  )
  const ids = tasks.map((t) => t.taskId)
  function onDragEnd(e: DragEndEvent) {
    const { active, over } = e
    if (!over || active.id === over.id) return
    const from = ids.indexOf(String(active.id))
    const to = ids.indexOf(String(over.id))
    if (from < 0 || to < 0) return
    const order = arrayMove(ids, from, to).filter((id) => !isPendingTaskId(id))
    void q.commands.reorder(order)
  }
  const firstPosition = headLocked ? 2 : 1
  // Screen-reader announcements in words (task names and positions), not IDs.
  const label = (id: string | number) => {
    const t = tasks.find((x) => x.taskId === String(id))
    return t ? taskName(q.catalog, t.type) : 'the task'
  }
  const positionOf = (id: string | number | undefined) => firstPosition + Math.max(0, ids.indexOf(String(id)))
  const announcements: Announcements = {
    onDragStart: ({ active }) => `Picked up ${label(active.id)} at position ${positionOf(active.id)}.`,
    onDragOver: ({ active, over }) => (over ? `${label(active.id)} moved to position ${positionOf(over.id)}.` : `${label(active.id)} is not over a position.`),
    onDragEnd: ({ active, over }) => (over ? `${label(active.id)} dropped at position ${positionOf(over.id)}.` : `${label(active.id)} dropped.`),
    onDragCancel: ({ active }) => `Moving ${label(active.id)} was cancelled.`,
  }
  const screenReaderInstructions = {
    draggable: 'To move a task, press space or enter. Use the up and down arrow keys to choose its new place, space or enter to drop it there, escape to cancel.',
  }
  return (
    <DndContext
      sensors={sensors}
      collisionDetection={closestCenter}
      measuring={{ droppable: { strategy: MeasuringStrategy.Always } }}
      onDragEnd={onDragEnd}
      accessibility={{ announcements, screenReaderInstructions }}
    >
      <SortableContext items={ids} strategy={verticalListSortingStrategy}>
        <ol className="waiting" data-testid="waiting">
          {tasks.map((t, i) => (
            <WaitingItem key={t.taskId} task={t} position={firstPosition + i} endsAt={ends.get(t.taskId)} q={q} />
          ))}
        </ol>
      </SortableContext>
    </DndContext>
  )
}

function WaitingItem({ task, position, endsAt, q }: { task: DisplayTask; position: number; endsAt: number | undefined; q: TaskQueueState }) {
  const pendingAdd = task.pending === 'add'
  const { attributes, listeners, setNodeRef, setActivatorNodeRef, transform, transition, isDragging } = useSortable({
    id: task.taskId,
    disabled: pendingAdd || task.pending === 'remove',
  })
  const name = taskName(q.catalog, task.type)
  const sending = task.sending === true || (task.pendingKey !== undefined && task.pendingKey === q.inFlight)
  return (
    <li
      ref={setNodeRef}
      style={{ transform: CSS.Translate.toString(transform), transition }}
      className={`task ${isDragging ? 'is-dragging' : ''} ${task.pending ? 'is-pending' : ''} ${task.pending === 'remove' ? 'is-removing' : ''}`}
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
          <button type="button" className="ghost small" onClick={() => task.pendingKey && void q.commands.cancel(task.pendingKey)}>
            Cancel
          </button>
        )
      ) : (
        task.pending !== 'remove' && (
          <button type="button" className="ghost small" onClick={() => void q.commands.remove(task.taskId, name)} aria-label={`Remove ${name}`}>
            Remove
          </button>
        )
      )}
    </li>
  )
}

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
