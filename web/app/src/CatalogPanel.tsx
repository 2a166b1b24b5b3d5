import { createContext, memo, use, useCallback, useMemo, useState, type KeyboardEvent } from 'react'
import { MAX_COUNT, MIN_COUNT, countProblem } from './counts'
import { checkFeed, feedWarning, type FeedStart } from './feed'
import { askNotificationsOnce } from './notify'
import { durationAtLevel, formatDuration } from './progress'
import { countRender } from './renders'
import type { Catalog, CatalogTask } from './types'

function itemList(catalog: Catalog, items: Record<string, number> | null): string {
  const parts = Object.entries(items ?? {}).map(([id, n]) => `${n} ${catalog.items.find((i) => i.id === id)?.name ?? id}`)
  return parts.length ? parts.join(', ') : 'nothing'
}

/** The inputs with what the player owns of each: "2 Logs (have 12)". */
function inputList(catalog: Catalog, items: Record<string, number> | null, inventory: Record<string, number>) {
  const entries = Object.entries(items ?? {})
  if (entries.length === 0) return 'nothing'
  return entries.map(([id, n], i) => {
    const have = inventory[id] ?? 0
    return (
      <span key={id} data-testid="input" data-item={id}>
        {i > 0 && ', '}
        {n} {catalog.items.find((x) => x.id === id)?.name ?? id}{' '}
        <span className={have >= n ? 'muted' : 'short'} data-testid="have" data-have={have}>
          (have {have.toLocaleString('en')})
        </span>
      </span>
    )
  })
}

function formatSeconds(ms: number): string {
  return ms < 60000 ? `${Number((ms / 1000).toFixed(2))} s` : formatDuration(ms)
}

/**
 * The tabs' keyboard (WAI-ARIA tabs pattern, automatic activation): the
 * arrows move to the previous or next skill (wrapping round), Home and End
 * to the first and last; the new tab is selected and focused.
 */
function moveTab(e: KeyboardEvent, ids: string[], current: string | undefined, select: (id: string) => void) {
  const i = ids.indexOf(current ?? '')
  const to = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1, Home: 0, End: ids.length - 1 }[e.key]
  if (to === undefined || ids.length === 0) return
  e.preventDefault()
  const id = ids[(to + ids.length) % ids.length]
  select(id)
  document.getElementById(`skill-tab-${id}`)?.focus()
}

/** What a completed repetition changes for the catalog: the inventory ("have N") and where the queue stands (the feed warnings). */
export interface FeedState {
  inventory: Readonly<Record<string, number>>
  /** What the queue starts from to tell whether it can feed a new task (null until the queue is known). */
  feedStart: FeedStart | null
}

/**
 * Given by the player's screen, read only by the entries that have inputs:
 * the catalog and its other entries do not re-render at each repetition.
 */
export const FeedContext = createContext<FeedState>({ inventory: {}, feedStart: null })

/** A task of the queue, as the catalog's "Insert before" list shows it. */
export interface QueuedTask {
  taskId: string
  type: string
}

/**
 * The catalog, by skill. Its props change when the catalog, a skill's level or
 * the queue's tasks do, not at each repetition (the player's screen keeps them
 * stable; see FeedContext for what does change).
 */
export const CatalogPanel = memo(function CatalogPanel({
  catalog,
  offline,
  limit,
  tasks,
  headLocked,
  levels,
  enqueue,
}: {
  catalog: Catalog | null
  offline: boolean
  /** The queue's limit; undefined until the queue is known. */
  limit: number | undefined
  /** The tasks shown in the queue (adds waiting to be sent too). */
  tasks: readonly QueuedTask[]
  headLocked: boolean
  /** Each skill's level (a skill missing is level 1). */
  levels: Readonly<Record<string, number>>
  enqueue: (type: string, count: number, position?: number) => Promise<void>
}) {
  countRender('CatalogPanel')
  // The task to insert before (its ID), or 'end'. It applies to one add:
  // each add goes back to the end, and so does a target that left the queue.
  const [position, setPosition] = useState('end')
  const [open, setOpen] = useState<string | null>(null)
  const min = headLocked ? 1 : 0
  const at = position === 'end' ? -1 : tasks.findIndex((t) => t.taskId === position)
  const pos = at >= min ? at : undefined
  const onAdd = useCallback(
    (type: string, count: number) => {
      void enqueue(type, count, pos)
      setPosition('end')
      askNotificationsOnce()
    },
    [enqueue, pos],
  )
  if (!catalog) {
    return (
      <div className="card">
        <h2>Add tasks</h2>
        <p className="muted">{offline ? 'The catalog loads when you are online.' : 'Loading the catalog…'}</p>
      </div>
    )
  }
  const full = limit !== undefined && tasks.length >= limit
  const placement = pos === undefined ? 'end' : `before #${pos + 1}`
  const bySkill = catalog.skills.map((s) => ({ skill: s, tasks: catalog.tasks.filter((t) => t.skill === s.id) })).filter((g) => g.tasks.length > 0)
  const openSkill = open ?? bySkill[0]?.skill.id
  return (
    <div className="card catalog" data-testid="catalog">
      <div className="catalog-head">
        <h2>Add tasks</h2>
        <label className="position">
          <span className="muted tiny">Insert</span>
          <select value={pos === undefined ? 'end' : position} onChange={(e) => setPosition(e.target.value)} data-testid="position">
            <option value="end">at the end</option>
            {tasks.slice(min).map((t, i) => (
              <option key={t.taskId} value={t.taskId}>
                before #{min + i + 1} {catalog.tasks.find((c) => c.id === t.type)?.name ?? t.type}
              </option>
            ))}
          </select>
        </label>
      </div>
      {pos !== undefined && (
        <p className="banner banner-info tiny" data-testid="position-note">
          The next add goes {placement}; the ones after it go to the end.
        </p>
      )}
      {full && <p className="banner banner-info">Your queue is full ({limit} tasks). Remove one to add more.</p>}
      <div className="skill-tabs" role="tablist" aria-label="Skills" onKeyDown={(e) => moveTab(e, bySkill.map((g) => g.skill.id), openSkill, setOpen)}>
        {bySkill.map(({ skill }) => (
          <button
            key={skill.id}
            id={`skill-tab-${skill.id}`}
            type="button"
            role="tab"
            aria-selected={skill.id === openSkill}
            aria-controls={`skill-panel-${skill.id}`}
            tabIndex={skill.id === openSkill ? 0 : -1}
            className={`tab ${skill.id === openSkill ? 'is-active' : ''}`}
            onClick={() => setOpen(skill.id)}
          >
            {skill.name}
            <span className="tiny muted"> Lv {levels[skill.id] ?? 1}</span>
          </button>
        ))}
      </div>
      {bySkill
        .filter(({ skill }) => skill.id === openSkill)
        .map(({ skill, tasks: list }) => (
          <div key={skill.id} id={`skill-panel-${skill.id}`} role="tabpanel" aria-labelledby={`skill-tab-${skill.id}`}>
            <ul className="catalog-list">
              {list.map((t) => (
                <CatalogEntry
                  key={t.id}
                  task={t}
                  catalog={catalog}
                  level={levels[t.skill] ?? 1}
                  skillName={skill.name}
                  full={full}
                  placement={placement}
                  before={pos === undefined ? undefined : tasks[pos].taskId}
                  onAdd={onAdd}
                />
              ))}
            </ul>
          </div>
        ))}
    </div>
  )
})

const noFeed: FeedState = { inventory: {}, feedStart: null }

const CatalogEntry = memo(function CatalogEntry({
  task,
  catalog,
  level,
  skillName,
  full,
  placement,
  before,
  onAdd,
}: {
  task: CatalogTask
  catalog: Catalog
  level: number
  skillName: string
  full: boolean
  placement: string
  /** The queued task an add goes before (its ID); undefined: the end. */
  before: string | undefined
  onAdd: (type: string, count: number) => void
}) {
  countRender('CatalogEntry')
  const hasInputs = Object.keys(task.inputs ?? {}).length > 0
  // Only an entry with inputs shows what the player owns and whether the
  // queue can feed it: only it reads (and re-renders with) the feed state.
  const { inventory, feedStart } = hasInputs ? use(FeedContext) : noFeed
  // The add's place among the tasks the feed check runs over (removals waiting left out).
  const feedAt = before === undefined || !feedStart ? undefined : Math.max(0, feedStart.tasks.findIndex((t) => t.taskId === before))
  const [count, setCount] = useState('10')
  const n = Number(count)
  const problem = countProblem(count)
  const validCount = problem === null
  const locked = level < task.levelRequired
  const duration = durationAtLevel(task.baseDurationMs, level, task.levelRequired)
  const faster = duration < task.baseDurationMs
  const warning = useMemo(
    () => (validCount && !locked && hasInputs && feedStart ? feedWarning(catalog, task.id, checkFeed(feedStart, catalog, task.id, n, feedAt)) : null),
    [validCount, locked, hasInputs, feedStart, catalog, task.id, n, feedAt],
  )
  return (
    <li className={`catalog-entry ${locked ? 'is-locked' : ''}`} data-testid="catalog-task" data-task-type={task.id}>
      <div className="row">
        <span className="task-name">{task.name}</span>
        <span className="spacer" />
        <span className="tiny muted">Lv {task.levelRequired}+</span>
      </div>
      <dl className="facts tiny">
        <div>
          <dt>Uses</dt>
          <dd>{inputList(catalog, task.inputs, inventory)}</dd>
        </div>
        <div>
          <dt>Makes</dt>
          <dd>
            {itemList(catalog, task.outputs)} · {task.xp} XP
          </dd>
        </div>
        <div>
          <dt>Takes</dt>
          <dd>
            {formatSeconds(duration)} each{faster && <span className="good"> (−{Math.round((1 - duration / task.baseDurationMs) * 100)}%)</span>}
            {validCount && <span className="muted"> · {formatDuration(duration * n)} for {n}</span>}
          </dd>
        </div>
      </dl>
      {locked ? (
        <p className="locked tiny" data-testid="locked-reason">
          Needs {skillName} level {task.levelRequired} (you are level {level}).
        </p>
      ) : (
        <form
          className="add-row"
          onSubmit={(e) => {
            e.preventDefault()
            if (validCount && !full) onAdd(task.id, n)
          }}
        >
          <label className="visually-hidden" htmlFor={`count-${task.id}`}>
            Repetitions of {task.name}
          </label>
          <input
            id={`count-${task.id}`}
            className="count-input"
            type="number"
            min={MIN_COUNT}
            max={MAX_COUNT}
            value={count}
            onChange={(e) => setCount(e.target.value)}
            aria-invalid={!validCount}
            aria-describedby={validCount ? undefined : `count-problem-${task.id}`}
            data-testid="count"
          />
          <button type="submit" className="primary small" disabled={!validCount || full} data-testid="add" aria-describedby={warning ? `feed-warning-${task.id}` : undefined} aria-label={`Add ${task.name} ${placement === 'end' ? 'at the end' : placement}`}>
            {placement === 'end' ? 'Add' : `Add ${placement}`}
          </button>
          {warning && (
            <p className="feed-warning tiny" id={`feed-warning-${task.id}`} data-testid="feed-warning">
              <strong>Short of inputs:</strong> {warning}
            </p>
          )}
          {problem && (
            <p className="count-problem tiny" id={`count-problem-${task.id}`} data-testid="count-problem">
              {problem}
            </p>
          )}
        </form>
      )}
    </li>
  )
})
