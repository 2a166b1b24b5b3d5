// The catalog, the skills and the inventory, given props that keep their
// identity while what they show is unchanged: each queue view from the server
// is a new object, and a completed repetition changes only the head's count,
// one skill's XP and a few items. So at a repetition the catalog does not
// re-render (only its entries with inputs, through FeedContext), the skills
// re-render the one skill that gained XP and the inventory the items that changed.
import { useMemo } from 'react'
import { CatalogPanel, FeedContext, type FeedState, type QueuedTask } from './CatalogPanel'
import type { DisplayQueue } from './merge'
import { sameRecord, useStable } from './stable'
import { InventoryPanel, SkillsPanel } from './StatsPanels'
import type { Catalog, QueueView, SkillState } from './types'

const noTasks: QueuedTask[] = []
const noLevels: Record<string, number> = {}

const sameSkill = (a: SkillState, b: SkillState) => a.xp === b.xp && a.level === b.level
function sameOptional<T>(equal: (a: T, b: T) => boolean) {
  return (a: T | undefined, b: T | undefined) => (a === undefined || b === undefined ? a === b : equal(a, b))
}
const sameSkills = sameOptional<Record<string, SkillState>>((a, b) => sameRecord(a, b, sameSkill))
const sameInventory = sameOptional<Record<string, number>>((a, b) => sameRecord(a, b))
const sameLevels = (a: Record<string, number>, b: Record<string, number>) => sameRecord(a, b)
const sameTasks = (a: readonly QueuedTask[], b: readonly QueuedTask[]) => a.length === b.length && a.every((t, i) => t.taskId === b[i].taskId && t.type === b[i].type)

export function SidePanels({
  view,
  display,
  catalog,
  offline,
  enqueue,
}: {
  view: QueueView | null
  display: DisplayQueue | null
  catalog: Catalog | null
  offline: boolean
  enqueue: (type: string, count: number, position?: number) => Promise<void>
}) {
  const skills = useStable(view?.skills, sameSkills)
  const inventory = useStable(view?.inventory, sameInventory)
  const levels = useStable(
    useMemo(() => (skills ? Object.fromEntries(Object.entries(skills).map(([k, s]) => [k, s.level])) : noLevels), [skills]),
    sameLevels,
  )
  const tasks = useStable(
    useMemo(() => display?.tasks.map((t) => ({ taskId: t.taskId, type: t.type })) ?? noTasks, [display]),
    sameTasks,
  )
  // What the queue starts from to tell whether it can feed a new task: the
  // tasks shown (adds waiting to be sent count, removals waiting do not).
  const feed = useMemo<FeedState>(
    () => ({
      inventory: inventory ?? {},
      feedStart:
        view && display
          ? { tasks: display.tasks.filter((t) => t.pending !== 'remove'), repetition: display.headLocked ? view.repetition : null, inventory: view.inventory, skills: view.skills }
          : null,
    }),
    [view, display, inventory],
  )
  return (
    <>
      <section className="area-catalog">
        <FeedContext value={feed}>
          <CatalogPanel catalog={catalog} offline={offline} limit={view?.limit} tasks={tasks} headLocked={display?.headLocked ?? false} levels={levels} enqueue={enqueue} />
        </FeedContext>
      </section>
      <section className="area-stats">
        <SkillsPanel skills={skills} catalog={catalog} />
        <InventoryPanel inventory={inventory} catalog={catalog} />
      </section>
    </>
  )
}
