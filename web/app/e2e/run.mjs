// End-to-end tests: the real taskqueue binary on its embedded default (SQLite
// in a temp dir, dev mode) driven through the built web app in headless
// Chromium (Debian's /usr/bin/chromium, never a downloaded browser).
//
//   node e2e/run.mjs            build ./cmd/taskqueue, start it, run the scenario
//   TASKQUEUE_E2E_BINARY=path   use an already built binary
//   CHROMIUM=path               another Chromium executable
//   SCREENSHOTS=dir             where the screenshots go (default docs/screenshots)
//   E2E_ONLY=regexp             run only the steps whose name matches
//
// Each step prints "ok" or "not ok"; the last line is "N passed, N failed".
// Repetitions complete at their due time through the processor; every command
// also first completes what is already due, so the completion step works with
// or without a processor. The other steps keep a long task at the head so that
// the queue's order does not change under them.
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import http from 'node:http'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { WAIT, assertAccessible, freePort, until } from './lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '../../..')
const shots = resolve(process.env.SCREENSHOTS || join(repo, 'docs/screenshots'))
const tmp = mkdtempSync(join(tmpdir(), 'taskqueue-e2e-'))
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const DESKTOP = { width: 1280, height: 860 }
const PHONE = { width: 390, height: 844 }

// ---- the server ------------------------------------------------------------

let binary = process.env.TASKQUEUE_E2E_BINARY
if (!binary) {
  binary = join(tmp, 'taskqueue')
  console.log('# building ./cmd/taskqueue')
  execFileSync('go', ['build', '-o', binary, './cmd/taskqueue'], { cwd: repo, stdio: 'inherit' })
}
const port = await freePort()
const base = `http://127.0.0.1:${port}`
const serverLog = []
let server
let serverExited = null
/** Starts the server on port and the data directory (again after a restart). */
function startServer() {
  serverExited = null
  server = spawn(binary, [], {
    cwd: tmp,
    // No rate limits: the history step writes a thousand commands to build a long history.
    env: {
      ...process.env,
      TASKQUEUE_ADDR: `127.0.0.1:${port}`,
      TASKQUEUE_DATA_DIR: join(tmp, 'data'),
      TASKQUEUE_DEV: 'true',
      TASKQUEUE_RATE_LIMIT_PLAYER: '-1',
      TASKQUEUE_RATE_LIMIT_IP: '-1',
      // Room for the long keyboard move (61 tasks).
      TASKQUEUE_QUEUE_LIMIT: '100',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  server.stdout.on('data', (d) => serverLog.push(String(d)))
  server.stderr.on('data', (d) => serverLog.push(String(d)))
  server.on('exit', (code, signal) => (serverExited = `exited with ${code ?? signal}`))
}
startServer()

/** Kills the server (SIGKILL: no clean shutdown) and starts it again on the same data directory. */
async function restartServer(whileDown = async () => {}) {
  const old = server
  const exited = new Promise((r) => old.once('exit', r))
  old.kill('SIGKILL')
  await exited
  try {
    await whileDown()
  } finally {
    // Started again even when a check made while it was down failed, so that one failed step does
    // not fail every later one with "server exited".
    startServer()
    await until('the restarted server to answer /healthz', async () => (await fetch(`${base}/healthz`)).ok, 60000)
  }
}

async function api(method, path, token, body) {
  const res = await fetch(base + path, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers }
}

// ---- the steps -------------------------------------------------------------

const results = []
let browser
const state = {}

const only = process.env.E2E_ONLY ? new RegExp(process.env.E2E_ONLY) : null

async function step(name, fn) {
  if (only && !only.test(name)) return
  const t0 = Date.now()
  try {
    if (serverExited) throw new Error(`server ${serverExited}`)
    await fn()
    results.push(true)
    console.log(`ok ${results.length} - ${name} (${Date.now() - t0} ms)`)
  } catch (err) {
    results.push(false)
    console.log(`not ok ${results.length} - ${name}\n  ${String(err.stack || err).split('\n').join('\n  ')}`)
    if (state.page) await state.page.screenshot({ path: join(tmp, `failed-${results.length}.png`) }).catch(() => {})
  }
}

async function shot(page, name) {
  mkdirSync(shots, { recursive: true })
  await page.waitForTimeout(300) // let the last transition end
  await page.screenshot({ path: join(shots, `${name}.png`) })
}

async function newPage(viewport) {
  const context = await browser.newContext({ viewport, baseURL: base, deviceScaleFactor: 1 })
  const page = await context.newPage()
  page.on('pageerror', (err) => console.log(`# page error: ${err.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && !/WebSocket|ERR_INTERNET_DISCONNECTED|Failed to load resource/.test(m.text())) console.log(`# console: ${m.text()}`)
  })
  return { context, page }
}

/** A dev-mode token for player, without a page. */
async function devToken(player) {
  const r = await api('POST', '/api/auth/dev-token', null, { player, role: 'player' })
  assert.equal(r.status, 200, `dev token: ${JSON.stringify(r.body)}`)
  return r.body.token
}

/** A dev-mode admin token. */
async function adminToken() {
  const r = await api('POST', '/api/auth/dev-token', null, { player: 'root', role: 'admin' })
  assert.equal(r.status, 200, `dev token: ${JSON.stringify(r.body)}`)
  return r.body.token
}

/** Signs in as the admin root through the sign-in page and waits for the admin view. */
async function signInAdmin(page) {
  await page.goto('/')
  await page.getByLabel('Player name').fill('root')
  await page.getByTestId('as-admin').check()
  await page.getByRole('button', { name: 'Play' }).click()
  await page.getByTestId('admin').waitFor({ timeout: WAIT })
}

/** Opens the app signed in with token, as a reload after sign-in would. */
async function openAs(page, token, player) {
  await page.goto('/')
  await page.evaluate(([token, playerId]) => localStorage.setItem('taskqueue.session', JSON.stringify({ token, playerId, role: 'player' })), [token, player])
  await page.reload()
  await page.getByTestId('queue').waitFor({ timeout: WAIT })
}

async function signIn(page, name) {
  await page.goto('/')
  await page.getByLabel('Player name').fill(name)
  await page.getByRole('button', { name: 'Play' }).click()
  await page.getByTestId('player-name').filter({ hasText: name }).waitFor({ timeout: WAIT })
  await page.getByTestId('queue').waitFor({ timeout: WAIT })
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem('taskqueue.session')).token)
  return token
}

async function addTask(page, type, count, skillName) {
  if (skillName) await page.getByRole('tab', { name: new RegExp(`^${skillName}`) }).click()
  const entry = page.locator(`[data-testid=catalog-task][data-task-type="${type}"]`)
  await entry.getByTestId('count').fill(String(count))
  await entry.getByTestId('add').click()
}

/** The task types of the queue as the page shows them, head first. */
async function shownTypes(page) {
  return page.evaluate(() => {
    const head = document.querySelector('[data-testid=head-task]')
    const list = [...document.querySelectorAll('[data-testid=waiting] [data-testid=task]')].map((li) => li.getAttribute('data-task-type'))
    return head ? [head.getAttribute('data-task-type'), ...list] : list
  })
}

async function serverQueue(token, player) {
  const r = await api('GET', `/api/queue/${player}`, token)
  assert.equal(r.status, 200, `GET /api/queue/${player}: ${JSON.stringify(r.body)}`)
  return r.body
}

async function waitServerTypes(token, player, want) {
  let got
  await until(`server queue ${JSON.stringify(want)}`, async () => {
    got = (await serverQueue(token, player)).tasks.map((t) => t.type)
    return JSON.stringify(got) === JSON.stringify(want)
  }).catch((err) => {
    throw new Error(`${err.message}; last: ${JSON.stringify(got)}`)
  })
}

async function waitShownTypes(page, want) {
  let got
  await until(`page shows ${JSON.stringify(want)}`, async () => {
    got = await shownTypes(page)
    return JSON.stringify(got) === JSON.stringify(want)
  }).catch((err) => {
    throw new Error(`${err.message}; last: ${JSON.stringify(got)}`)
  })
}

async function dragHandle(page, fromType, toType) {
  const handle = (type) => page.locator(`[data-testid=waiting] [data-testid=task][data-task-type="${type}"] .handle`)
  const a = await handle(fromType).boundingBox()
  const b = await handle(toType).boundingBox()
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2)
  await page.mouse.down()
  const steps = 12
  for (let i = 1; i <= steps; i++) {
    await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2 + ((b.y - a.y - 6) * i) / steps)
    await page.waitForTimeout(16)
  }
  await page.mouse.up()
}

try {
  await until('the server to answer /healthz', async () => (await fetch(`${base}/healthz`)).ok, 60000).catch((err) => {
    throw new Error(`${err.message}\n${serverLog.join('')}`)
  })
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  })

  await step('the app shell is served with its manifest and service worker', async () => {
    const index = await fetch(base + '/')
    assert.equal(index.status, 200)
    assert.match(await index.text(), /<div id="root">/)
    assert.ok((await fetch(base + '/manifest.webmanifest')).ok)
    assert.ok((await fetch(base + '/sw.js')).ok)
  })

  await step('static files are precompressed (brotli, gzip) with Vary; the sign-in page loads no player or admin code; the manifest is installable', async () => {
    // Node's http, to choose Accept-Encoding and see the bytes as sent.
    const get = (path, encoding) =>
      new Promise((res, rej) => {
        http.get(base + path, { headers: { 'Accept-Encoding': encoding } }, (r) => {
          const chunks = []
          r.on('data', (c) => chunks.push(c))
          r.on('end', () => res({ status: r.statusCode, headers: r.headers, body: Buffer.concat(chunks) }))
        }).on('error', rej)
      })
    const index = await get('/', 'identity')
    const scripts = [...String(index.body).matchAll(/\/assets\/[^"']+\.js/g)].map((m) => m[0])
    assert.ok(scripts.length > 0, 'index.html names its script')
    for (const path of ['/', ...scripts]) {
      const raw = await get(path, 'identity')
      const br = await get(path, 'gzip, deflate, br')
      const gz = await get(path, 'gzip, deflate')
      assert.equal(br.headers['content-encoding'], 'br', `${path} with br`)
      assert.equal(gz.headers['content-encoding'], 'gzip', `${path} with gzip`)
      assert.equal(raw.headers['content-encoding'], undefined, `${path} as is`)
      for (const r of [raw, br, gz]) assert.match(r.headers.vary ?? '', /Accept-Encoding/i, `${path}: Vary`)
      assert.ok(brotliDecompressSync(br.body).equals(raw.body), `${path}: the brotli form is the file`)
      assert.ok(gunzipSync(gz.body).equals(raw.body), `${path}: the gzip form is the file`)
      assert.ok(br.body.length < raw.body.length / 2, `${path}: ${br.body.length} bytes of brotli for ${raw.body.length}`)
    }
    const manifest = await get('/manifest.webmanifest', 'identity')
    assert.equal(manifest.headers['content-type'], 'application/manifest+json')
    const m = JSON.parse(String(manifest.body))
    assert.ok(m.id, 'the manifest has an id')
    const maskable = m.icons.find((i) => /maskable/.test(i.purpose ?? ''))
    assert.ok(maskable, 'a maskable icon')

    // In the browser: the sign-in page fetches no player or admin chunk, and
    // the maskable icon has no transparent pixel (corners included).
    const { context, page } = await newPage(DESKTOP)
    const loaded = []
    page.on('response', (r) => {
      if (r.url().endsWith('.js')) loaded.push(new URL(r.url()).pathname)
    })
    await page.goto('/')
    await page.getByLabel('Player name').waitFor({ timeout: WAIT })
    await page.waitForLoadState('networkidle')
    assert.ok(loaded.length > 0)
    for (const path of loaded) assert.ok(!/\/assets\/(Player|AdminPanel)-/.test(path), `the sign-in page loaded ${path}`)
    const opaque = await page.evaluate(async (src) => {
      const img = new Image()
      img.src = src
      await img.decode()
      const canvas = document.createElement('canvas')
      canvas.width = img.naturalWidth
      canvas.height = img.naturalHeight
      const g = canvas.getContext('2d')
      g.drawImage(img, 0, 0)
      const data = g.getImageData(0, 0, canvas.width, canvas.height).data
      for (let i = 3; i < data.length; i += 4) if (data[i] !== 255) return false
      return true
    }, maskable.src)
    assert.ok(opaque, `${maskable.src} has transparent pixels: not maskable`)
    await context.close()
  })

  await step('sign in with a player name (dev mode)', async () => {
    const { context, page } = await newPage(DESKTOP)
    Object.assign(state, { context, page })
    await page.goto('/')
    await page.getByLabel('Player name').waitFor()
    await shot(page, 'signin-desktop')
    state.alice = await signIn(page, 'alice')
    await page.getByText('Nothing queued').waitFor({ timeout: WAIT })
    // The WebSocket (GET /api/ws) subscribes: the indicator says Live.
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => true))
  })

  await step('the catalog says why a task cannot be queued yet', async () => {
    const { page } = state
    await page.getByRole('tab', { name: /^Woodcutting/ }).click()
    const oak = page.locator('[data-testid=catalog-task][data-task-type="chop-oak"]')
    await oak.getByTestId('locked-reason').filter({ hasText: 'Needs Woodcutting level 5' }).waitFor()
    assert.equal(await oak.getByTestId('add').count(), 0)
  })

  await step('add a chain of tasks; the head runs with a live progress bar', async () => {
    const { page } = state
    // An empty queue that nobody stopped is idle, not running.
    await page.getByTestId('queue-state').filter({ hasText: 'Idle' }).waitFor({ timeout: WAIT })
    await addTask(page, 'chop-wood', 100, 'Woodcutting')
    await addTask(page, 'saw-planks', 2, 'Crafting')
    await addTask(page, 'catch-shrimp', 3, 'Fishing')
    await addTask(page, 'cook-shrimp', 2, 'Cooking')
    const want = ['chop-wood', 'saw-planks', 'catch-shrimp', 'cook-shrimp']
    await waitServerTypes(state.alice, 'alice', want)
    await waitShownTypes(page, want)
    await page.getByTestId('repetition').filter({ hasText: /Repetition \d+ of 100/ }).waitFor({ timeout: WAIT })
    await page.getByTestId('queue-state').filter({ hasText: 'Running' }).waitFor()
    const q = await serverQueue(state.alice, 'alice')
    assert.ok(q.repetition, 'the head has a running repetition')
    await page.getByRole('tab', { name: /^Woodcutting/ }).click()
    await shot(page, 'queue-desktop')
  })

  await step('real time: a change made by another client shows up live', async () => {
    const { page } = state
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    const r = await api('POST', '/api/queue/alice/tasks', state.alice, { type: 'mine-copper', count: 1 })
    assert.equal(r.status, 201)
    await waitShownTypes(page, ['chop-wood', 'saw-planks', 'catch-shrimp', 'cook-shrimp', 'mine-copper'])
    const d = await api('DELETE', `/api/queue/alice/tasks/${r.body.taskId}`, state.alice)
    assert.equal(d.status, 200)
    await waitShownTypes(page, ['chop-wood', 'saw-planks', 'catch-shrimp', 'cook-shrimp'])
  })

  await step('reorder by dragging; the server gets the new order', async () => {
    const { page } = state
    await dragHandle(page, 'cook-shrimp', 'saw-planks')
    const want = ['chop-wood', 'cook-shrimp', 'saw-planks', 'catch-shrimp']
    await waitServerTypes(state.alice, 'alice', want)
    await waitShownTypes(page, want)
  })

  await step('reorder with the keyboard (space, arrow, space)', async () => {
    const { page } = state
    const handle = page.locator('[data-testid=waiting] [data-testid=task][data-task-type="catch-shrimp"] .handle')
    const announced = (text) => page.locator('[aria-live]').filter({ hasText: text }).first().waitFor({ state: 'attached', timeout: WAIT })
    await handle.focus()
    await page.keyboard.press('Space')
    await announced('Picked up Catch shrimp at position 4.')
    // One step up: one press is enough, even on a busy page.
    await page.keyboard.press('ArrowUp')
    await announced('Catch shrimp moved to position 3.')
    await page.keyboard.press('Space')
    await announced('Catch shrimp dropped at position 3.')
    const want = ['chop-wood', 'cook-shrimp', 'catch-shrimp', 'saw-planks']
    await waitServerTypes(state.alice, 'alice', want)
    await waitShownTypes(page, want)
  })

  await step('a long keyboard move in a 61-task queue: each of 40 quick presses moves the row one place, its number follows at once, the server gets the order', async () => {
    const token = await devToken('kim')
    // A long head task keeps the order still; then 60 waiting tasks.
    assert.equal((await api('POST', '/api/queue/kim/tasks', token, { type: 'chop-wood', count: 1000 })).status, 201)
    for (let i = 0; i < 60; i++) {
      const r = await api('POST', '/api/queue/kim/tasks', token, { type: ['mine-copper', 'catch-shrimp', 'chop-wood'][i % 3], count: i + 1 })
      assert.equal(r.status, 201, JSON.stringify(r.body))
    }
    // The queue view is the read model: wait until it shows the last enqueue.
    await until('the server to show 61 tasks', async () => (await serverQueue(token, 'kim')).tasks.length === 61)
    const before = (await serverQueue(token, 'kim')).tasks.map((t) => t.taskId)
    const { context, page } = await newPage(DESKTOP)
    const alicePage = state.page // the steps after this one go on with alice's page
    state.page = page
    try {
      await openAs(page, token, 'kim')
      const rows = page.locator('[data-testid=waiting] [data-testid=task]')
      await until('60 waiting tasks', async () => (await rows.count()) === 60)
      const moving = before[60] // the last, at position 61
      const row = page.locator(`[data-testid=waiting] [data-testid=task][data-task-id="${moving}"]`)
      await row.locator('.handle').focus()
      await page.keyboard.press('Space')
      // 40 presses as fast as the browser takes them (no wait in between).
      for (let i = 0; i < 40; i++) await page.keyboard.press('ArrowUp')
      // Each press moved it one place, and the row's number says so at once.
      const shownPlace = async () => {
        const ids = await rows.evaluateAll((els) => els.map((el) => el.getAttribute('data-task-id')))
        return { index: ids.indexOf(moving), number: await row.locator('.pos').innerText(), label: await row.locator('.handle').getAttribute('aria-label') }
      }
      const during = await shownPlace()
      assert.deepEqual(during, { index: 19, number: '21', label: during.label.replace(/\(position \d+\)/, '(position 21)') }, `while moving: ${JSON.stringify(during)}`)
      assert.match(during.label, /\(position 21\)$/)
      await page.keyboard.press('Space')
      const want = [...before.slice(0, 20), moving, ...before.slice(20, 60)]
      let got
      await until('the server to have the new order', async () => {
        got = (await serverQueue(token, 'kim')).tasks.map((t) => t.taskId)
        return JSON.stringify(got) === JSON.stringify(want)
      }).catch((err) => {
        throw new Error(`${err.message}; the moved task is at position ${got.indexOf(moving) + 1}`)
      })
      const after = await shownPlace()
      assert.equal(after.index, 19)
      assert.equal(after.number, '21')
      const shownIds = await rows.evaluateAll((els) => els.map((el) => el.getAttribute('data-task-id')))
      assert.deepEqual(shownIds, want.slice(1))
    } finally {
      await context.close()
      state.page = alicePage
    }
  })

  await step('remove a waiting task', async () => {
    const { page } = state
    await page.locator('[data-testid=waiting] [data-testid=task][data-task-type="saw-planks"]').getByRole('button', { name: /^Remove/ }).click()
    const want = ['chop-wood', 'cook-shrimp', 'catch-shrimp']
    await waitServerTypes(state.alice, 'alice', want)
    await waitShownTypes(page, want)
  })

  await step('stop and start the queue', async () => {
    const { page } = state
    await page.getByTestId('stop').click()
    // Stop cancels the running repetition: it asks first.
    await page.getByTestId('confirm-dialog').getByRole('button', { name: 'Stop the queue' }).click()
    await page.getByTestId('queue-state').filter({ hasText: 'Stopped' }).waitFor()
    await until('the server to stop the queue', async () => !(await serverQueue(state.alice, 'alice')).running)
    assert.equal((await serverQueue(state.alice, 'alice')).repetition, null)
    await page.getByTestId('start').click()
    await page.getByTestId('queue-state').filter({ hasText: 'Running' }).waitFor()
    await until('the server to run the queue', async () => {
      const q = await serverQueue(state.alice, 'alice')
      return q.running && q.repetition
    })
    await page.getByTestId('repetition').filter({ hasText: /Repetition \d+ of 100/ }).waitFor({ timeout: WAIT })
  })

  await step('offline: two tasks wait in the outbox, survive a reload, and sync on reconnect', async () => {
    const { page, context } = state
    await context.setOffline(true)
    await page.getByTestId('connection').filter({ hasText: 'Offline' }).waitFor({ timeout: WAIT })
    await addTask(page, 'mine-copper', 4, 'Mining')
    await addTask(page, 'mine-tin', 4, 'Mining')
    await page.locator('[data-testid=task][data-pending=add]').nth(1).waitFor({ timeout: WAIT })
    await page.getByTestId('outbox-pending').filter({ hasText: '2 changes wait' }).waitFor()
    await shot(page, 'offline-desktop')
    // The server has not seen them.
    const before = await serverQueue(state.alice, 'alice')
    assert.deepEqual(before.tasks.map((t) => t.type), ['chop-wood', 'cook-shrimp', 'catch-shrimp'])
    // Reload while offline: the service worker serves the shell, IndexedDB keeps the outbox.
    await page.reload()
    await page.getByTestId('queue').waitFor({ timeout: WAIT })
    await page.getByTestId('outbox-pending').filter({ hasText: '2 changes wait' }).waitFor({ timeout: WAIT })
    assert.equal(await page.locator('[data-testid=task][data-pending=add]').count(), 2)
    assert.ok(await page.evaluate(() => navigator.serviceWorker.controller !== null), 'the service worker controls the page')
    await context.setOffline(false)
    const want = ['chop-wood', 'cook-shrimp', 'catch-shrimp', 'mine-copper', 'mine-tin']
    await waitServerTypes(state.alice, 'alice', want)
    await waitShownTypes(page, want)
    await page.getByTestId('outbox-pending').waitFor({ state: 'detached', timeout: WAIT })
    assert.equal(await page.locator('[data-testid=task][data-pending]:not([data-pending=""])').count(), 0)
  })

  await step('offline: a command the server refuses on reconnect is shown with its reason', async () => {
    const { page, context } = state
    await context.setOffline(true)
    await page.getByTestId('connection').filter({ hasText: 'Offline' }).waitFor({ timeout: WAIT })
    await page.locator('[data-testid=waiting] [data-testid=task][data-task-type="mine-tin"]').getByRole('button', { name: /^Remove/ }).click()
    await page.locator('[data-testid=task][data-pending=remove]').waitFor()
    // Meanwhile the same task goes away through another client.
    const q = await serverQueue(state.alice, 'alice')
    const tin = q.tasks.find((t) => t.type === 'mine-tin')
    const r = await api('DELETE', `/api/queue/alice/tasks/${tin.taskId}`, state.alice)
    assert.equal(r.status, 200)
    await context.setOffline(false)
    await page.getByTestId('rejection').waitFor({ timeout: WAIT })
    const text = await page.getByTestId('rejection').innerText()
    assert.match(text, /Remove Mine tin\. That task is no longer in the queue/)
    await waitShownTypes(page, ['chop-wood', 'cook-shrimp', 'catch-shrimp', 'mine-copper'])
    await shot(page, 'rejected-desktop')
    await page.getByTestId('rejection').getByRole('button', { name: 'Dismiss' }).click()
  })

  await step('phone width: the queue and the catalog fit without horizontal scrolling', async () => {
    const { context, page } = await newPage(PHONE)
    await page.goto('/')
    await page.evaluate((token) => localStorage.setItem('taskqueue.session', JSON.stringify({ token, playerId: 'alice', role: 'player' })), state.alice)
    await page.reload()
    await page.getByTestId('head-task').waitFor({ timeout: WAIT })
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`)
    await shot(page, 'queue-phone')
    await page.getByTestId('catalog').scrollIntoViewIfNeeded()
    await page.screenshot({ path: join(shots, 'catalog-phone.png'), fullPage: false })
    await context.close()
  })

  await step('no layout jump while the progress ticks, nor when a repetition ends', async () => {
    const { page } = state
    await page.getByTestId('head-task').waitFor()
    // Watch every DOM change across a repetition boundary: the head task must
    // never vanish (the server sends the queue once per command, not between
    // its events) and nothing may change size or move.
    await page.evaluate(() => {
      const box = (sel) => {
        const r = document.querySelector(sel)?.getBoundingClientRect()
        return r ? `${r.height},${r.top}` : 'missing'
      }
      const sample = () => [box('[data-testid=head-task]'), box('[data-testid=waiting]'), box('[data-testid=catalog]')].join(' ')
      const seen = (window.__layouts = new Set([sample()]))
      window.__layoutObserver = new MutationObserver(() => seen.add(sample()))
      window.__layoutObserver.observe(document.body, { childList: true, subtree: true, attributes: true, characterData: true })
    })
    const repetition = page.locator('[data-testid=head-task] [data-testid=repetition]')
    const first = await repetition.innerText()
    await until('the next repetition', async () => (await repetition.innerText()) !== first)
    await page.waitForTimeout(500)
    const layouts = await page.evaluate(() => {
      window.__layoutObserver.disconnect()
      return [...window.__layouts]
    })
    assert.equal(layouts.length, 1, `layout changed (${first} → ${await repetition.innerText()}): ${layouts.join(' | ')}`)
  })

  await step('a second player sees progress and a completion with its rewards', async () => {
    const { context, page } = await newPage(DESKTOP)
    Object.assign(state, { bobContext: context, bobPage: page })
    state.bob = await signIn(page, 'bob')
    await page.getByText('Nothing queued').waitFor({ timeout: WAIT })
    assert.deepEqual(await shownTypes(page), [])
    await addTask(page, 'catch-shrimp', 1, 'Fishing')
    await page.getByTestId('repetition').filter({ hasText: 'Repetition 1 of 1' }).waitFor({ timeout: WAIT })
    const bar = page.locator('[data-testid=head-task] [role=progressbar]')
    const first = Number(await bar.getAttribute('aria-valuenow'))
    await until('the progress bar to move', async () => Number(await bar.getAttribute('aria-valuenow')) > first)
    // The processor completes the repetition at its due time. Without one,
    // the head waits past due ("finishing…") and the next command completes
    // it first: send one then.
    const toast = page.locator('.toast').filter({ hasText: 'Finished: Catch shrimp ×1' })
    const overdue = page.getByTestId('time-left').filter({ hasText: 'finishing' })
    await until('the repetition to complete or fall due', async () => (await toast.count()) > 0 || (await overdue.count()) > 0)
    if ((await toast.count()) === 0) await addTask(page, 'catch-shrimp', 1, 'Fishing')
    await toast.first().waitFor({ timeout: WAIT })
    await page.getByTestId('inventory').filter({ hasText: 'Raw shrimp' }).waitFor({ timeout: WAIT })
    const q = await serverQueue(state.bob, 'bob')
    assert.equal(q.inventory['raw-shrimp'], 1)
    assert.equal(q.skills.fishing.xp, 8)
    // The history (read side) lists it, with its efficiency.
    await page.locator('[data-testid=history-entry][data-outcome=completed]').filter({ hasText: 'Catch shrimp' }).first().waitFor({ timeout: WAIT })
    // A second completion draws the efficiency chart (two points at least).
    if ((await shownTypes(page)).length === 0) await addTask(page, 'catch-shrimp', 1, 'Fishing')
    await until('a second completed task in the history', async () => {
      if ((await page.getByTestId('time-left').filter({ hasText: 'finishing' }).count()) > 0) await addTask(page, 'catch-shrimp', 1, 'Fishing')
      return (await page.locator('[data-testid=history-entry][data-outcome=completed]').count()) >= 2
    })
    await page.getByTestId('efficiency-chart').waitFor({ timeout: WAIT })
    await shot(page, 'completed-desktop')
  })

  await step("a second player cannot see the first player's queue", async () => {
    const page = state.bobPage
    const bob = state.bob
    assert.equal(await page.getByTestId('player-name').innerText(), 'bob')
    const shown = await shownTypes(page)
    for (const t of ['chop-wood', 'cook-shrimp', 'mine-copper']) assert.ok(!shown.includes(t), `bob sees ${t} of alice: ${shown}`)
    const r = await api('GET', '/api/queue/alice', bob)
    assert.equal(r.status, 403)
    assert.equal(r.body.type, 'urn:taskqueue:problem:forbidden')
    const w = await api('POST', '/api/queue/alice/tasks', bob, { type: 'chop-wood', count: 1 })
    assert.equal(w.status, 403)
    await state.bobContext.close()
  })
  await step('"insert before #N" applies to one add; the next add goes to the end again', async () => {
    const { context, page } = await newPage(DESKTOP)
    const token = await devToken('carol')
    // A long head task that runs (it cannot be inserted before) and two waiting ones.
    for (const [type, count] of [['chop-wood', 100], ['mine-copper', 1], ['mine-tin', 1]]) {
      assert.equal((await api('POST', '/api/queue/carol/tasks', token, { type, count })).status, 201)
    }
    await openAs(page, token, 'carol')
    await waitShownTypes(page, ['chop-wood', 'mine-copper', 'mine-tin'])
    await page.getByTestId('repetition').waitFor({ timeout: WAIT })
    await page.getByRole('tab', { name: /^Fishing/ }).click()
    const shrimp = page.locator('[data-testid=catalog-task][data-task-type="catch-shrimp"]')
    assert.equal(await page.getByTestId('position').inputValue(), 'end')
    // Choose "before #2 Mine copper" and add.
    await page.getByTestId('position').selectOption({ index: 1 })
    assert.match(await page.getByTestId('position').locator('option:checked').innerText(), /before #2 Mine copper/)
    await addTask(page, 'catch-shrimp', 1)
    await waitServerTypes(token, 'carol', ['chop-wood', 'catch-shrimp', 'mine-copper', 'mine-tin'])
    // The position applied to that add only: the next two adds are appended, in order.
    await addTask(page, 'catch-shrimp', 2)
    await waitShownTypes(page, ['chop-wood', 'catch-shrimp', 'mine-copper', 'mine-tin', 'catch-shrimp'])
    await addTask(page, 'mine-tin', 3, 'Mining')
    const want = ['chop-wood', 'catch-shrimp', 'mine-copper', 'mine-tin', 'catch-shrimp', 'mine-tin']
    await waitServerTypes(token, 'carol', want)
    await waitShownTypes(page, want)
    assert.deepEqual((await serverQueue(token, 'carol')).tasks.map((t) => t.count), [100, 1, 1, 1, 2, 3])
    // The control says plainly what an add will do: the end by default...
    const copper = page.locator('[data-testid=catalog-task][data-task-type="mine-copper"]')
    assert.equal(await page.getByTestId('position').inputValue(), 'end')
    assert.equal(await page.getByTestId('position-note').count(), 0)
    assert.equal(await copper.getByTestId('add').getAttribute('aria-label'), 'Add Mine copper at the end')
    // ...or the place chosen, on the button and in a note.
    await page.getByTestId('position').selectOption({ index: 2 })
    await copper.getByTestId('add').filter({ hasText: 'Add before #3' }).waitFor()
    assert.equal(await copper.getByTestId('add').getAttribute('aria-label'), 'Add Mine copper before #3')
    await page.getByTestId('position-note').filter({ hasText: 'The next add goes before #3' }).waitFor()
    await context.close()
  })

  await step('history: "Show more" pages through 1,000+ entries and keeps its place while repetitions complete', async () => {
    const token = await devToken('dave')
    // A long head task keeps repetitions completing (each one moves the
    // queue's version) while the history is browsed; 1,050 cancelled tasks
    // make the history (one entry each).
    assert.equal((await api('POST', '/api/queue/dave/tasks', token, { type: 'chop-wood', count: 1000 })).status, 201)
    const N = 1050
    const t0 = Date.now()
    for (let i = 0; i < N; i++) {
      const r = await api('POST', '/api/queue/dave/tasks', token, { type: 'mine-copper', count: 1 })
      assert.equal(r.status, 201, JSON.stringify(r.body))
      assert.equal((await api('DELETE', `/api/queue/dave/tasks/${r.body.taskId}`, token)).status, 200)
    }
    const all = []
    await until('the history to hold every cancelled task', async () => {
      all.length = 0
      let cursor = ''
      do {
        const r = await api('GET', `/api/queue/dave/history?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, token)
        assert.equal(r.status, 200)
        all.push(...r.body.entries)
        cursor = r.body.nextCursor
      } while (cursor)
      return all.length === N
    })
    console.log(`# ${N} history entries written and projected in ${Date.now() - t0} ms`)
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'dave')
    const entries = page.getByTestId('history-entry')
    const more = page.getByRole('button', { name: 'Show more' })
    await until('the first page of history', async () => (await entries.count()) === 50)
    await more.click()
    await until('a second page', async () => (await entries.count()) === 100)
    await more.click()
    await until('a third page', async () => (await entries.count()) === 150)
    // Scroll to the 150th entry and let two repetitions complete.
    const last = entries.nth(149)
    await last.scrollIntoViewIfNeeded()
    const lastKey = await last.getAttribute('data-key')
    const place = await last.evaluate((el) => el.getBoundingClientRect().top)
    const repetition = page.locator('[data-testid=head-task] [data-testid=repetition]')
    for (let i = 0; i < 2; i++) {
      const before = await repetition.innerText()
      await until('the next repetition', async () => (await repetition.innerText()) !== before)
    }
    await page.waitForTimeout(2500) // past the panel's refetch after a change
    assert.equal(await entries.count(), 150, 'the expanded history kept its 150 entries')
    assert.equal(await entries.nth(149).getAttribute('data-key'), lastKey)
    const now = await entries.nth(149).evaluate((el) => el.getBoundingClientRect().top)
    assert.ok(Math.abs(now - place) < 2, `the 150th entry moved from ${place} to ${now}`)
    // Page on to the very end: every entry once, newest first.
    for (let shown = 150; shown < N; ) {
      await more.click()
      const want = Math.min(shown + 50, N)
      await until(`${want} entries`, async () => (await entries.count()) >= want)
      shown = await entries.count()
    }
    await more.waitFor({ state: 'detached', timeout: WAIT })
    const keys = await entries.evaluateAll((els) => els.map((el) => el.getAttribute('data-key')))
    assert.equal(keys.length, N)
    assert.deepEqual(keys, all.map((e) => e.taskId + e.finishedAt))
    await context.close()
  })
  await step('server restart: the player stays signed in, the page reconnects and resumes, an unsent command goes out once', async () => {
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    const token = await signIn(page, 'erin')
    await addTask(page, 'chop-wood', 100, 'Woodcutting')
    await waitServerTypes(token, 'erin', ['chop-wood'])
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    const repetition = page.locator('[data-testid=head-task] [data-testid=repetition]')
    await repetition.waitFor({ timeout: WAIT })
    // The server dies (no clean shutdown); while it is down the player adds a
    // task, which waits in the outbox; then it starts again on the same data.
    await restartServer(async () => {
      await page.getByTestId('connection').filter({ hasText: 'Reconnecting' }).waitFor({ timeout: WAIT })
      await addTask(page, 'mine-copper', 2, 'Mining')
      await page.getByTestId('outbox-pending').filter({ hasText: '1 change waits' }).waitFor({ timeout: WAIT })
    })
    // The page reconnects by itself, still signed in, and sends the command once.
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    await waitServerTypes(token, 'erin', ['chop-wood', 'mine-copper'])
    await waitShownTypes(page, ['chop-wood', 'mine-copper'])
    await page.getByTestId('outbox-pending').waitFor({ state: 'detached', timeout: WAIT })
    assert.equal(await page.getByLabel('Player name').count(), 0, 'the page dropped to sign-in')
    assert.equal(await page.getByTestId('player-name').innerText(), 'erin')
    // The queue resumes: repetitions keep completing on the page.
    const before = await repetition.innerText()
    await until('a repetition after the restart', async () => (await repetition.innerText()) !== before)
    await page.waitForTimeout(1000) // nothing is sent twice, even late
    const q = await serverQueue(token, 'erin')
    assert.deepEqual(q.tasks.map((t) => [t.type, t.count]), [['chop-wood', 100], ['mine-copper', 2]])
    assert.equal(await page.getByLabel('Player name').count(), 0, 'the page dropped to sign-in')
    await context.close()
  })

  await step('sign out ends the session and clears the player\'s local data', async () => {
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    const token = await signIn(page, 'frank')
    await addTask(page, 'chop-wood', 5, 'Woodcutting')
    await waitServerTypes(token, 'frank', ['chop-wood'])
    await until('the queue cached for offline reloads', () => page.evaluate(() => localStorage.getItem('taskqueue.view.frank') !== null))
    await page.getByRole('button', { name: 'Sign out', exact: true }).click()
    await page.getByLabel('Player name').waitFor({ timeout: WAIT })
    // The server ended the session: the token no longer reads the queue.
    await until('the token to be refused', async () => (await api('GET', '/api/queue/frank', token)).status === 401)
    // The catalog and whether notifications were asked for belong to the browser, not the player.
    // The sent logout leaves localStorage once the page has the server's answer, which may come
    // just after the server refuses the token.
    const left = () => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('taskqueue.') && k !== 'taskqueue.catalog' && k !== 'taskqueue.notifications.asked'))
    await until('the player\'s data to be gone from localStorage', async () => (await left()).length === 0).catch(async (err) => {
      assert.deepEqual(await left(), [], 'the player\'s data is gone from localStorage')
      throw err
    })
    await context.close()
  })

  await step('sign out while offline asks about unsent commands, keeps them when asked, and ends the session once back online', async () => {
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    const token = await signIn(page, 'gina')
    await addTask(page, 'chop-wood', 100, 'Woodcutting')
    await waitServerTypes(token, 'gina', ['chop-wood'])
    await context.setOffline(true)
    await page.getByTestId('connection').filter({ hasText: 'Offline' }).waitFor({ timeout: WAIT })
    await addTask(page, 'mine-copper', 1, 'Mining')
    await page.getByTestId('outbox-pending').filter({ hasText: '1 change waits' }).waitFor({ timeout: WAIT })
    await page.getByRole('button', { name: 'Sign out', exact: true }).click()
    const dialog = page.getByTestId('signout-dialog')
    await dialog.filter({ hasText: '1 change has not reached the server' }).waitFor({ timeout: WAIT })
    await dialog.getByRole('button', { name: 'Keep and sign out' }).click()
    await page.getByLabel('Player name').waitFor({ timeout: WAIT })
    assert.equal(await page.evaluate(() => localStorage.getItem('taskqueue.view.gina')), null)
    assert.equal((await api('GET', '/api/queue/gina', token)).status, 200, 'offline, the logout has not reached the server yet')
    await context.setOffline(false)
    await until('the queued logout to end the session', async () => (await api('GET', '/api/queue/gina', token)).status === 401)
    // Signed in again, the kept command goes out.
    const again = await signIn(page, 'gina')
    await waitServerTypes(again, 'gina', ['chop-wood', 'mine-copper'])
    await context.close()
  })

  await step('two tabs share one outbox: a cancel in one is seen by the other, and each command is sent once', async () => {
    const token = await devToken('hana')
    assert.equal((await api('POST', '/api/queue/hana/tasks', token, { type: 'chop-wood', count: 100 })).status, 201)
    const { context, page: a } = await newPage(DESKTOP)
    state.page = a
    const b = await context.newPage()
    const answered = new Map()
    for (const p of [a, b]) {
      p.on('response', (r) => {
        const req = r.request()
        if (req.method() === 'POST' && req.url().endsWith('/api/queue/hana/tasks')) {
          const key = req.headers()['idempotency-key']
          answered.set(key, (answered.get(key) ?? 0) + 1)
        }
      })
    }
    await openAs(a, token, 'hana')
    await b.goto('/')
    await b.getByTestId('queue').waitFor({ timeout: WAIT })
    await waitShownTypes(b, ['chop-wood'])
    await context.setOffline(true)
    for (const p of [a, b]) await p.getByTestId('connection').filter({ hasText: 'Offline' }).waitFor({ timeout: WAIT })
    await addTask(a, 'mine-copper', 1, 'Mining')
    await addTask(a, 'mine-tin', 1)
    // The other tab sees both commands waiting.
    await b.locator('[data-testid=task][data-pending=add][data-task-type=mine-tin]').waitFor({ timeout: WAIT })
    await b.locator('[data-testid=task][data-pending=add][data-task-type=mine-copper]').getByRole('button', { name: 'Cancel' }).click()
    await a.locator('[data-testid=task][data-pending=add][data-task-type=mine-copper]').waitFor({ state: 'detached', timeout: WAIT })
    await addTask(b, 'catch-shrimp', 1, 'Fishing')
    await a.locator('[data-testid=task][data-pending=add][data-task-type=catch-shrimp]').waitFor({ timeout: WAIT })
    await context.setOffline(false)
    const want = ['chop-wood', 'mine-tin', 'catch-shrimp']
    await waitServerTypes(token, 'hana', want)
    for (const p of [a, b]) await waitShownTypes(p, want)
    await a.waitForTimeout(1500) // nothing goes out late from the other tab
    await waitServerTypes(token, 'hana', want)
    assert.deepEqual([...answered.values()], [1, 1], `answers per idempotency key: ${JSON.stringify([...answered])}`)
    await context.close()
  })

  await step('an empty queue says idle, with no Stop button, also once it has drained', async () => {
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    const token = await signIn(page, 'ivan')
    const badge = page.getByTestId('queue-state')
    await badge.filter({ hasText: 'Idle' }).waitFor({ timeout: WAIT })
    assert.equal(await page.getByTestId('stop').count(), 0, 'an idle queue offers no Stop')
    await addTask(page, 'catch-shrimp', 1, 'Fishing')
    await badge.filter({ hasText: 'Running' }).waitFor({ timeout: WAIT })
    await page.getByTestId('stop').waitFor()
    // Drained (the processor completes the repetition at its due time): idle again.
    await until('the queue to drain', async () => (await serverQueue(token, 'ivan')).tasks.length === 0)
    await badge.filter({ hasText: 'Idle' }).waitFor({ timeout: WAIT })
    assert.equal(await page.getByTestId('stop').count(), 0, 'a drained queue offers no Stop')
    assert.equal(await page.getByTestId('stopped-reason').count(), 0)
    assert.equal((await serverQueue(token, 'ivan')).state, 'idle')
    await context.close()
  })

  await step('timer: time left never exceeds the duration, the bar reaches full and the next starts at 0', async () => {
    const token = await devToken('jade')
    assert.equal((await api('POST', '/api/queue/jade/tasks', token, { type: 'chop-wood', count: 100 })).status, 201)
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'jade')
    await page.getByTestId('repetition').waitFor({ timeout: WAIT })
    // Sample every frame across three rollovers: the repetition shown, the
    // bar's drawn scale and the time left.
    const frames = await page.evaluate(
      () =>
        new Promise((resolve) => {
          const out = []
          const text = (id) => document.querySelector(`[data-testid=${id}]`)?.textContent ?? ''
          const first = text('repetition')
          let changes = 0
          let last = first
          const tick = () => {
            const fill = document.querySelector('[data-testid=bar-fill]')
            const rep = text('repetition')
            if (rep !== last) {
              changes++
              last = rep
            }
            out.push([rep, fill ? new DOMMatrixReadOnly(getComputedStyle(fill).transform).a : -1, text('time-left')])
            if (changes >= 3) resolve(out)
            else requestAnimationFrame(tick)
          }
          requestAnimationFrame(tick)
        }),
    )
    // Whole repetitions only: from the first change to the last.
    const segments = []
    for (const [rep, scale, left] of frames) {
      if (segments.length === 0 || segments.at(-1).rep !== rep) segments.push({ rep, scales: [], lefts: [] })
      segments.at(-1).scales.push(scale)
      segments.at(-1).lefts.push(left)
    }
    for (const seg of segments) {
      for (const left of seg.lefts) {
        const m = /^(\d+):(\d+) left/.exec(left)
        if (m) assert.ok(Number(m[1]) * 60 + Number(m[2]) <= 3, `${seg.rep}: "${left}" for a 3 s repetition`)
      }
    }
    for (const seg of segments.slice(1, -1)) {
      const s = seg.scales
      assert.ok(s[0] <= 0.2, `${seg.rep} starts drawn at ${s[0].toFixed(2)}, not near 0`)
      for (let i = 1; i < s.length; i++) assert.ok(s[i] >= s[i - 1] - 0.001, `${seg.rep}: the bar went back from ${s[i - 1].toFixed(3)} to ${s[i].toFixed(3)}`)
      assert.ok(Math.max(...s) >= 0.95, `${seg.rep} never drawn full (at most ${Math.max(...s).toFixed(2)})`)
    }
    await context.close()
  })

  await step('a bad count says why Add is greyed out', async () => {
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await signIn(page, 'kate')
    await page.getByRole('tab', { name: /^Woodcutting/ }).click()
    const entry = page.locator('[data-testid=catalog-task][data-task-type="chop-wood"]')
    for (const [count, why] of [
      ['0', 'At least 1 repetition.'],
      ['-3', 'At least 1 repetition.'],
      ['1.5', 'Repetitions are whole: no fractions.'],
      ['1001', 'At most 1000 repetitions at once.'],
      ['', 'Enter how many times to repeat it (1 to 1000).'],
    ]) {
      await entry.getByTestId('count').fill(count)
      assert.ok(await entry.getByTestId('add').isDisabled(), `Add is enabled for ${JSON.stringify(count)}`)
      assert.equal(await entry.getByTestId('count-problem').innerText(), why, `the reason for ${JSON.stringify(count)}`)
      assert.equal(await entry.getByTestId('count').getAttribute('aria-invalid'), 'true')
    }
    await entry.getByTestId('count').fill('12')
    assert.equal(await entry.getByTestId('count-problem').count(), 0)
    assert.ok(await entry.getByTestId('add').isEnabled())
    await context.close()
  })

  await step('a rejection banner survives a reload until it is dismissed', async () => {
    const token = await devToken('liam')
    assert.equal((await api('POST', '/api/queue/liam/tasks', token, { type: 'chop-wood', count: 100 })).status, 201)
    const tin = await api('POST', '/api/queue/liam/tasks', token, { type: 'mine-tin', count: 1 })
    assert.equal(tin.status, 201)
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'liam')
    await waitShownTypes(page, ['chop-wood', 'mine-tin'])
    await context.setOffline(true)
    await page.getByTestId('connection').filter({ hasText: 'Offline' }).waitFor({ timeout: WAIT })
    await page.locator('[data-testid=waiting] [data-testid=task][data-task-type="mine-tin"]').getByRole('button', { name: /^Remove/ }).click()
    assert.equal((await api('DELETE', `/api/queue/liam/tasks/${tin.body.taskId}`, token)).status, 200)
    await context.setOffline(false)
    const banner = page.getByTestId('rejection').filter({ hasText: 'That task is no longer in the queue' })
    await banner.waitFor({ timeout: WAIT })
    await page.reload()
    await page.getByTestId('queue').waitFor({ timeout: WAIT })
    await banner.waitFor({ timeout: WAIT })
    await banner.getByRole('button', { name: 'Dismiss' }).click()
    await banner.waitFor({ state: 'detached', timeout: WAIT })
    // At once: the reload may cut IndexedDB's deletion short, and the
    // dismissal (recorded synchronously) must hold all the same.
    await page.reload()
    await waitShownTypes(page, ['chop-wood'])
    await page.waitForTimeout(1000)
    assert.equal(await page.getByTestId('rejection').count(), 0, 'a dismissed rejection came back')
    await context.close()
  })

  await step('toasts never cover a control (phone)', async () => {
    const { context, page } = await newPage(PHONE)
    state.page = page
    await signIn(page, 'mona')
    await addTask(page, 'catch-shrimp', 1, 'Fishing')
    await addTask(page, 'catch-shrimp', 1, 'Fishing')
    await page.locator('.toast').filter({ hasText: 'Finished: Catch shrimp' }).first().waitFor({ timeout: WAIT })
    // Scroll through the whole page while the toast shows: no control that
    // the top bar does not itself scroll over may meet a toast.
    const covered = await page.evaluate(() => {
      const hits = []
      const meets = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom
      const max = document.documentElement.scrollHeight - innerHeight
      for (let y = 0; y <= max + 100; y += 100) {
        scrollTo(0, Math.min(y, max))
        const header = document.querySelector('.topbar').getBoundingClientRect()
        const toasts = [...document.querySelectorAll('.toast')].map((t) => t.getBoundingClientRect())
        for (const c of document.querySelectorAll('button, input, select, a[href], [role=tab]')) {
          if (c.closest('.toasts')) continue
          const r = c.getBoundingClientRect()
          if (r.width === 0 || r.bottom < 0 || r.top > innerHeight) continue
          if (!c.closest('.topbar') && r.top < header.bottom) continue // under the bar itself
          if (toasts.some((t) => meets(t, r))) hits.push(`${c.tagName} "${(c.getAttribute('aria-label') || c.textContent).trim().slice(0, 30)}" at scroll ${Math.min(y, max)}`)
        }
      }
      scrollTo(0, 0)
      return [...new Set(hits)]
    })
    assert.deepEqual(covered, [], 'controls under a toast')
    await context.close()
  })

  await step('the connection pill says "reconnecting" within a second of the server dying', async () => {
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await signIn(page, 'nina')
    const pill = page.getByTestId('connection')
    await pill.filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    await restartServer(async () => {
      await pill.filter({ hasText: 'Reconnecting' }).waitFor({ timeout: 1000 })
    })
    await pill.filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    await context.close()
  })

  await step('offline, the queue keeps advancing as an estimate, and is reconciled when back', async () => {
    const token = await devToken('olga')
    for (const [type, count] of [['catch-shrimp', 2], ['mine-copper', 100]]) {
      assert.equal((await api('POST', '/api/queue/olga/tasks', token, { type, count })).status, 201)
    }
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'olga')
    const repetition = page.locator('[data-testid=head-task] [data-testid=repetition]')
    // Either shrimp repetition (2.5 s each): a page that opened slowly on a busy machine may
    // already be at the second.
    await repetition.filter({ hasText: /Repetition [12] of 2/ }).waitFor({ timeout: WAIT })
    await context.setOffline(true)
    await page.getByTestId('connection').filter({ hasText: 'Offline' }).waitFor({ timeout: WAIT })
    // The shrimp finish (2 × 2.5 s) and copper mining starts, on the page, marked as estimated.
    await page.locator('[data-testid=head-task][data-task-type=mine-copper]').waitFor({ timeout: WAIT })
    await page.getByTestId('estimated').waitFor()
    await repetition.filter({ hasText: /Repetition \d+ of 100/ }).waitFor()
    assert.equal(await page.getByTestId('time-left').filter({ hasText: 'finishing' }).count(), 0)
    await page.getByTestId('inventory').filter({ hasText: 'Raw shrimp' }).waitFor()
    // Back online: the server's view replaces the estimate.
    await context.setOffline(false)
    await page.getByTestId('estimated').waitFor({ state: 'detached', timeout: WAIT })
    const q = await serverQueue(token, 'olga')
    assert.deepEqual(q.tasks.map((t) => t.type), ['mine-copper'])
    await waitShownTypes(page, ['mine-copper'])
    await context.close()
  })

  await step('accessibility: axe-core finds no serious or critical violation on sign-in, queue, offline, admin and phone', async () => {
    const token = await devToken('ally')
    for (const [type, count] of [['chop-wood', 100], ['saw-planks', 2]]) {
      assert.equal((await api('POST', '/api/queue/ally/tasks', token, { type, count })).status, 201)
    }
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await page.goto('/')
    await page.getByLabel('Player name').waitFor()
    await assertAccessible(page, 'the sign-in page')
    await openAs(page, token, 'ally')
    await page.getByTestId('queue-state').filter({ hasText: 'Running' }).waitFor({ timeout: WAIT })
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    await page.getByTestId('history').waitFor({ timeout: WAIT })
    await assertAccessible(page, 'the queue (desktop)')
    await context.setOffline(true)
    await page.getByTestId('connection').filter({ hasText: 'Offline' }).waitFor({ timeout: WAIT })
    await assertAccessible(page, 'the queue offline')
    await context.close()
    const phone = await newPage(PHONE)
    state.page = phone.page
    await openAs(phone.page, token, 'ally')
    await phone.page.getByTestId('queue-state').filter({ hasText: 'Running' }).waitFor({ timeout: WAIT })
    await assertAccessible(phone.page, 'the queue on a phone')
    // Every control a finger uses is at least 44 × 44 px on a phone.
    const small = await phone.page.evaluate(() =>
      [...document.querySelectorAll('button, input, select, a[href], [role=tab]')]
        .filter((el) => el.offsetParent !== null)
        .map((el) => ({ el, r: el.getBoundingClientRect() }))
        .filter(({ r }) => r.width < 44 || r.height < 44)
        .map(({ el, r }) => `${el.tagName.toLowerCase()}${el.className ? '.' + String(el.className).split(' ').join('.') : ''} "${(el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 30)}" ${Math.round(r.width)}×${Math.round(r.height)}`),
    )
    assert.deepEqual(small, [], `controls under 44 px on a phone:\n  ${small.join('\n  ')}`)
    await phone.context.close()
    const admin = await newPage(DESKTOP)
    state.page = admin.page
    await signInAdmin(admin.page)
    await admin.page.locator('[data-testid=projections] tbody tr').first().waitFor({ timeout: WAIT })
    await admin.page.getByTestId('admin-player').fill('ally')
    await admin.page.getByRole('button', { name: 'Show', exact: true }).click()
    await admin.page.getByTestId('event-log').filter({ hasText: 'TaskEnqueued' }).waitFor({ timeout: WAIT })
    await assertAccessible(admin.page, 'the admin view')
    // The event log scrolls: it must be reachable by keyboard.
    assert.equal(await admin.page.getByTestId('event-log').getAttribute('tabindex'), '0')
    await admin.context.close()
  })

  await step('skill tabs: arrow keys move between them, each controls its panel', async () => {
    const token = await devToken('tabby')
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'tabby')
    const tabs = page.getByRole('tab')
    await tabs.first().waitFor({ timeout: WAIT })
    const names = await tabs.allInnerTexts()
    assert.ok(names.length >= 3, `tabs: ${names}`)
    await tabs.first().focus()
    await page.keyboard.press('ArrowRight')
    const focused = () => page.evaluate(() => document.activeElement?.getAttribute('aria-selected') === 'true' && document.activeElement.textContent)
    assert.equal(await focused(), names[1].replace(/\n/g, ''))
    const panel = await tabs.nth(1).getAttribute('aria-controls')
    assert.ok(panel, 'the tab has aria-controls')
    assert.equal(await page.locator(`#${panel}`).getAttribute('role'), 'tabpanel')
    await page.keyboard.press('ArrowLeft')
    await page.keyboard.press('ArrowLeft') // wraps round to the last
    assert.equal(await focused(), names[names.length - 1].replace(/\n/g, ''))
    await page.keyboard.press('Home')
    assert.equal(await focused(), names[0].replace(/\n/g, ''))
    // Only the selected tab is in the tab order.
    assert.deepEqual(await tabs.evaluateAll((els) => els.map((e) => e.tabIndex)), names.map((_, i) => (i === 0 ? 0 : -1)))
    await context.close()
  })

  await step('the progress bar tells a screen reader the repetition and the time left', async () => {
    const token = await devToken('reader')
    assert.equal((await api('POST', '/api/queue/reader/tasks', token, { type: 'chop-wood', count: 100 })).status, 201)
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'reader')
    const bar = page.locator('[data-testid=head-task] [role=progressbar]')
    let text
    await until('aria-valuetext', async () => /^repetition \d+ of 100, \d+ s left$/.test((text = await bar.getAttribute('aria-valuetext', { timeout: 1000 })) ?? '')).catch((err) => {
      throw new Error(`${err.message}; last: ${text}`)
    })
    await context.close()
  })

  await step('the sign-out dialog keeps the focus inside it (Tab and Shift+Tab wrap)', async () => {
    const token = await devToken('trap')
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'trap')
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    await context.setOffline(true)
    await page.getByTestId('connection').filter({ hasText: 'Offline' }).waitFor({ timeout: WAIT })
    await addTask(page, 'chop-wood', 3, 'Woodcutting')
    await page.getByTestId('sign-out').click()
    const dialog = page.getByTestId('signout-dialog')
    await dialog.waitFor()
    await assertAccessible(page, 'the sign-out dialog')
    const inside = () => page.evaluate(() => !!document.activeElement?.closest('[data-testid=signout-dialog]'))
    for (let i = 0; i < 5; i++) {
      await page.keyboard.press('Tab')
      assert.ok(await inside(), `Tab ${i + 1} left the dialog`)
    }
    for (let i = 0; i < 5; i++) {
      await page.keyboard.press('Shift+Tab')
      assert.ok(await inside(), `Shift+Tab ${i + 1} left the dialog`)
    }
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'detached' })
    // The focus goes back to the Sign out button.
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'sign-out')
    await context.close()
  })

  await step('when it will finish: each task and the whole queue show the clock time they end, by the rules', async () => {
    const token = await devToken('clara')
    for (const [type, count] of [['chop-wood', 3], ['mine-copper', 2]]) {
      assert.equal((await api('POST', '/api/queue/clara/tasks', token, { type, count })).status, 201)
    }
    const catalog = (await api('GET', '/api/catalog')).body
    const copper = catalog.tasks.find((t) => t.id === 'mine-copper')
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'clara')
    const headEnds = page.locator('[data-testid=head-task] [data-testid=ends-at]')
    const nextEnds = page.locator('[data-testid=waiting] [data-testid=task][data-task-type=mine-copper] [data-testid=ends-at]')
    await headEnds.waitFor({ timeout: WAIT })
    const q = await serverQueue(token, 'clara')
    const rep = q.repetition
    const head = q.tasks[0]
    // The head ends after its running repetition and those left, at the duration running now.
    const want = Date.parse(rep.dueAt) + (head.count - rep.number) * rep.durationMs
    const near = (got, want, what) => assert.ok(Math.abs(got - want) < 1500, `${what}: ${new Date(got).toISOString()}, want ${new Date(want).toISOString()}`)
    near(Number(await headEnds.getAttribute('data-ends-at')), want, 'the head task ends')
    // Mining copper at level 1 (its level required): its base duration each.
    near(Number(await nextEnds.getAttribute('data-ends-at')), want + 2 * copper.baseDurationMs, 'mining copper ends')
    const all = page.getByTestId('queue-ends')
    assert.equal(await all.getAttribute('data-ends-at'), await nextEnds.getAttribute('data-ends-at'))
    const clock = await page.evaluate((ms) => new Date(Number(ms)).toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' }), await nextEnds.getAttribute('data-ends-at'))
    assert.equal(await all.innerText(), `· all done at ${clock}`)
    assert.match(await headEnds.innerText(), /· ends \d{1,2}:\d{2}/)
    // Live: after the next repetition the times still hold (the rules, not a countdown drift).
    await page.locator('[data-testid=head-task] [data-testid=repetition]').filter({ hasText: `Repetition ${rep.number + 1} of` }).waitFor({ timeout: WAIT })
    near(Number(await headEnds.getAttribute('data-ends-at')), want, 'the head task ends, a repetition later')
    // A stopped queue ends never: no times.
    await page.getByTestId('stop').click()
    await page.getByTestId('confirm-ok').click()
    await page.getByTestId('queue-state').filter({ hasText: 'Stopped' }).waitFor()
    await page.getByTestId('queue-ends').waitFor({ state: 'detached', timeout: WAIT })
    assert.equal(await page.getByTestId('ends-at').count(), 0)
    await context.close()
  })

  await step('while you were away: repetitions, XP, items, finished and failed tasks since the last visit', async () => {
    const token = await devToken('wendy')
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'wendy')
    await page.getByTestId('queue-state').filter({ hasText: 'Idle' }).waitFor({ timeout: WAIT })
    // Nothing happened since the last visit: no summary.
    await page.reload()
    await page.getByTestId('queue').waitFor({ timeout: WAIT })
    await page.waitForTimeout(1500)
    assert.equal(await page.getByTestId('away').count(), 0, 'a summary with nothing to say')
    // The player leaves; the queue runs without them: 2 logs, then planks
    // that need 10 logs fail.
    await page.goto('about:blank')
    for (const [type, count] of [['chop-wood', 2], ['saw-planks', 5]]) {
      assert.equal((await api('POST', '/api/queue/wendy/tasks', token, { type, count })).status, 201)
    }
    await until('the queue to run out', async () => (await serverQueue(token, 'wendy')).tasks.length === 0)
    await until('the history to hold both tasks', async () => (await api('GET', '/api/queue/wendy/history', token)).body.entries.length === 2)
    // Back: the summary.
    await page.goto('/')
    const away = page.getByTestId('away')
    await away.waitFor({ timeout: WAIT })
    // What the server says happened: 2 logs chopped, then one plank sawn from
    // them before the planks ran out of logs.
    const history = (await api('GET', '/api/queue/wendy/history', token)).body.entries
    const reps = history.reduce((n, e) => n + e.repetitionsDone, 0)
    assert.equal(reps, 3)
    const q = await serverQueue(token, 'wendy')
    assert.deepEqual(q.inventory, { planks: 1 })
    assert.equal(await away.getByTestId('away-repetitions').innerText(), '3 repetitions done')
    assert.deepEqual((await away.getByTestId('away-skill').allInnerTexts()).sort(), ['Crafting: +8 XP', 'Woodcutting: +20 XP'])
    assert.equal(await away.getByTestId('away-gained').innerText(), 'Gained: 2 Logs, 1 Planks')
    assert.equal(await away.getByTestId('away-used').innerText(), 'Used: 2 Logs')
    assert.equal(await away.getByTestId('away-finished').innerText(), 'Finished: Chop wood ×2')
    assert.match(await away.getByTestId('away-failed').innerText(), /^Failed: Saw planks/)
    await assertAccessible(page, 'the "while you were away" summary')
    await shot(page, 'away-desktop')
    await away.getByTestId('away-dismiss').click()
    await away.waitFor({ state: 'detached' })
    // Seen: a reload does not show it again.
    await page.reload()
    await page.getByTestId('queue').waitFor({ timeout: WAIT })
    await page.waitForTimeout(1500)
    assert.equal(await page.getByTestId('away').count(), 0, 'the summary came back after a reload')
    await context.close()
  })

  await step("admin: projections with their lag, a player's event log, a rebuild that says when it is done", async () => {
    const token = await devToken('adam')
    assert.equal((await api('POST', '/api/queue/adam/tasks', token, { type: 'chop-wood', count: 100 })).status, 201)
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await signInAdmin(page)
    const rows = page.locator('[data-testid=projections] tbody tr')
    await rows.first().waitFor({ timeout: WAIT })
    await page.getByTestId('admin-player').fill('adam')
    await page.getByRole('button', { name: 'Show', exact: true }).click()
    await page.getByTestId('event-log').filter({ hasText: 'TaskEnqueued' }).waitFor({ timeout: WAIT })
    // A player may not use the admin routes.
    assert.equal((await api('GET', '/api/admin/projections', token)).status, 403)
    await page.getByTestId('admin').scrollIntoViewIfNeeded()
    await shot(page, 'admin-desktop')
    const name = await rows.first().getAttribute('data-projection')
    const before = (await api('GET', '/api/admin/projections', await adminToken())).body.projections.find((p) => p.name === name).generation
    // While it runs the row shows its progress (events done of total, ETA:
    // the words are unit-tested in adminFormat.test.ts; a rebuild of this
    // small log may end before a poll sees it); then the view says it is done.
    await rows.first().getByRole('button', { name: /^Rebuild/ }).click()
    await page.getByTestId('admin-message').filter({ hasText: new RegExp(`Rebuild of ${name} done: generation \\S+ is live`) }).waitFor({ timeout: 60000 })
    const after = (await api('GET', '/api/admin/projections', await adminToken())).body.projections.find((p) => p.name === name)
    assert.notEqual(after.generation, before, 'the rebuild switched to a new generation')
    assert.equal(await page.getByTestId('rebuild-progress').count(), 0)
    await context.close()
  })

  await step('admin: the event log of a player pages newest first through all 3,000 of its events', async () => {
    const token = await devToken('longlog')
    // Each stop and each start of a queue is one event.
    for (let i = 0; i < 1500; i++) {
      assert.equal((await api('POST', '/api/queue/longlog/stop', token)).status, 200)
      assert.equal((await api('POST', '/api/queue/longlog/start', token)).status, 200)
    }
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await signInAdmin(page)
    await page.getByTestId('admin-player').fill('longlog')
    await page.getByRole('button', { name: 'Show', exact: true }).click()
    const count = page.getByTestId('event-count')
    await count.filter({ hasText: /of 3,0\d\d events/ }).waitFor({ timeout: WAIT })
    const total = Number((await count.innerText()).match(/of ([\d,]+) events/)[1].replace(/,/g, ''))
    const lines = page.locator('[data-testid=event-log] li')
    assert.equal(Number(await lines.first().getAttribute('data-version')), total, 'the newest event comes first')
    const more = page.getByTestId('event-log-more')
    for (let clicks = 0; await more.count(); clicks++) {
      assert.ok(clicks < 10, 'Show older ends')
      await more.click()
    }
    assert.equal(await lines.count(), total)
    assert.equal(Number(await lines.last().getAttribute('data-version')), 1, 'the oldest event is reached')
    const versions = await lines.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-version'))))
    assert.ok(versions.every((v, i) => i === 0 || v === versions[i - 1] - 1), 'every event once, newest first')
    // The log scrolls by keyboard: it takes the focus.
    await page.getByTestId('event-log').focus()
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'event-log')
    await context.close()
  })

  await step('admin: the dead letters are listed and one is retried', async () => {
    // A dead letter as the processor stores it (processor/deadletters.go):
    // a CompleteRepetition of a task that does not exist.
    const id = `e2e-dead-${Date.now()}`
    const payload = JSON.stringify({ PlayerID: 'ghost', IdempotencyKey: `complete-${id}`, TaskID: '00000000-0000-4000-8000-000000000001', Number: 1 })
    const sql = `INSERT INTO processor_dead_letters (id, topic, command_name, payload, metadata, error, correlation_id, failed_at)
      VALUES ('${id}', 'taskqueue.commands.CompleteRepetition.p0', 'CompleteRepetition', '${payload}', '{}', 'e2e: refused', '${id}', '${new Date().toISOString()}')`
    execFileSync('sqlite3', ['-cmd', '.timeout 10000', join(tmp, 'data', 'taskqueue.db'), sql])
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await signInAdmin(page)
    const row = page.locator(`[data-testid=deadletters] tr[data-deadletter="${id}"]`)
    await row.filter({ hasText: 'e2e: refused' }).waitFor({ timeout: WAIT })
    await assertAccessible(page, 'the admin view with a dead letter')
    await row.getByRole('button', { name: /^Retry/ }).click()
    await page.getByTestId('deadletter-message').filter({ hasText: `CompleteRepetition ${id} re-sent` }).waitFor({ timeout: WAIT })
    // Retried: it leaves the list of those waiting, and shows with "include retried".
    await row.waitFor({ state: 'detached', timeout: WAIT })
    await page.getByTestId('deadletters-all').check()
    await row.filter({ hasText: 'retried' }).waitFor({ timeout: WAIT })
    const listed = (await api('GET', '/api/admin/deadletters?all=true', await adminToken())).body.deadLetters.find((d) => d.id === id)
    assert.equal(listed.retries, 1)
    assert.ok(listed.retriedAt)
    await context.close()
  })

  await step("admin: time travel shows a player's queue at a moment", async () => {
    const token = await devToken('tina')
    assert.equal((await api('POST', '/api/queue/tina/stop', token)).status, 200)
    assert.equal((await api('POST', '/api/queue/tina/tasks', token, { type: 'chop-wood', count: 5 })).status, 201)
    await new Promise((r) => setTimeout(r, 1100))
    const moment = new Date().toISOString()
    await new Promise((r) => setTimeout(r, 1100))
    assert.equal((await api('POST', '/api/queue/tina/tasks', token, { type: 'mine-copper', count: 3 })).status, 201)
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await signInAdmin(page)
    await page.getByTestId('travel-player').fill('tina')
    await page.getByTestId('travel-at').fill(moment)
    await page.getByRole('button', { name: 'Show queue' }).click()
    const result = page.getByTestId('travel-result')
    // (the server echoes the moment as Go prints it: 16:29:37.92Z for .920Z)
    await result.filter({ hasText: `tina at ${moment.slice(0, 19)}` }).waitFor({ timeout: WAIT })
    const types = () => result.locator('li').evaluateAll((els) => els.map((e) => e.getAttribute('data-task-type')))
    assert.deepEqual(await types(), ['chop-wood'])
    await page.getByTestId('travel-at').fill('')
    await page.getByRole('button', { name: 'Show queue' }).click()
    await result.filter({ hasText: 'at now' }).waitFor({ timeout: WAIT })
    assert.deepEqual(await types(), ['chop-wood', 'mine-copper'])
    await page.getByTestId('travel-at').fill('yesterday-ish')
    await page.getByRole('button', { name: 'Show queue' }).click()
    await page.getByTestId('travel-error').filter({ hasText: /at/ }).waitFor({ timeout: WAIT })
    await context.close()
  })

  await step('admin on a phone: cards instead of a wide table, no sideways scrolling, no axe violation', async () => {
    const { context, page } = await newPage(PHONE)
    state.page = page
    await signInAdmin(page)
    const rows = page.locator('[data-testid=projections] tbody tr')
    await rows.first().waitFor({ timeout: WAIT })
    await page.getByTestId('admin').scrollIntoViewIfNeeded()
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`)
    for (const box of await rows.evaluateAll((els) => els.map((tr) => tr.querySelector('button').getBoundingClientRect().toJSON()))) {
      assert.ok(box.x >= 0 && box.x + box.width <= 390, `a Rebuild button is off screen: ${JSON.stringify(box)}`)
      assert.ok(box.height >= 44 && box.width >= 44, `a Rebuild button is under 44 px: ${JSON.stringify(box)}`)
    }
    await assertAccessible(page, 'the admin view on a phone')
    await page.getByTestId('admin').screenshot({ path: join(shots, 'admin-phone.png') })
    await context.close()
  })
  await step('what you own next to what a task needs: "have N", and a warning before queueing a chain the queue cannot feed', async () => {
    const token = await devToken('fern')
    // A stopped queue holding 6 logs to come: saw planks ×5 needs 10.
    assert.equal((await api('POST', '/api/queue/fern/stop', token)).status, 200)
    assert.equal((await api('POST', '/api/queue/fern/tasks', token, { type: 'chop-wood', count: 6 })).status, 201)
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'fern')
    await page.getByTestId('queue-state').filter({ hasText: 'Stopped' }).waitFor({ timeout: WAIT })
    await page.getByRole('tab', { name: /^Crafting/ }).click()
    const planks = page.locator('[data-testid=catalog-task][data-task-type="saw-planks"]')
    const have = planks.locator('[data-testid=input][data-item=logs] [data-testid=have]')
    await have.filter({ hasText: '(have 0)' }).waitFor({ timeout: WAIT })
    await planks.getByTestId('count').fill('5')
    const warning = planks.getByTestId('feed-warning')
    await warning.filter({ hasText: 'Saw planks ×5 needs 10 Logs: you have 0 and the queue makes 6 before it. Only 3 of 5 can run.' }).waitFor({ timeout: WAIT })
    // The Add button points a screen reader at the warning; it still adds.
    assert.equal(await planks.getByTestId('add').getAttribute('aria-describedby'), await warning.getAttribute('id'))
    assert.equal(await planks.getByTestId('add').isEnabled(), true)
    await assertAccessible(page, 'the catalog with a feed warning')
    // Three are fed: no warning.
    await planks.getByTestId('count').fill('3')
    await warning.waitFor({ state: 'detached', timeout: WAIT })
    // A build-crate needs planks: none owned, none to come.
    const crate = page.locator('[data-testid=catalog-task][data-task-type="build-crate"]')
    assert.equal(await crate.locator('[data-testid=input][data-item=planks] [data-testid=have]').innerText(), '(have 0)')
    // Queue the 3 planks; the queue now makes 6 logs and uses 6 of them: the next planks cannot be fed.
    await planks.getByTestId('add').click()
    await waitServerTypes(token, 'fern', ['chop-wood', 'saw-planks'])
    await planks.getByTestId('count').fill('1')
    await warning.filter({ hasText: 'Saw planks ×1 needs 2 Logs: you have 0. It would fail at once.' }).waitFor({ timeout: WAIT })
    // Run the queue: "have" follows what the player owns, as the server says.
    assert.equal((await api('POST', '/api/queue/fern/start', token)).status, 200)
    await until('logs owned to show', async () => Number(await have.getAttribute('data-have')) >= 1)
    await until('"have" to match the server', async () => {
      const logs = (await serverQueue(token, 'fern')).inventory.logs ?? 0
      return Number(await have.getAttribute('data-have')) === logs && (await have.innerText()) === `(have ${logs})`
    })
    await context.close()
  })

  await step('rates: XP per hour and items per hour of the running task', async () => {
    const token = await devToken('rita')
    assert.equal((await api('POST', '/api/queue/rita/tasks', token, { type: 'chop-wood', count: 100 })).status, 201)
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'rita')
    const rates = page.locator('[data-testid=head-task] [data-testid=rates]')
    await rates.waitFor({ timeout: WAIT })
    const q = await serverQueue(token, 'rita')
    const catalog = (await api('GET', '/api/catalog')).body
    const chop = catalog.tasks.find((t) => t.id === 'chop-wood')
    // From the running repetition's duration at the player's level: 10 XP and 1 log every 3 s.
    const perHour = 3600000 / q.repetition.durationMs
    assert.equal(Number(await rates.getAttribute('data-xp-per-hour')), chop.xp * perHour)
    assert.equal(Number(await rates.getByTestId('rate-item').getAttribute('data-per-hour')), chop.outputs.logs * perHour)
    assert.equal(q.repetition.durationMs, 3000)
    assert.equal(await rates.innerText(), '12,000 Woodcutting XP/h · 1,200 Logs/h')
    await context.close()
  })

  await step('Stop and removing the running task ask first; the dialog works by keyboard and undoes nothing when cancelled', async () => {
    const token = await devToken('cora')
    for (const [type, count] of [['chop-wood', 100], ['mine-copper', 5]]) {
      assert.equal((await api('POST', '/api/queue/cora/tasks', token, { type, count })).status, 201)
    }
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await openAs(page, token, 'cora')
    await page.getByTestId('queue-state').filter({ hasText: 'Running' }).waitFor({ timeout: WAIT })
    const dialog = page.getByTestId('confirm-dialog')
    const focused = () => page.evaluate(() => document.activeElement?.textContent?.trim())
    // Keyboard: Enter on Stop opens the question, the focus on the safe choice.
    await page.getByTestId('stop').focus()
    await page.keyboard.press('Enter')
    await dialog.waitFor()
    assert.equal(await dialog.getAttribute('role'), 'alertdialog')
    assert.match(await dialog.innerText(), /Stop the queue\?[\s\S]*Chop wood running now is cancelled/)
    assert.equal(await focused(), 'Keep running')
    await assertAccessible(page, 'the Stop confirmation')
    // Escape: nothing happens, the focus goes back to Stop.
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'detached' })
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'stop')
    await page.waitForTimeout(500)
    assert.equal((await serverQueue(token, 'cora')).running, true, 'cancelled: still running')
    // Tab wraps inside the dialog; Enter on "Stop the queue" stops it.
    await page.keyboard.press('Enter')
    await dialog.waitFor()
    await page.keyboard.press('Tab')
    assert.equal(await focused(), 'Stop the queue')
    await page.keyboard.press('Tab')
    assert.equal(await focused(), 'Keep running', 'Tab wraps round')
    await page.keyboard.press('Shift+Tab')
    await page.keyboard.press('Enter')
    await page.getByTestId('queue-state').filter({ hasText: 'Stopped' }).waitFor({ timeout: WAIT })
    await until('the server to stop the queue', async () => !(await serverQueue(token, 'cora')).running)
    await page.getByTestId('start').click()
    await page.getByTestId('head-task').waitFor({ timeout: WAIT })
    // Removing the running task asks too; "Keep it" keeps it.
    const remove = page.getByTestId('remove-running')
    await remove.click()
    await dialog.filter({ hasText: 'Remove Chop wood?' }).waitFor()
    await dialog.getByRole('button', { name: 'Keep it' }).click()
    await dialog.waitFor({ state: 'detached' })
    await page.waitForTimeout(500)
    assert.deepEqual((await serverQueue(token, 'cora')).tasks.map((t) => t.type), ['chop-wood', 'mine-copper'])
    await remove.click()
    await dialog.getByRole('button', { name: 'Remove Chop wood' }).click()
    await waitServerTypes(token, 'cora', ['mine-copper'])
    await waitShownTypes(page, ['mine-copper'])
    // A waiting task is removed at once: nothing running is lost.
    assert.equal((await api('POST', '/api/queue/cora/tasks', token, { type: 'mine-tin', count: 5 })).status, 201)
    await page.locator('[data-testid=waiting] [data-testid=task][data-task-type="mine-tin"]').getByRole('button', { name: /^Remove/ }).click()
    await waitServerTypes(token, 'cora', ['mine-copper'])
    assert.equal(await dialog.count(), 0)
    await context.close()
  })

  await step('notifications: permission is asked after the first add, never on load', async () => {
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    // A fresh profile: the decision is still open; record the requests.
    await context.addInitScript(() => {
      window.__asked = 0
      Object.defineProperty(Notification, 'permission', { configurable: true, get: () => 'default' })
      Notification.requestPermission = () => {
        window.__asked++
        return Promise.resolve('default')
      }
    })
    await signIn(page, 'nico')
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    await page.reload()
    await page.getByTestId('queue').waitFor({ timeout: WAIT })
    assert.equal(await page.evaluate(() => window.__asked), 0, 'not asked on load')
    await addTask(page, 'chop-wood', 5, 'Woodcutting')
    await until('permission to be asked', async () => (await page.evaluate(() => window.__asked)) === 1)
    await addTask(page, 'mine-copper', 5, 'Mining')
    await waitShownTypes(page, ['chop-wood', 'mine-copper'])
    await page.reload()
    await page.getByTestId('queue').waitFor({ timeout: WAIT })
    // (the recorder starts again at 0 on a reload: the app remembers it asked)
    await addTask(page, 'mine-tin', 1, 'Mining')
    await waitShownTypes(page, ['chop-wood', 'mine-copper', 'mine-tin'])
    assert.equal(await page.evaluate(() => window.__asked), 0, 'asked once per profile, not again after a reload')
    await context.close()
  })

  await step('notifications: in the background, the queue emptying and a failed task notify (not while the tab is visible)', async () => {
    const token = await devToken('nell')
    const context = await browser.newContext({ viewport: DESKTOP, baseURL: base, deviceScaleFactor: 1, permissions: ['notifications'] })
    // Record each notification the app makes; it still uses the real API.
    await context.addInitScript(() => {
      window.__notes = []
      const Real = window.Notification
      window.Notification = class extends Real {
        constructor(title, options) {
          super(title, options)
          window.__notes.push({ title, body: options?.body ?? '' })
        }
      }
    })
    const page = await context.newPage()
    state.page = page
    await openAs(page, token, 'nell')
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    assert.equal(await page.evaluate(() => Notification.permission), 'granted')
    const notes = () => page.evaluate(() => window.__notes)
    // Visible: the queue empties without a notification.
    assert.equal((await api('POST', '/api/queue/nell/tasks', token, { type: 'catch-shrimp', count: 1 })).status, 201)
    await page.getByTestId('head-task').waitFor({ timeout: WAIT })
    await page.getByTestId('queue-state').filter({ hasText: 'Idle' }).waitFor({ timeout: WAIT })
    assert.deepEqual(await notes(), [])
    // Hidden (another tab in front).
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' })
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true })
      document.dispatchEvent(new Event('visibilitychange'))
    })
    assert.equal((await api('POST', '/api/queue/nell/tasks', token, { type: 'catch-shrimp', count: 1 })).status, 201)
    await until('a notification that the queue is empty', async () => (await notes()).some((n) => n.title === 'Your queue is empty'))
    // Saw planks without logs: it fails when it starts.
    assert.equal((await api('POST', '/api/queue/nell/tasks', token, { type: 'saw-planks', count: 3 })).status, 201)
    await until('a notification that the task failed', async () => (await notes()).some((n) => n.title === 'Task failed: Saw planks'))
    const failed = (await notes()).find((n) => n.title === 'Task failed: Saw planks')
    assert.match(failed.body, /after 0 of 3\.$/)
    assert.equal((await notes()).filter((n) => n.title === 'Your queue is empty').length, 1, 'one notice per emptying')
    await context.close()
  })

  await step('the "Finished" toast says what the task granted', async () => {
    const { context, page } = await newPage(DESKTOP)
    state.page = page
    await signIn(page, 'tobi')
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
    await addTask(page, 'catch-shrimp', 2, 'Fishing')
    const toast = page.locator('.toast').filter({ hasText: 'Finished: Catch shrimp ×2' })
    await toast.first().waitFor({ timeout: WAIT })
    assert.equal(await toast.first().getAttribute('title'), 'Finished: Catch shrimp ×2 · +2 Raw shrimp, +16 Fishing XP')
    const q = await serverQueue(await devToken('tobi'), 'tobi')
    assert.equal(q.inventory['raw-shrimp'], 2)
    assert.equal(q.skills.fishing.xp, 16)
    await context.close()
  })

  await step('phone: the queue is compact and collapsible, so the catalog is near the top', async () => {
    const token = await devToken('pia')
    const types = ['chop-wood', 'mine-copper', 'mine-tin', 'catch-shrimp', 'chop-wood', 'mine-copper', 'mine-tin', 'catch-shrimp', 'chop-wood', 'mine-copper']
    for (const [i, type] of types.entries()) {
      assert.equal((await api('POST', '/api/queue/pia/tasks', token, { type, count: i === 0 ? 500 : 5 })).status, 201)
    }
    const { context, page } = await newPage(PHONE)
    state.page = page
    await openAs(page, token, 'pia')
    await page.getByTestId('head-task').waitFor({ timeout: WAIT })
    const toggle = page.getByTestId('queue-toggle')
    await toggle.filter({ hasText: 'Show 8 more tasks' }).waitFor({ timeout: WAIT })
    assert.equal(await toggle.getAttribute('aria-expanded'), 'false')
    const rows = page.locator('[data-testid=waiting] [data-testid=task]')
    const visibleRows = () => rows.evaluateAll((els) => els.filter((el) => el.offsetParent !== null).length)
    assert.equal(await rows.count(), 9)
    assert.equal(await visibleRows(), 1, 'collapsed: the head and the next task')
    const area = page.getByTestId('queue-area')
    const collapsed = (await area.boundingBox()).height
    const catalogTop = await page.getByTestId('catalog').evaluate((el) => el.getBoundingClientRect().top + scrollY)
    assert.ok(collapsed < 520, `the collapsed queue is ${collapsed} px high`)
    assert.ok(catalogTop < 844, `the catalog starts ${catalogTop} px down, below the first screen`)
    const box = await toggle.boundingBox()
    assert.ok(box.height >= 44 && box.width >= 44, `the toggle is ${box.width}×${box.height}`)
    await assertAccessible(page, 'the compact queue on a phone')
    await shot(page, 'queue-phone-compact')
    // Expand (keyboard): every task shows.
    await toggle.focus()
    await page.keyboard.press('Enter')
    assert.equal(await toggle.getAttribute('aria-expanded'), 'true')
    await toggle.filter({ hasText: 'Show less of the queue' }).waitFor()
    assert.equal(await visibleRows(), 9)
    const expanded = (await area.boundingBox()).height
    assert.ok(expanded > collapsed + 300, `expanded ${expanded} px, collapsed ${collapsed} px`)
    await assertAccessible(page, 'the expanded queue on a phone')
    await toggle.click()
    assert.equal(await visibleRows(), 1)
    // The keyboard entering the waiting list (Shift+Tab from the toggle) opens it, to move tasks by keyboard.
    await toggle.focus()
    await page.keyboard.press('Shift+Tab')
    assert.equal(await page.evaluate(() => !!document.activeElement?.closest('[data-testid=waiting]')), true)
    await until('the list to open', async () => (await visibleRows()) === 9)
    assert.equal(await toggle.getAttribute('aria-expanded'), 'true')
    await context.close()
    // On a desktop the whole queue shows, with no toggle.
    const desk = await newPage(DESKTOP)
    state.page = desk.page
    await openAs(desk.page, token, 'pia')
    await desk.page.getByTestId('head-task').waitFor({ timeout: WAIT })
    await until('nine waiting rows', async () => (await desk.page.locator('[data-testid=waiting] [data-testid=task]').count()) === 9)
    assert.equal(await desk.page.getByTestId('queue-toggle').count(), 0)
    assert.equal(await desk.page.locator('[data-testid=waiting] [data-testid=task]').evaluateAll((els) => els.filter((el) => el.offsetParent !== null).length), 9)
    await desk.context.close()
  })
} catch (err) {
  results.push(false)
  console.log(`not ok ${results.length} - setup\n  ${String(err.stack || err)}`)
} finally {
  await browser?.close().catch(() => {})
  server.kill('SIGTERM')
  await new Promise((r) => (serverExited ? r() : server.once('exit', r)))
  const failed = results.filter((r) => !r).length
  if (failed) {
    writeFileSync(join(tmp, 'server.log'), serverLog.join(''))
    console.log(`# server log and failure screenshots kept in ${tmp}`)
  } else {
    rmSync(tmp, { recursive: true, force: true })
  }
  console.log(`${results.length - failed} passed, ${failed} failed`)
  process.exit(failed ? 1 : 0)
}
