// Browser test of sign-in with an OpenID provider: a real provider
// (internal/oidcprovider: zitadel/oidc's op package and its login page) and
// the real taskqueue binary outside dev mode, driven in headless Chromium
// (Debian's /usr/bin/chromium). The player clicks "Sign in", signs in on the
// provider's own page, comes back signed in with the provider's token
// (authorization code + PKCE), queues a task, and signs out.
//
//   node e2e/oidc.mjs           build both binaries, run the steps
//   CHROMIUM=path               another Chromium executable
//
// Each step prints "ok" or "not ok"; the last line is "N passed, N failed".
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { WAIT, freePort, until } from './lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '../../..')
const tmp = mkdtempSync(join(tmpdir(), 'taskqueue-e2e-oidc-'))
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'

console.log('# building ./cmd/taskqueue and the test provider')
const binary = join(tmp, 'taskqueue')
const providerBinary = join(tmp, 'oidcprovider')
execFileSync('go', ['build', '-o', binary, './cmd/taskqueue'], { cwd: repo, stdio: 'inherit' })
execFileSync('go', ['build', '-o', providerBinary, './internal/oidcprovider/cmd/oidcprovider'], { cwd: repo, stdio: 'inherit' })

const port = await freePort()
const base = `http://127.0.0.1:${port}`
const logs = []
const children = []
function start(cmd, args, env) {
  const child = spawn(cmd, args, { cwd: tmp, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.on('data', (d) => logs.push(String(d)))
  child.stderr.on('data', (d) => logs.push(String(d)))
  children.push(child)
  return child
}

// root's role is the provider's own name for it, which the server maps to admin.
const provider = start(providerBinary, ['-redirect', `${base}/`, '-user', 'alice:alice-pw:player', '-user', 'root:root-pw:game-admins'], {})
const issuer = await until('the provider to print its issuer', async () => logs.join('').match(/issuer (\S+)/)?.[1])
start(binary, [], {
  TASKQUEUE_ADDR: `127.0.0.1:${port}`,
  TASKQUEUE_DATA_DIR: join(tmp, 'data'),
  TASKQUEUE_DEV: 'false',
  TASKQUEUE_JWT_SECRET: 'e2e-oidc-secret-0123456789abcdef0123456789',
  TASKQUEUE_OIDC_ISSUER: issuer,
  TASKQUEUE_OIDC_CLIENT_ID: 'taskqueue',
  TASKQUEUE_OIDC_ROLE_MAP: 'game-admins:admin',
})

const results = []
let browser
let page
async function step(name, fn) {
  const t0 = Date.now()
  try {
    await fn()
    results.push(true)
    console.log(`ok ${results.length} - ${name} (${Date.now() - t0} ms)`)
  } catch (err) {
    results.push(false)
    console.log(`not ok ${results.length} - ${name}\n  ${String(err.stack || err).split('\n').join('\n  ')}`)
  }
}

try {
  await until('the server to answer /healthz', async () => (await fetch(`${base}/healthz`)).ok, 60000)
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  })
  const context = await browser.newContext({ baseURL: base })
  page = await context.newPage()

  await step('outside dev mode the app offers only the provider', async () => {
    await page.goto('/')
    await page.getByTestId('oidc-sign-in').waitFor({ timeout: WAIT })
    assert.equal(await page.getByLabel('Player name').count(), 0)
    const devToken = await fetch(`${base}/api/auth/dev-token`, { method: 'POST', body: '{"player":"mallory"}' })
    assert.equal(devToken.status, 404)
  })

  await step("sign in on the provider's login page and come back signed in", async () => {
    await page.getByTestId('oidc-sign-in').click()
    await page.waitForURL((u) => u.toString().startsWith(issuer), { timeout: WAIT })
    await page.locator('#username').fill('alice')
    await page.locator('#password').fill('alice-pw')
    await page.getByRole('button', { name: 'Login' }).click()
    await page.waitForURL((u) => u.toString().startsWith(base), { timeout: WAIT })
    await page.getByTestId('player-name').filter({ hasText: 'alice' }).waitFor({ timeout: WAIT })
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: WAIT })
  })

  await step("the provider's token acts on alice's queue", async () => {
    await page.getByRole('tab', { name: /^Woodcutting/ }).click()
    const chop = page.locator('[data-testid=catalog-task][data-task-type="chop-wood"]')
    await chop.getByTestId('count').fill('5')
    await chop.getByTestId('add').click()
    await page.getByTestId('queue-state').filter({ hasText: 'Running' }).waitFor({ timeout: WAIT })
    const token = await page.evaluate(() => {
      for (let i = 0; i < localStorage.length; i++) {
        const v = localStorage.getItem(localStorage.key(i)) || ''
        const m = v.match(/"token":"([^"]+)"/)
        if (m) return m[1]
      }
      return null
    })
    assert.ok(token, 'the session token is kept')
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString())
    assert.equal(claims.iss, issuer, "the app calls the API with the provider's token")
    // The page shows the task at once (it projects the queue); the server's
    // read model has it a moment later, and the outbox empties.
    await until('the server to show the task', async () => {
      const res = await fetch(`${base}/api/queue/alice`, { headers: { Authorization: `Bearer ${token}` } })
      assert.equal(res.status, 200)
      return (await res.json()).tasks.length === 1
    })
    await page.getByTestId('outbox-pending').waitFor({ state: 'detached', timeout: WAIT })
    const other = await fetch(`${base}/api/queue/bob`, { headers: { Authorization: `Bearer ${token}` } })
    assert.equal(other.status, 403)
  })

  await step('sign out ends the session at the provider and returns to sign-in', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL((u) => u.toString().startsWith(base), { timeout: WAIT })
    await page.getByTestId('oidc-sign-in').waitFor({ timeout: WAIT })
  })

  await step("a role in the provider's own names reaches the app through the server's role map", async () => {
    await page.getByTestId('oidc-sign-in').click()
    await page.waitForURL((u) => u.toString().startsWith(issuer), { timeout: WAIT })
    await page.locator('#username').fill('root')
    await page.locator('#password').fill('root-pw')
    await page.getByRole('button', { name: 'Login' }).click()
    await page.waitForURL((u) => u.toString().startsWith(base), { timeout: WAIT })
    await page.getByTestId('player-name').filter({ hasText: 'root' }).waitFor({ timeout: WAIT })
    // The token says role "game-admins"; the app shows what the server made of it.
    await page.getByTestId('admin').waitFor({ timeout: WAIT })
  })
} finally {
  await browser?.close().catch(() => {})
  for (const c of children) c.kill('SIGTERM')
  const failed = results.filter((ok) => !ok).length
  if (failed) console.log(`# logs:\n${logs.join('').split('\n').slice(-40).join('\n')}`)
  rmSync(tmp, { recursive: true, force: true })
  console.log(`${results.length - failed} passed, ${failed} failed`)
  process.exit(failed ? 1 : 0)
}
