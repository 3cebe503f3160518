// The app shell, cached so that /m opens without a network; the API is never cached here (the page
// keeps its own copy of what it showed, and queues what it sends).
const SHELL = "m-shell-v2";
const FILES = ["/m", "/static/m/app.js", "/static/m/app.css", "/m/manifest.webmanifest", "/static/m/icon-192.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});
self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || !FILES.includes(url.pathname)) return;
  // network first, the cached shell when offline
  event.respondWith(fetch(event.request).then((response) => {
    const copy = response.clone();
    caches.open(SHELL).then((cache) => cache.put(event.request, copy));
    return response;
  }).catch(() => caches.match(event.request)));
});
