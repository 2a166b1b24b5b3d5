// Lighthouse (mobile, its defaults) on the sign-in page and on a signed-in
// player's queue page, served by the real server, in Debian's Chromium (never a
// downloaded browser); then the sizes of what the browser downloads (web/dist).
//
//   node e2e/lighthouse.mjs            LIGHTHOUSE=lighthouse@13.5.0 (run with npx --yes)
//   TASKQUEUE_E2E_BINARY=path CHROMIUM=path as in run.mjs
//
// The queue page needs a session: a Chromium profile is prepared with the
// player's dev token in localStorage (playwright-core), and Lighthouse runs in
// that profile with --disable-storage-reset.
//
// Then what moves on the queue page (Lighthouse's CLS, with its causes): the
// page is loaded at Lighthouse's phone size (412×823, 1.75 dppx, touch) with
// 4× CPU throttling, and a PerformanceObserver lists every layout shift with
// the elements that moved (their top and height before → after), on a first
// visit (nothing saved) and on a return after LAYOUT_AWAY_MS (default 9 s)
// away (the saved queue, and the "while you were away" card). LAYOUT_ONLY=1
// runs only this part.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { freePort, until } from './lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '../../..')
const tmp = mkdtempSync(join(tmpdir(), 'taskqueue-lighthouse-'))
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const LIGHTHOUSE = process.env.LIGHTHOUSE || 'lighthouse@13.5.0'
const FLAGS = '--headless --no-sandbox --disable-gpu'

let binary = process.env.TASKQUEUE_E2E_BINARY
if (!binary) {
  binary = join(tmp, 'taskqueue')
  execFileSync('go', ['build', '-o', binary, './cmd/taskqueue'], { cwd: repo, stdio: 'inherit' })
}
const port = await freePort()
const base = `http://127.0.0.1:${port}`
const server = spawn(binary, [], {
  cwd: tmp,
  env: { ...process.env, TASKQUEUE_ADDR: `127.0.0.1:${port}`, TASKQUEUE_DATA_DIR: join(tmp, 'data'), TASKQUEUE_DEV: 'true' },
  stdio: 'ignore',
})

async function api(method, path, token, body) {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status}`)
  return res.json()
}

function lighthouse(url, what, extraChromeFlags = '', extra = []) {
  const out = join(tmp, `${what}.json`)
  const args = ['--yes', LIGHTHOUSE, url, '--quiet', '--output=json', `--output-path=${out}`, '--only-categories=performance,accessibility,best-practices', `--chrome-flags=${FLAGS}${extraChromeFlags}`, ...extra]
  console.log(`# CHROME_PATH=${CHROMIUM} npx ${args.join(' ')}`)
  execFileSync('npx', args, { env: { ...process.env, CHROME_PATH: CHROMIUM }, stdio: ['ignore', 'inherit', 'inherit'] })
  const r = JSON.parse(readFileSync(out, 'utf8'))
  const score = (c) => Math.round(r.categories[c].score * 100)
  const audit = (a) => r.audits[a]?.displayValue ?? ''
  console.log(
    `${what.padEnd(8)} ${new Date().toISOString().slice(11, 19)} UTC load ${loadavg().map((x) => x.toFixed(2)).join(' ')}: ` +
      `Performance ${score('performance')}, Accessibility ${score('accessibility')}, Best Practices ${score('best-practices')}; ` +
      `FCP ${audit('first-contentful-paint')}, LCP ${audit('largest-contentful-paint')}, TBT ${audit('total-blocking-time')}, CLS ${audit('cumulative-layout-shift')}` +
      ` (Lighthouse ${r.lighthouseVersion}, ${r.environment?.hostUserAgent?.match(/Chrome\/[\d.]+/)?.[0] ?? ''})`,
  )
  const failed = Object.values(r.audits).filter((a) => a.score !== null && a.score < 0.9 && a.scoreDisplayMode !== 'informative' && a.scoreDisplayMode !== 'notApplicable' && a.scoreDisplayMode !== 'manual')
  for (const a of failed) console.log(`    below 0.9: ${a.id} (${a.score}) ${a.displayValue ?? ''}`)
}

/** The layout shifts of the queue page on a phone: each with its time, value and the elements that moved; their sum. */
async function layoutShifts(token, player, returning) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS.split(' ') })
  try {
    const ctx = await browser.newContext({ viewport: { width: 412, height: 823 }, deviceScaleFactor: 1.75, isMobile: true, hasTouch: true, serviceWorkers: 'block' })
    const page = await ctx.newPage()
    await page.goto(base + '/')
    await page.evaluate(([token, player]) => localStorage.setItem('taskqueue.session', JSON.stringify({ token, playerId: player, role: 'player' })), [token, player])
    if (returning) {
      // A visit that saves the queue, then time away while the queue runs.
      await page.reload()
      await page.getByTestId('queue').waitFor({ timeout: 60000 })
      await page.waitForTimeout(1500)
      await page.goto('about:blank')
      await page.waitForTimeout(Number(process.env.LAYOUT_AWAY_MS || 9000))
    }
    await page.addInitScript(() => {
      const describe = (s) => {
        const el = s.node?.nodeType === 1 ? s.node : s.node?.parentElement
        const name = el ? `${el.tagName.toLowerCase()}${el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : ''}${el.dataset?.testid ? `[${el.dataset.testid}]` : ''}` : '(removed)'
        const r = (x) => `top ${Math.round(x.y)} height ${Math.round(x.height)}`
        return `${name}: ${r(s.previousRect)} → ${r(s.currentRect)}`
      }
      window.__shifts = []
      new PerformanceObserver((l) => {
        for (const e of l.getEntries()) window.__shifts.push({ at: e.startTime, value: e.value, input: e.hadRecentInput, sources: (e.sources ?? []).map(describe) })
      }).observe({ type: 'layout-shift', buffered: true })
    })
    const cdp = await ctx.newCDPSession(page)
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 })
    await page.goto(base + '/')
    await page.getByTestId('queue').waitFor({ timeout: 60000 })
    await page.waitForTimeout(8000)
    const shifts = (await page.evaluate(() => window.__shifts)).filter((s) => !s.input)
    const away = await page.getByTestId('away').count()
    const what = returning ? `returning after ${Number(process.env.LAYOUT_AWAY_MS || 9000) / 1000} s away${away ? ' (with the away card)' : ' (no away card)'}` : 'first visit'
    console.log(`layout  ${new Date().toISOString().slice(11, 19)} UTC load ${loadavg().map((x) => x.toFixed(2)).join(' ')}: queue page, ${what}: ${shifts.length} shifts, sum ${shifts.reduce((n, s) => n + s.value, 0).toFixed(4)}`)
    for (const s of shifts) console.log(`    at ${Math.round(s.at)} ms: ${s.value.toFixed(4)}${s.sources.map((x) => `\n      ${x}`).join('')}`)
  } finally {
    await browser.close()
  }
}

try {
  await until('the server to answer /healthz', async () => (await fetch(`${base}/healthz`)).ok, 60000)
  const token = (await api('POST', '/api/auth/dev-token', null, { player: 'lh', role: 'player' })).token
  for (const [type, count] of [['chop-wood', 50], ['mine-copper', 5], ['catch-shrimp', 5], ['cook-shrimp', 3]]) await api('POST', '/api/queue/lh/tasks', token, { type, count })
  // Two more players like lh, for the layout-shift probes (each starts with nothing saved).
  for (const player of ['lh-first', 'lh-back']) {
    const t = (await api('POST', '/api/auth/dev-token', null, { player, role: 'player' })).token
    for (const [type, count] of [['chop-wood', 50], ['mine-copper', 5], ['catch-shrimp', 5], ['cook-shrimp', 3]]) await api('POST', `/api/queue/${player}/tasks`, t, { type, count })
    await layoutShifts(t, player, player === 'lh-back')
  }
  if (!process.env.LAYOUT_ONLY) {

    lighthouse(`${base}/`, 'sign-in')

    // A profile that is signed in as lh.
    const profile = join(tmp, 'profile')
    const ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS.split(' ') })
    const page = await ctx.newPage()
    await page.goto(base + '/')
    await page.evaluate((token) => localStorage.setItem('taskqueue.session', JSON.stringify({ token, playerId: 'lh', role: 'player' })), token)
    await page.reload()
    await page.getByTestId('queue').waitFor({ timeout: 60000 })
    await ctx.close()
    lighthouse(`${base}/`, 'queue', ` --user-data-dir=${profile}`, ['--disable-storage-reset'])

    // What the browser downloads.
    const dist = join(repo, 'web/dist')
    const kb = (n) => (n / 1024).toFixed(1)
    const files = ['index.html', 'sw.js', ...readdirSync(join(dist, 'assets')).filter((f) => /\.(js|css)$/.test(f)).map((f) => `assets/${f}`)]
    for (const f of files) {
      const size = (g) => {
        try {
          return kb(statSync(join(dist, f + g)).size)
        } catch {
          return '-'
        }
      }
      console.log(`size ${f.padEnd(36)} ${size('').padStart(7)} KiB, gzip ${size('.gz').padStart(6)} KiB, brotli ${size('.br').padStart(6)} KiB`)
    }
  }
} finally {
  server.kill('SIGTERM')
  await new Promise((r) => (server.exitCode !== null ? r() : server.once('exit', r)))
  rmSync(tmp, { recursive: true, force: true })
}
