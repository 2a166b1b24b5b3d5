// Helpers shared by the end-to-end scripts (run.mjs, oidc.mjs).
import { createServer } from 'node:net'

export const WAIT = 30000 // generous: CI shares two cores

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => res(port))
    })
  })
}

export async function until(what, fn, timeout = WAIT) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

// ---- accessibility (axe-core) -------------------------------------------------

let axeSource
/**
 * Runs axe-core on page and throws, listing each rule and its nodes, when it
 * finds a serious or critical violation. what names the screen.
 */
export async function assertAccessible(page, what) {
  if (!axeSource) axeSource = (await import('axe-core')).default.source
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource)
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }))
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  if (bad.length === 0) return
  const lines = bad.flatMap((v) => [
    `${v.id} (${v.impact}): ${v.help}`,
    ...v.nodes.slice(0, 8).map((n) => `    ${n.target.join(' ')} — ${n.failureSummary.replace(/\s+/g, ' ')}`),
    ...(v.nodes.length > 8 ? [`    … and ${v.nodes.length - 8} more`] : []),
  ])
  throw new Error(`axe-core on ${what}: ${bad.length} serious or critical violation(s)\n  ${lines.join('\n  ')}`)
}
