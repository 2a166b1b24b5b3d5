// Render counts, for measuring which components a change re-renders
// (e2e/bench-render.mjs, StatsPanels.test.tsx). Off unless the page turned
// them on before the app loaded: window.__taskqueueRenders = {} (the
// benchmark's init script does this), or ?renders in the address. Off, a
// call is one property read.
type Counts = Record<string, number>

const g = globalThis as { __taskqueueRenders?: Counts; location?: Location }
if (!g.__taskqueueRenders && g.location && new URLSearchParams(g.location.search).has('renders')) g.__taskqueueRenders = {}

/** Counts one render of name (called in the component's body: a render, not a commit). */
export function countRender(name: string): void {
  const c = g.__taskqueueRenders
  if (c) c[name] = (c[name] ?? 0) + 1
}
