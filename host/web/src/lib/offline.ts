// The page's side of working offline: registers the service worker (sw.ts),
// keeps the pending check-ins (lib/pending.ts) in IndexedDB, sends them (one
// send at a time), and lets screens follow which days are pending.
import { useSyncExternalStore } from 'react';
import { flush, indexedDbStore, memoryStore, pendingKey, SYNC_TAG, type Outcome, type PendingCheckIn, type PendingStore, type SentMessage } from './pending';

export const pendingStore: PendingStore = typeof indexedDB === 'undefined' ? memoryStore() : indexedDbStore();

let pending = new Map<string, PendingCheckIn>();
const watchers = new Set<() => void>();
const outcomeWatchers = new Set<(outcomes: Outcome[]) => void>();

/** Reads the pending check-ins again and tells the screens. */
export async function refreshPending(): Promise<void> {
  try {
    const items = await pendingStore.all();
    pending = new Map(items.map((p) => [p.key, p]));
  } catch {
    // IndexedDB unavailable (private mode): nothing can be pending.
  }
  for (const w of watchers) w();
}

/** The pending check-ins by `habit_id|date`, kept current. */
export function usePending(): Map<string, PendingCheckIn> {
  return useSyncExternalStore(
    (changed) => {
      watchers.add(changed);
      return () => watchers.delete(changed);
    },
    () => pending,
  );
}

export function isPending(map: Map<string, PendingCheckIn>, habitId: string, date: string): boolean {
  return map.has(pendingKey(habitId, date));
}

/** Hears what every send came to (the page's and the service worker's). */
export function onOutcomes(watch: (outcomes: Outcome[]) => void): () => void {
  outcomeWatchers.add(watch);
  return () => outcomeWatchers.delete(watch);
}

function report(outcomes: Outcome[]): void {
  if (outcomes.length === 0) return;
  for (const w of outcomeWatchers) w(outcomes);
}

/** Keeps a check-in until the server has it, and asks for a Background Sync. */
export async function queueCheckIn(item: PendingCheckIn): Promise<void> {
  await pendingStore.put(item);
  await refreshPending();
  try {
    const registration = (await navigator.serviceWorker?.getRegistration()) as (ServiceWorkerRegistration & { sync?: { register(tag: string): Promise<void> } }) | undefined;
    await registration?.sync?.register(SYNC_TAG);
  } catch {
    // no Background Sync here: `online`, the next load and the timer send it
  }
}

let sending: Promise<unknown> = Promise.resolve();

/** Sends `user`'s pending check-ins, after any send already under way. */
export function sendPending(user: string): Promise<Outcome[]> {
  const run = sending.then(async () => {
    let outcomes: Outcome[] = [];
    try {
      outcomes = await flush(pendingStore, user, (url, init) => fetch(url, init));
    } catch {
      // IndexedDB failed: try again next time
    }
    await refreshPending();
    report(outcomes);
    return outcomes;
  });
  sending = run.catch(() => undefined);
  return run;
}

/** Registers `/sw.js` and relays what it sends in the background. */
export function startOffline(): void {
  void refreshPending();
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.addEventListener('message', (event: MessageEvent) => {
    const data = event.data as SentMessage | null;
    if (data?.type !== 'check-ins-sent') return;
    void refreshPending();
    report(data.outcomes);
  });
  void navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(() => undefined);
}

/** Tells the service worker to forget the signed-out user's cached answers. */
export async function signedOut(): Promise<void> {
  try {
    const registration = await navigator.serviceWorker?.getRegistration();
    registration?.active?.postMessage({ type: 'signed-out' });
  } catch {
    // no service worker: nothing cached
  }
}

/** Added to a change's toast when the browser is offline. */
export function offlineWords(): string {
  return typeof navigator !== 'undefined' && navigator.onLine === false ? ' (saved on this device; sent when back online)' : '';
}
