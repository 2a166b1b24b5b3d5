// The service worker: keeps the app shell (HTML, scripts, styles, icons) in a
// cache named after the build, so the app opens offline. API calls never go
// through the cache: the app's outbox handles offline commands itself.
const VERSION = 'taskqueue-1c34ac6db41e'
const SHELL = ["/","/assets/AdminPanel-BO7qENDQ.js","/assets/Player-CR1qmWtq.js","/assets/index-DJ0MgU9u.js","/assets/index-DriYPPqu.css","/assets/oidc-B33xC5fF.js","/manifest.webmanifest","/icon.svg","/icon-192.png","/icon-512.png","/icon-maskable-512.png"]

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()),
  )
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== VERSION).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  )
})

self.addEventListener('fetch', (event) => {
  const request = event.request
  if (request.method !== 'GET') return
  const url = new URL(request.url)
  if (url.origin !== self.location.origin) return
  if (url.pathname.startsWith('/api/') || url.pathname === '/healthz' || url.pathname === '/readyz' || url.pathname === '/metrics') return

  if (request.mode === 'navigate') {
    // Network first so a new build shows up at once; the cached shell offline.
    event.respondWith(
      fetch(request).catch(() => caches.match('/', { cacheName: VERSION }).then((hit) => hit || Response.error())),
    )
    return
  }
  // Hashed assets and icons never change under one name: cache first.
  event.respondWith(
    caches.match(request, { cacheName: VERSION }).then((hit) => hit || fetch(request)),
  )
})
