// Benchmark (not a test): the main-thread cost of a completed repetition and of
// a keyboard move, with a 60-task queue and 1,000 history entries, for two
// builds of the web app in the same run against the same real server.
//
//   node e2e/bench-render.mjs                   before = web/dist of git ref main, after = web/dist
//   BENCH_BEFORE_REF=ref  BENCH_BEFORE=dir       the build to compare with (a ref's web/dist, or a directory)
//   BENCH_AFTER=dir                              the build measured (default ../dist)
//   BENCH_ROUNDS=3 BENCH_REPS=8                  rounds (before and after alternate, ABBA) and repetitions per window
//   TASKQUEUE_E2E_BINARY=path CHROMIUM=path      as in run.mjs
//   BENCH_PROFILE=1                              only the after build, with its hottest functions (CPU profile)
//
// One server (the real binary on its embedded default: SQLite in a temp dir,
// a catalog copy where chopping wood takes 1 s) holds one seeded player: 1,000
// history entries (cancelled tasks) and 60 tasks, the first two chopping wood ×1000.
// Each build is served to the page by intercepting the static files
// (context.route) while every /api request goes to the server; service
// workers are blocked so nothing is cached across builds.
//
// For each round and build: sign in, open the whole history (Show more until
// all 1,000 entries are on the page), settle, then over BENCH_REPS completed
// repetitions record
//   - main-thread CPU time per repetition: the thread time (tdur) of the
//     renderer main thread's tasks in a trace, ÷ repetitions (robust to a
//     loaded machine), and how many took over 50 ms of CPU;
//   - main-thread wall time per repetition: CDP Performance.getMetrics TaskDuration
//     (all the renderer main thread's tasks) over the window ÷ repetitions;
//   - long tasks (PerformanceObserver 'longtask', ≥ 50 ms): how many per
//     repetition and the longest;
//   - renders per repetition of each counted component (src/renders.ts: the
//     page turns the counters on with window.__taskqueueRenders before the app
//     loads; a build without them prints none). The head task re-renders 5
//     times a second for its clock, the rest only when what they show changed:
//     a repetition changes the head, one skill and the items it made (the
//     catalog's entries with inputs too, in the open tab: none in the default
//     tab, woodcutting), and nothing in the history;
// and then a keyboard move (pick up the last row, 10 arrow presses, escape)
// with
//   - Event Timing (PerformanceObserver 'event'): every keydown of 16 ms or
//     more from input to next paint, and the longest;
//   - each keydown's main-thread CPU (trace thread time): the task that ran
//     its handlers (React renders and commits a keydown's updates there) plus
//     the frame after it (style, layout, paint);
//   - renders per keydown of each counted component: the pickup, each arrow
//     press (÷ 10), the escape (a repetition completing meanwhile adds its own);
//   - the longest frame (requestAnimationFrame gaps);
// with BENCH_PROFILE also the keyboard move's CPU profile and trace, and each
// keydown's task and next frame by trace event.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, loadavg, cpus } from 'node:os'
import { dirname, extname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { freePort, until } from './lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '../../..')
const tmp = mkdtempSync(join(tmpdir(), 'taskqueue-bench-'))
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3)
const REPS = Number(process.env.BENCH_REPS || 8)
const HISTORY = 1000
const TASKS = 60

/** The components whose renders src/renders.ts counts. */
const COUNTED = ['QueuePanel', 'HeadTask', 'RunningRates', 'WaitingList', 'WaitingItem', 'CatalogPanel', 'CatalogEntry', 'SkillsPanel', 'SkillRow', 'InventoryPanel', 'InventoryItem', 'HistoryPanel', 'HistoryList', 'HistoryRow']

const log = (...a) => console.log(...a)
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1)
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ')

// ---- the two builds ---------------------------------------------------------

function builds() {
  const after = resolve(process.env.BENCH_AFTER || join(repo, 'web/dist'))
  let before = process.env.BENCH_BEFORE && resolve(process.env.BENCH_BEFORE)
  const ref = process.env.BENCH_BEFORE_REF || 'main'
  if (!before) {
    before = join(tmp, 'before')
    execFileSync('mkdir', ['-p', before])
    // The committed build of ref (web/dist is committed: what ships is what is measured).
    execFileSync('sh', ['-c', `git archive ${ref} web/dist | tar -x -C ${JSON.stringify(before)} --strip-components=2`], { cwd: repo })
  }
  for (const d of [before, after]) if (!existsSync(join(d, 'index.html'))) throw new Error(`${d}: no index.html`)
  return { before: { name: process.env.BENCH_BEFORE ? 'before' : `before (${ref})`, dir: before }, after: { name: 'after', dir: after } }
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json', '.webmanifest': 'application/manifest+json', '.ico': 'image/x-icon' }

/** Serves dir's files for the page's static requests; /api and the rest go to the server. */
async function serveBuild(context, base, dir) {
  await context.route(
    (url) => url.origin === base && !url.pathname.startsWith('/api') && url.pathname !== '/healthz',
    async (route) => {
      const path = new URL(route.request().url()).pathname
      let file = join(dir, path)
      if (path === '/' || !existsSync(file) || !extname(path)) file = join(dir, 'index.html')
      await route.fulfill({ status: 200, body: readFileSync(file), headers: { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-store' } })
    },
  )
}

// ---- the server -------------------------------------------------------------

let binary = process.env.TASKQUEUE_E2E_BINARY
if (!binary) {
  binary = join(tmp, 'taskqueue')
  log('# building ./cmd/taskqueue')
  execFileSync('go', ['build', '-o', binary, './cmd/taskqueue'], { cwd: repo, stdio: 'inherit' })
}
const catalog = JSON.parse(readFileSync(join(repo, 'domain/catalog.json'), 'utf8'))
catalog.tasks.find((t) => t.id === 'chop-wood').baseDurationMs = 1000 // short repetitions
writeFileSync(join(tmp, 'catalog.json'), JSON.stringify(catalog))
const port = await freePort()
const base = `http://127.0.0.1:${port}`
const serverLog = []
const server = spawn(binary, [], {
  cwd: tmp,
  env: {
    ...process.env,
    TASKQUEUE_ADDR: `127.0.0.1:${port}`,
    TASKQUEUE_DATA_DIR: join(tmp, 'data'),
    TASKQUEUE_DEV: 'true',
    TASKQUEUE_RATE_LIMIT_PLAYER: '-1',
    TASKQUEUE_RATE_LIMIT_IP: '-1',
    TASKQUEUE_QUEUE_LIMIT: '100',
    TASKQUEUE_CATALOG: join(tmp, 'catalog.json'),
  },
  stdio: ['ignore', 'pipe', 'pipe'],
})
server.stdout.on('data', (d) => serverLog.push(String(d)))
server.stderr.on('data', (d) => serverLog.push(String(d)))

async function api(method, path, token, body) {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}

// ---- one measurement --------------------------------------------------------

async function measure(browser, build, token) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, baseURL: base, deviceScaleFactor: 1, serviceWorkers: 'block' })
  await serveBuild(context, base, build.dir)
  const page = await context.newPage()
  page.on('pageerror', (err) => log(`# page error (${build.name}): ${err.message}`))
  await page.addInitScript(() => {
    window.__taskqueueRenders = {}
    window.__long = []
    window.__events = []
    new PerformanceObserver((l) => window.__long.push(...l.getEntries().map((e) => ({ start: e.startTime, duration: e.duration })))).observe({ type: 'longtask', buffered: true })
    new PerformanceObserver((l) => window.__events.push(...l.getEntries().map((e) => ({ name: e.name, start: e.startTime, duration: e.duration })))).observe({ type: 'event', durationThreshold: 16, buffered: true })
  })
  await page.goto('/')
  await page.evaluate((token) => localStorage.setItem('taskqueue.session', JSON.stringify({ token, playerId: 'bench', role: 'player' })), token)
  await page.reload()
  await page.getByTestId('queue').waitFor({ timeout: 60000 })
  const entries = page.getByTestId('history-entry')
  const more = page.getByTestId('history-more')
  await until('the first page of history', async () => (await entries.count()) >= 50, 60000)
  while ((await entries.count()) < HISTORY) {
    const n = await entries.count()
    await more.click()
    await until(`more than ${n} entries`, async () => (await entries.count()) > n, 60000)
  }
  // 59 waiting (58 once the first ×1000 head, 16 minutes long, has finished and the second took over).
  await until(`${TASKS - 2} waiting tasks or more`, async () => (await page.locator('[data-testid=waiting] [data-testid=task]').count()) >= TASKS - 2, 60000)
  await page.waitForTimeout(2000)

  // Completed repetitions.
  const cdp = await context.newCDPSession(page)
  await cdp.send('Performance.enable')
  const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value * 1000]))
  // Repetitions are counted in the page (a MutationObserver on the text, no
  // polling from here: reading innerText would force layouts of its own).
  const repetitions = (n) =>
    page.evaluate(
      (n) =>
        new Promise((resolve) => {
          const text = () => document.querySelector('[data-testid=head-task] [data-testid=repetition]')?.textContent ?? ''
          let last = text()
          let seen = 0
          const obs = new MutationObserver(() => {
            const now = text()
            if (now === last) return
            last = now
            if (++seen >= n) {
              obs.disconnect()
              resolve(performance.now())
            }
          })
          obs.observe(document.body, { subtree: true, childList: true, characterData: true })
        }),
      n,
    )
  await repetitions(1)
  if (process.env.BENCH_PROFILE) {
    await cdp.send('Profiler.enable')
    await cdp.send('Profiler.start')
  }
  await page.evaluate(() => (window.__taskqueueRenders = {}))
  await browser.startTracing(page, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline'] })
  const t0 = await metrics()
  const p0 = await page.evaluate(() => performance.now())
  await repetitions(REPS)
  const t1 = await metrics()
  const p1 = await page.evaluate(() => performance.now())
  // The renderer main thread's CPU time (thread time, tdur): on a machine
  // shared with other work, wall-clock task durations also count the time the
  // thread waited for a core.
  const trace = JSON.parse(String(await browser.stopTracing())).traceEvents
  const main = new Set(trace.filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`))
  const tasks = trace.filter((e) => e.ph === 'X' && e.name === 'RunTask' && main.has(`${e.pid}:${e.tid}`))
  const cpu = tasks.reduce((sum, e) => sum + (e.tdur ?? 0) / 1000, 0)
  const longCpu = tasks.filter((e) => (e.tdur ?? 0) >= 50000)
  if (process.env.BENCH_PROFILE) await printProfile(cdp, trace, main, `${REPS} repetitions`, build.name)
  const per = (name) => (t1[name] - t0[name]) / REPS
  const counts = await page.evaluate(() => window.__taskqueueRenders)
  // A component not rendered is not in counts: 0, when the build counts at all (the head task always renders).
  const renders = Object.keys(counts).length === 0 ? {} : Object.fromEntries([...new Set([...COUNTED, ...Object.keys(counts)])].map((k) => [k, (counts[k] ?? 0) / REPS]))
  const long = (await page.evaluate(() => window.__long)).filter((e) => e.start >= p0 && e.start <= p1)

  // A keyboard move: pick up the last row, 10 places up, cancel.
  const handle = page.locator('[data-testid=waiting] [data-testid=task]').last().locator('.handle')
  await handle.focus()
  const k0 = await page.evaluate(() => {
    window.__frames = []
    let last = performance.now()
    window.__framing = true
    const tick = (t) => {
      window.__frames.push(t - last)
      last = t
      if (window.__framing) requestAnimationFrame(tick)
    }
    requestAnimationFrame(tick)
    return performance.now()
  })
  // Renders per keydown, by phase: the pickup, each arrow press (÷ 10), the escape.
  const rendersSince = () => page.evaluate(() => {
    const c = window.__taskqueueRenders
    window.__taskqueueRenders = {}
    return c
  })
  await rendersSince()
  if (process.env.BENCH_PROFILE) await cdp.send('Profiler.start')
  await browser.startTracing(page, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline'] })
  const keyRenders = {}
  await page.keyboard.press('Space')
  await page.waitForTimeout(300)
  keyRenders.pickup = await rendersSince()
  for (let i = 0; i < 10; i++) await page.keyboard.press('ArrowUp')
  await page.waitForTimeout(300)
  keyRenders.arrow = Object.fromEntries(Object.entries(await rendersSince()).map(([k, n]) => [k, n / 10]))
  await page.keyboard.press('Escape')
  await page.waitForTimeout(500)
  keyRenders.escape = await rendersSince()
  // Each keydown's main-thread CPU (thread time): the task that ran its
  // handlers (React renders and commits a keydown's updates there) and the
  // frame after it (style, layout, paint), robust to a loaded machine.
  const ktrace = JSON.parse(String(await browser.stopTracing())).traceEvents
  const kmain = new Set(ktrace.filter((e) => e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`))
  const onMain = ktrace.filter((e) => e.ph === 'X' && kmain.has(`${e.pid}:${e.tid}`))
  const runs = onMain.filter((e) => e.name === 'RunTask').sort((x, y) => x.ts - y.ts)
  const inTask = (t) => onMain.filter((e) => e.ts >= t.ts && e.ts + e.dur <= t.ts + t.dur && e !== t && ['EventDispatch', 'FunctionCall', 'Layout', 'UpdateLayoutTree', 'Paint', 'PrePaint', 'Commit', 'Layerize', 'FireAnimationFrame', 'TimerFire', 'RunMicrotasks', 'V8.GC_SCAVENGER'].includes(e.name))
  const sum = (t) => Object.entries(inTask(t).reduce((m, e) => ((m[e.name] = (m[e.name] ?? 0) + e.dur / 1000), m), {})).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')
  const keyCpu = []
  if (process.env.BENCH_PROFILE) await printProfile(cdp, ktrace, kmain, 'the keyboard move (12 keydowns)', build.name)
  for (const d of onMain.filter((e) => e.name === 'EventDispatch' && e.args?.data?.type === 'keydown').sort((x, y) => x.ts - y.ts)) {
    const task = runs.find((t) => t.ts <= d.ts && t.ts + t.dur >= d.ts + d.dur)
    if (!task) continue
    const frame = runs.find((t) => t.ts > task.ts + task.dur && inTask(t).some((e) => e.name === 'Commit'))
    keyCpu.push(((task.tdur ?? 0) + (frame?.tdur ?? 0)) / 1000)
    if (process.env.BENCH_PROFILE) log(`#   keydown: task ${(task.dur / 1000).toFixed(1)} ms (cpu ${((task.tdur ?? 0) / 1000).toFixed(1)}): ${sum(task)}${frame ? ` | next frame ${(frame.dur / 1000).toFixed(1)} ms (cpu ${((frame.tdur ?? 0) / 1000).toFixed(1)}): ${sum(frame)}` : ''}`)
  }
  const frames = await page.evaluate(() => {
    window.__framing = false
    return window.__frames.slice(1)
  })
  const events = (await page.evaluate(() => window.__events)).filter((e) => e.start >= k0 && e.name.startsWith('key'))
  await context.close()
  return {
    cpu: cpu / REPS,
    longCpu: longCpu.length / REPS,
    longestCpu: longCpu.reduce((m, e) => Math.max(m, e.tdur / 1000), 0),
    perRep: per('TaskDuration'),
    script: per('ScriptDuration'),
    layout: per('LayoutDuration'),
    style: per('RecalcStyleDuration'),
    longPerRep: long.length / REPS,
    longest: long.reduce((m, e) => Math.max(m, e.duration), 0),
    keyMax: events.reduce((m, e) => Math.max(m, e.duration), 0),
    keys: events.filter((e) => e.name === 'keydown').map((e) => e.duration),
    keyRenders,
    keyCpu,
    frameMax: frames.reduce((m, f) => Math.max(m, f), 0),
    renders,
    load: load(),
    at: new Date().toISOString().slice(11, 19),
  }
}

/** Prints the trace's main-thread events and the CPU profile's hottest functions (self time), then stops the profiler. */
async function printProfile(cdp, trace, main, over, name) {
  const byName = new Map()
  for (const e of trace) if (e.ph === 'X' && e.dur && main.has(`${e.pid}:${e.tid}`)) byName.set(e.name, (byName.get(e.name) ?? 0) + e.dur / 1000)
  log(`# trace (${name}), main-thread events (total time, nested ones counted in their parents too) over ${over}:`)
  for (const [k, v] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, 20)) log(`#   ${v.toFixed(0).padStart(6)} ms ${k}`)
  const { profile } = await cdp.send('Profiler.stop')
  const self = new Map()
  const dt = new Map()
  profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  for (const n of profile.nodes) {
    const k = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber}`
    self.set(k, (self.get(k) ?? 0) + (dt.get(n.id) ?? 0) / 1000)
  }
  log(`# profile (${name}), self time over ${over}:`)
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) log(`#   ${v.toFixed(0).padStart(6)} ms ${k}`)
}

// ---- main -------------------------------------------------------------------

let browser
try {
  const { before, after } = builds()
  await until('the server to answer /healthz', async () => (await fetch(`${base}/healthz`)).ok, 60000)
  log(`# ${new Date().toISOString()} · ${cpus().length} cores · load ${load()} · Chromium ${execFileSync(CHROMIUM, ['--version']).toString().trim()}`)
  const token = (await api('POST', '/api/auth/dev-token', null, { player: 'bench', role: 'player' })).token
  const s0 = Date.now()
  for (let i = 0; i < HISTORY; i++) {
    const r = await api('POST', '/api/queue/bench/tasks', token, { type: 'mine-copper', count: 1 })
    await api('DELETE', `/api/queue/bench/tasks/${r.taskId}`, token)
  }
  await until('the history to hold every cancelled task', async () => {
    let n = 0
    let cursor = ''
    do {
      const r = await api('GET', `/api/queue/bench/history?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, token)
      n += r.entries.length
      cursor = r.nextCursor
    } while (cursor)
    return n === HISTORY
  }, 120000)
  await api('POST', '/api/queue/bench/tasks', token, { type: 'chop-wood', count: 1000 })
  // A second ×1000 takes over when the first ends (a long run outlasts 1,000 s).
  await api('POST', '/api/queue/bench/tasks', token, { type: 'chop-wood', count: 1000 })
  for (let i = 2; i < TASKS; i++) await api('POST', '/api/queue/bench/tasks', token, { type: ['mine-copper', 'catch-shrimp', 'mine-tin'][i % 3], count: i })
  log(`# seeded: ${HISTORY} history entries, ${TASKS} tasks (head: chop-wood ×1000 at 1 s) in ${Date.now() - s0} ms`)

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  })
  const rows = []
  for (let r = 1; r <= ROUNDS; r++) {
    const order = r % 2 ? [before, after] : [after, before] // ABBA: neither build always goes first
    const got = {}
    const builds = process.env.BENCH_PROFILE ? [after] : [before, after]
    for (const b of order.filter((b) => builds.includes(b))) got[b.name] = await measure(browser, b, token)
    const f = (x) => x.toFixed(1)
    for (const b of builds) {
      const m = got[b.name]
      const counted = Object.entries(m.renders)
      log(`round ${r} ${b.name.padEnd(14)} renders per repetition: ${counted.length ? counted.map(([k, n]) => `${k} ${n.toFixed(2)}`).join(', ') : 'none counted (a build without render counters)'}`)
      const rc = (c) => (Object.keys(c).length ? Object.entries(c).map(([k, n]) => `${k} ${+n.toFixed(2)}`).join(', ') : 'none')
      log(`round ${r} ${b.name.padEnd(14)} renders per keydown: pickup: ${rc(m.keyRenders.pickup)}; each arrow: ${rc(m.keyRenders.arrow)}; escape: ${rc(m.keyRenders.escape)}`)
      log(`round ${r} ${b.name.padEnd(14)} keydowns, main-thread CPU of the keydown's task and the next frame: ${m.keyCpu.map((d) => d.toFixed(1)).join(' ')} ms (pickup, 10 arrows, escape)`)
      log(`round ${r} ${b.name.padEnd(14)} keydowns (Event Timing, input to next paint; only those of 16 ms or more are reported): ${m.keys.length ? m.keys.map((d) => d.toFixed(0)).join(' ') : 'none'} ms`)
      log(`round ${r} ${b.name.padEnd(14)} ${m.at} UTC load ${m.load}: main-thread CPU ${f(m.cpu)} ms/repetition, tasks over 50 ms CPU ${m.longCpu.toFixed(2)}/repetition (longest ${f(m.longestCpu)} ms); wall: main thread ${f(m.perRep)} ms/repetition (script ${f(m.script)}, layout ${f(m.layout)}, style ${f(m.style)}), long tasks ${m.longPerRep.toFixed(2)}/repetition (longest ${f(m.longest)} ms), keydown max ${f(m.keyMax)} ms, longest frame ${f(m.frameMax)} ms`)
    }
    if (process.env.BENCH_PROFILE) continue
    const a = got[before.name]
    const b = got[after.name]
    log(`round ${r} ratio before/after: main-thread CPU per repetition ${(a.cpu / b.cpu).toFixed(2)}x, wall ${(a.perRep / b.perRep).toFixed(2)}x, keydown max ${(a.keyMax / Math.max(b.keyMax, 1)).toFixed(2)}x, keydown CPU (mean) ${(mean(a.keyCpu) / mean(b.keyCpu)).toFixed(2)}x`)
    rows.push({ round: r, before: a, after: b })
  }
  writeFileSync(join(tmp, 'results.json'), JSON.stringify(rows, null, 2))
} catch (err) {
  console.error(err.stack || err)
  console.error(serverLog.join('').slice(-4000))
  process.exitCode = 1
} finally {
  await browser?.close().catch(() => {})
  server.kill('SIGTERM')
  await new Promise((r) => (server.exitCode !== null ? r() : server.once('exit', r)))
  rmSync(tmp, { recursive: true, force: true })
}
