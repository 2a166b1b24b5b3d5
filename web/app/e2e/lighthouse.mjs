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

try {
  await until('the server to answer /healthz', async () => (await fetch(`${base}/healthz`)).ok, 60000)
  const token = (await api('POST', '/api/auth/dev-token', null, { player: 'lh', role: 'player' })).token
  for (const [type, count] of [['chop-wood', 50], ['mine-copper', 5], ['catch-shrimp', 5], ['cook-shrimp', 3]]) await api('POST', '/api/queue/lh/tasks', token, { type, count })

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
} finally {
  server.kill('SIGTERM')
  await new Promise((r) => (server.exitCode !== null ? r() : server.once('exit', r)))
  rmSync(tmp, { recursive: true, force: true })
}
