// The service worker (scope "/", allowed by the gateway's Service-Worker-Allowed header):
// - keeps the app shell (the chat page, its CSS, every ES module of its import map, the
//   locales, icons and manifest) so the app opens offline;
// - keeps the answers of the last chats viewed (the chat list, my profile, each chat and
//   its history pages as they were read) and answers from them when the network is out of reach;
// - shows Web Push notifications (sent by this server, encrypted for this browser) and
//   opens the chat at the message when one is clicked.
// Hashed static URLs never change: they are served from the cache first. The page and the
// API go to the network first, so online the app always sees fresh data.

const SHELL = 'parley-shell-v1';
const DATA = 'parley-data-v1';
const KEPT_CHATS = 10; // histories kept for offline reading (the most recently viewed)
const KEPT_PAGES = 10; // pages of each of them: the newest, older ones, windows around a hit
const EXTRA = [
  '/static/manifest.webmanifest',
  '/static/favicon.svg',
  '/static/icons/icon.svg',
  '/static/icons/icon-192.png',
  '/static/icons/icon-512.png',
  '/static/icons/icon-maskable-512.png',
];

/** The static URLs a page needs: its src/href attributes and its import map's modules. */
function shellUrls(html) {
  const urls = new Set(EXTRA);
  for (const match of html.matchAll(/(?:src|href)="(\/static\/[^"?#]+)"/g)) urls.add(match[1]);
  const map = html.match(/<script type="importmap">([^<]*)<\/script>/);
  if (map) {
    try {
      for (const url of Object.values(JSON.parse(map[1]).imports || {})) urls.add(url);
    } catch { /* no import map: the page's own references are enough */ }
  }
  return [...urls];
}

async function cacheShell() {
  const cache = await caches.open(SHELL);
  const page = await fetch('/chat', { credentials: 'same-origin', cache: 'no-cache' });
  if (!page.ok) return;
  const html = await page.clone().text();
  await cache.put('/chat', page);
  await Promise.all(shellUrls(html).map(async (url) => {
    try {
      const res = await fetch(url, { credentials: 'same-origin' });
      if (res.ok) await cache.put(url, res);
    } catch { /* one missing icon must not stop the rest */ }
  }));
}

self.addEventListener('install', (event) => {
  event.waitUntil(cacheShell().then(() => self.skipWaiting()));
});

/** What the page asked for before this worker controlled it, fetched once more and kept. */
async function warmData() {
  const cache = await caches.open(DATA);
  await Promise.all(['/service/api/profile', '/service/api/chats'].map(async (path) => {
    try {
      const res = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (res.ok) await cache.put(path, res);
    } catch { /* offline already: nothing to keep */ }
  }));
}

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((n) => n.startsWith('parley-') && n !== SHELL && n !== DATA)
      .map((n) => caches.delete(n)));
    await self.clients.claim();
    await warmData();
  })());
});

self.addEventListener('message', (event) => {
  // Signing out: what was kept of this account's chats is forgotten.
  if (event.data && event.data.type === 'forget-data') event.waitUntil(caches.delete(DATA));
});

/** API answers worth keeping for offline reading; the key they are kept under. */
function dataKey(url) {
  const path = url.pathname;
  if (path === '/service/api/chats' || path === '/service/api/profile' || path === '/service/api/blocks') return path;
  if (/^\/service\/api\/chats\/\d+$/.test(path)) return path;
  // A chat's history: its newest page under the bare path, and the older pages and the
  // windows around a message (a search hit, a link) under their whole query, so scrolling
  // up offline asks for the same URLs it asked online.
  if (/^\/service\/api\/chats\/\d+\/messages$/.test(path)) {
    const { searchParams } = url;
    if (searchParams.has('after') || searchParams.has('thread')) return null;
    if (!searchParams.has('before') && !searchParams.has('around')) return path;
    const kept = new URLSearchParams();
    for (const name of ['before', 'around', 'limit']) {
      if (searchParams.has(name)) kept.set(name, searchParams.get(name));
    }
    return `${path}?${kept}`;
  }
  return null;
}

const historyChat = (request) => {
  const match = new URL(request.url).pathname.match(/^\/service\/api\/chats\/(\d+)\/messages$/);
  return match ? match[1] : null;
};

/** Keeps the histories of the KEPT_CHATS chats viewed last, at most KEPT_PAGES pages each. */
async function trimHistories(cache) {
  // Cache keys keep insertion order and `put` re-inserts: the oldest viewed come first.
  const byChat = new Map();
  for (const request of await cache.keys()) {
    const chat = historyChat(request);
    if (chat === null) continue;
    const pages = byChat.get(chat) || [];
    byChat.delete(chat); // re-inserted: the chat's latest page decides its place
    byChat.set(chat, [...pages, request]);
  }
  const chats = [...byChat.values()];
  const dropped = chats.slice(0, Math.max(0, chats.length - KEPT_CHATS)).flat();
  for (const pages of chats.slice(-KEPT_CHATS)) {
    dropped.push(...pages.slice(0, Math.max(0, pages.length - KEPT_PAGES)));
  }
  await Promise.all(dropped.map((request) => cache.delete(request)));
}

async function networkFirstData(request, key) {
  const cache = await caches.open(DATA);
  try {
    const res = await fetch(request);
    if (res.ok) {
      await cache.delete(key);
      await cache.put(key, res.clone());
      await trimHistories(cache);
    } else if (res.status === 401 || res.status === 403) {
      await caches.delete(DATA);
    }
    return res;
  } catch (error) {
    const kept = await cache.match(key);
    if (kept) return kept;
    throw error;
  }
}

async function networkFirstPage(request) {
  try {
    return await fetch(request);
  } catch (error) {
    const kept = await caches.match('/chat', { cacheName: SHELL });
    if (kept) return kept;
    throw error;
  }
}

async function cacheFirstStatic(request) {
  const kept = await caches.match(request, { cacheName: SHELL });
  if (kept) return kept;
  const res = await fetch(request);
  if (res.ok && /\.[0-9a-f]{12}\.[A-Za-z0-9]+$/.test(new URL(request.url).pathname)) {
    const cache = await caches.open(SHELL);
    await cache.put(request, res.clone());
  }
  return res;
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate' && (url.pathname === '/chat' || url.pathname === '/')) {
    event.respondWith(networkFirstPage(request));
    return;
  }
  if (url.pathname.startsWith('/static/')) {
    event.respondWith(cacheFirstStatic(request));
    return;
  }
  const key = dataKey(url);
  if (key) event.respondWith(networkFirstData(request, key));
});

self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  if (data.type !== 'message') return;
  event.waitUntil(self.registration.showNotification(data.title || 'Parley', {
    body: data.body || '',
    tag: data.tag,
    icon: '/static/icons/icon-192.png',
    data,
  }));
});

/**
 * A notification's click: the chat at its message. An open tab is told to show it (no
 * reload) and focused; with no tab open, a new window opens on the message's link.
 */
async function openFromNotification(data) {
  const chatId = Number(data && data.chat_id) || 0;
  const messageId = Number(data && data.message_id) || 0;
  const link = chatId ? `/chat?chat=${chatId}${messageId ? `&message=${messageId}` : ''}` : '/chat';
  const open = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const tab = open.find((client) => new URL(client.url).pathname === '/chat');
  if (!tab) return self.clients.openWindow(link);
  tab.postMessage({ type: 'open-link', chat_id: chatId, message_id: messageId });
  try {
    await tab.focus();
  } catch { /* focusing needs the click's activation; the tab has the message anyway */ }
  return tab;
}
// The browser tests call it as a click would (a test cannot click a system notification).
self.openFromNotification = openFromNotification;

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(openFromNotification(event.notification.data));
});
