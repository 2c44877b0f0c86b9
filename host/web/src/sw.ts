// The service worker (`/sw.js`, scope `/`; built by vite.sw.config.ts into one
// file): HAM opens and shows the screens last seen without a network, and sends
// check-ins made offline when it returns.
//
// - Hashed assets (`/assets/*`, immutable): cache first.
// - Page loads: the network, with the app shell (`/`, index.html) as the answer
//   when offline. The shell is cached at install (with the assets it names) and
//   again from every page load that answers 200.
// - `/api/` GETs: the network first, the last answer as the fallback. Only 200
//   JSON answers are kept, never other methods, event streams or exports.
// - The data cache belongs to one user: it is cleared on sign-in and sign-out
//   (seen passing through, and told by the page), and whenever `/api/me` names
//   another user than the one whose answers it holds.
// - Background Sync (`sync` event, tag `ham-check-ins`): sends the pending
//   check-ins (lib/pending.ts) and tells the open pages what came of it.
import { flush, indexedDbStore, SYNC_TAG, type SentMessage } from './lib/pending';

// The worker's own types (the app's tsconfig has the DOM's, not WebWorker's).
interface WorkerEvent extends Event {
  waitUntil(promise: Promise<unknown>): void;
}
interface WorkerFetchEvent extends WorkerEvent {
  request: Request;
  respondWith(response: Promise<Response> | Response): void;
}
interface WorkerSyncEvent extends WorkerEvent {
  tag: string;
}
interface WorkerMessageEvent extends WorkerEvent {
  data: unknown;
}
interface WorkerClient {
  postMessage(message: unknown): void;
}
interface WorkerScope {
  addEventListener(type: 'install' | 'activate', listener: (e: WorkerEvent) => void): void;
  addEventListener(type: 'fetch', listener: (e: WorkerFetchEvent) => void): void;
  addEventListener(type: 'sync', listener: (e: WorkerSyncEvent) => void): void;
  addEventListener(type: 'message', listener: (e: WorkerMessageEvent) => void): void;
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void>; matchAll(options?: { type?: string }): Promise<WorkerClient[]> };
  location: Location;
}

const worker = self as unknown as WorkerScope;

/** Bump to drop every cache of older workers. */
const VERSION = 'v1';
const SHELL = `ham-shell-${VERSION}`;
const DATA = `ham-data-${VERSION}`;
/** Where the data cache notes whose answers it holds. */
const OWNER = '/__ham/data-owner';
const STATIC = ['/manifest.webmanifest', '/icons/icon-192.png', '/icons/icon-512.png', '/icons/maskable-192.png', '/icons/maskable-512.png'];

/** The assets index.html loads (`/assets/…`). */
function assetsOf(html: string): string[] {
  return [...new Set([...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1] ?? ''))].filter(Boolean);
}

async function cacheShell(): Promise<void> {
  const cache = await caches.open(SHELL);
  const response = await fetch('/', { cache: 'no-cache', credentials: 'same-origin' });
  if (!response.ok) throw new Error(`the app shell answered ${response.status}`);
  const html = await response.clone().text();
  await cache.put('/', response);
  await cache.addAll([...assetsOf(html), ...STATIC]);
}

worker.addEventListener('install', (event) => {
  event.waitUntil(cacheShell().then(() => worker.skipWaiting()));
});

worker.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith('ham-') && name !== SHELL && name !== DATA) await caches.delete(name);
      }
      await worker.clients.claim();
    })(),
  );
});

async function clearData(): Promise<void> {
  await caches.delete(DATA);
}

/** Keeps an `/api/` answer, first clearing what another user left. */
async function keep(request: Request, response: Response): Promise<void> {
  const cache = await caches.open(DATA);
  if (new URL(request.url).pathname === '/api/me') {
    const me = (await response.clone().json().catch(() => null)) as { id?: string } | null;
    const owner = await (await cache.match(OWNER))?.text();
    if (me?.id && owner !== me.id) {
      await clearData();
      const fresh = await caches.open(DATA);
      await fresh.put(OWNER, new Response(me.id));
      await fresh.put(request, response);
      return;
    }
  }
  await cache.put(request, response);
}

async function networkFirstApi(event: WorkerFetchEvent): Promise<Response> {
  const { request } = event;
  try {
    const response = await fetch(request);
    const type = response.headers.get('content-type') ?? '';
    if (response.status === 200 && type.includes('json')) event.waitUntil(keep(request, response.clone()));
    if (response.status === 401) event.waitUntil(clearData());
    return response;
  } catch (e) {
    const cached = await (await caches.open(DATA)).match(request);
    if (cached) return cached;
    throw e;
  }
}

async function page(event: WorkerFetchEvent): Promise<Response> {
  try {
    const response = await fetch(event.request);
    if (response.status === 200 && (response.headers.get('content-type') ?? '').includes('text/html')) {
      event.waitUntil(caches.open(SHELL).then((c) => c.put('/', response.clone())));
    }
    return response;
  } catch (e) {
    const shell = await (await caches.open(SHELL)).match('/');
    if (shell) return shell;
    throw e;
  }
}

async function cacheFirst(event: WorkerFetchEvent): Promise<Response> {
  const cache = await caches.open(SHELL);
  const cached = await cache.match(event.request);
  if (cached) return cached;
  const response = await fetch(event.request);
  if (response.status === 200) event.waitUntil(cache.put(event.request, response.clone()));
  return response;
}

async function networkFirstStatic(event: WorkerFetchEvent): Promise<Response> {
  try {
    return await fetch(event.request);
  } catch (e) {
    const cached = await (await caches.open(SHELL)).match(event.request);
    if (cached) return cached;
    throw e;
  }
}

worker.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (url.origin !== worker.location.origin) return;
  const path = url.pathname;
  if (request.method !== 'GET') {
    // Another user may sign in next: nothing of this one's stays.
    if (/^\/api\/auth\/(login|logout|register)$/.test(path)) event.waitUntil(clearData());
    return;
  }
  if (path.startsWith('/api/')) {
    const stream = (request.headers.get('accept') ?? '').includes('text/event-stream');
    if (stream || path.startsWith('/api/export') || path.startsWith('/api/admin/')) return;
    event.respondWith(networkFirstApi(event));
    return;
  }
  if (path.startsWith('/plugins/') || path === '/sw.js') return;
  if (request.mode === 'navigate') event.respondWith(page(event));
  else if (path.startsWith('/assets/')) event.respondWith(cacheFirst(event));
  else event.respondWith(networkFirstStatic(event));
});

/** Sends the signed-in user's pending check-ins; rejects while any stay unsent (the browser retries the sync). */
async function sendPending(): Promise<void> {
  const me = await fetch('/api/me', { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (!me.ok) return;
  const { id } = (await me.json()) as { id: string };
  const outcomes = await flush(indexedDbStore(), id, (url, init) => fetch(url, init));
  if (outcomes.length > 0) {
    const message: SentMessage = { type: 'check-ins-sent', outcomes };
    for (const client of await worker.clients.matchAll({ type: 'window' })) client.postMessage(message);
  }
  if (outcomes.some((o) => o.kind === 'unsent')) throw new Error('check-ins still pending');
}

worker.addEventListener('sync', (event) => {
  if (event.tag === SYNC_TAG) event.waitUntil(sendPending());
});

worker.addEventListener('message', (event) => {
  const data = event.data as { type?: string } | null;
  if (data?.type === 'signed-out') event.waitUntil(clearData());
});
