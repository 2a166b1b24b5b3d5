// Builds the web app into ../dist (embedded by package web) with hashed asset
// names under /assets, and writes the service worker with the exact list of
// files that make up the app shell. The build must be deterministic: .ci/web
// rebuilds from a clean `npm ci` and fails when web/dist differs from git.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { defineConfig, type Plugin } from 'vite'

// Files in public/ that belong to the shell (copied as they are, not hashed).
const publicShell = ['/manifest.webmanifest', '/icon.svg', '/icon-192.png', '/icon-512.png']

function serviceWorker(): Plugin {
  return {
    name: 'taskqueue-service-worker',
    apply: 'build',
    generateBundle(_options, bundle) {
      const built = Object.keys(bundle)
        .filter((name) => name !== 'index.html' && !name.endsWith('.map'))
        .sort()
        .map((name) => '/' + name)
      const shell = ['/', ...built, ...publicShell]
      const template = readFileSync(new URL('./sw/sw.js', import.meta.url), 'utf8')
      const version = createHash('sha256').update(template).update(shell.join('\n')).digest('hex').slice(0, 12)
      const source = template
        .replace('__VERSION__', 'taskqueue-' + version)
        .replace('__SHELL__', JSON.stringify(shell))
      this.emitFile({ type: 'asset', fileName: 'sw.js', source })
    },
  }
}

export default defineConfig({
  plugins: [serviceWorker()],
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
  },
  server: {
    proxy: { '/api': { target: 'http://127.0.0.1:8080', ws: true } },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
})
