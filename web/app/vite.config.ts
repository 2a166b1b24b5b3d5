// Builds the web app into ../dist (embedded by package web) with hashed asset
// names under /assets, writes the service worker with the exact list of
// files that make up the app shell, and beside each text file its gzip (.gz)
// and brotli (.br) forms, which package web serves by Accept-Encoding. The
// build must be deterministic: .ci/web rebuilds from a clean `npm ci` and
// fails when web/dist differs from git.
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'
import { defineConfig, type Plugin } from 'vite'

// Files in public/ that belong to the shell (copied as they are, not hashed).
const publicShell = ['/manifest.webmanifest', '/icon.svg', '/icon-192.png', '/icon-512.png', '/icon-maskable-512.png']

// Files worth compressing (PNGs are compressed already), and the size below
// which the headers would eat the gain.
const compressible = /\.(js|css|html|svg|webmanifest|json)$/
const minCompressBytes = 512

/** Writes name.gz and name.br beside every compressible file of dir, when smaller. */
function precompress(): Plugin {
  let outDir = ''
  return {
    name: 'taskqueue-precompress',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir.startsWith('/') ? config.build.outDir : join(config.root, config.build.outDir)
    },
    closeBundle() {
      const walk = (dir: string): string[] =>
        readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)]))
      for (const file of walk(outDir).filter((f) => compressible.test(f)).sort()) {
        const raw = readFileSync(file)
        if (raw.length < minCompressBytes) continue
        // gzip's header carries no name or time here (zlib writes mtime 0), so the output is the same on every build.
        const gz = gzipSync(raw, { level: 9 })
        const br = brotliCompressSync(raw, {
          params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length, [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT },
        })
        if (gz.length < raw.length) writeFileSync(file + '.gz', gz)
        if (br.length < raw.length) writeFileSync(file + '.br', br)
      }
    },
  }
}

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
  plugins: [serviceWorker(), precompress()],
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
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx'],
    environment: 'node',
  },
})
