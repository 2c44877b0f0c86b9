// Check-ins waiting for the server: a tap made offline (or while the server is
// down) is kept here, in IndexedDB, and sent when the connection returns (on
// `online`, on the next load, on a timer while any wait, and by the service
// worker's Background Sync where the browser has it).
//
// One pending check-in per habit and day: a later tap on the same day replaces
// the pending one. Each carries the time of its tap (`tapped_at`), and the server
// keeps the later tap of a day whichever arrives first, so sending one twice (the
// page and the service worker at once) is harmless, and a phone that was offline
// cannot overwrite what the laptop entered after it. A cleared day is sent as a
// DELETE, which has no tap time: it clears whatever is stored.
//
// This module has no DOM or React in it: the page and the service worker (sw.ts)
// both use it, and its tests run in node against the in-memory store.
import type { Entry, EntryInput } from './types';

/** A check-in not yet taken by the server. */
export interface PendingCheckIn {
  /** `habit_id|date`: one per habit and day. */
  key: string;
  user_id: string;
  habit_id: string;
  /** For messages ("Water: …"). */
  habit_name: string;
  date: string;
  /** null clears the day. */
  input: EntryInput | null;
  /** When the user tapped, ms since the Unix epoch. */
  tapped_at: number;
  /**
   * The day's entry this device showed when the user tapped (null: none). A
   * replaced entry that differs from it came from another device, and is told.
   */
  seen?: Entry | null;
}

/** An entry as the server stored it, with the time of its tap. */
export interface StoredEntry extends Entry {
  updated_at: number;
}

/** What sending one pending check-in came to. */
export type Outcome =
  /** Stored; `replaced` is another device's different entry it overwrote. */
  | { kind: 'sent'; item: PendingCheckIn; replaced: StoredEntry | null }
  /** A later tap (another device's) is stored and was kept; this one is dropped. */
  | { kind: 'kept-newer'; item: PendingCheckIn; kept: StoredEntry }
  /** The server refused it for good (the habit is gone, a value it does not take). */
  | { kind: 'refused'; item: PendingCheckIn; message: string }
  /** No answer (offline, or the server failed): it stays pending. */
  | { kind: 'unsent'; item: PendingCheckIn };

/** Where pending check-ins are kept. */
export interface PendingStore {
  all(): Promise<PendingCheckIn[]>;
  /** Adds `item`, replacing the pending check-in of the same habit and day. */
  put(item: PendingCheckIn): Promise<void>;
  /** Removes the check-in under `key` if it is still the tap of `tapped_at` (a later tap queued meanwhile stays). */
  remove(key: string, tapped_at: number): Promise<void>;
  /** Removes every pending check-in. */
  clear(): Promise<void>;
}

export function pendingKey(habitId: string, date: string): string {
  return `${habitId}|${date}`;
}

/** A fetch-like function (the page's or the service worker's). */
export type Fetch = (url: string, init: RequestInit) => Promise<Response>;

/** Sends one pending check-in and says what came of it. Never throws. */
export async function send(item: PendingCheckIn, fetcher: Fetch): Promise<Outcome> {
  const path = `/api/habits/${encodeURIComponent(item.habit_id)}/entries/${item.date}`;
  let response: Response;
  try {
    response = await fetcher(path, {
      method: item.input ? 'PUT' : 'DELETE',
      headers: item.input ? { accept: 'application/json', 'content-type': 'application/json' } : { accept: 'application/json' },
      body: item.input ? JSON.stringify({ ...item.input, tapped_at: item.tapped_at }) : undefined,
      credentials: 'same-origin',
    });
  } catch {
    return { kind: 'unsent', item };
  }
  const body = (await response.json().catch(() => null)) as {
    replaced?: StoredEntry | null;
    kept?: StoredEntry;
    error?: { code?: string; message?: string };
  } | null;
  if (response.ok || (!item.input && response.status === 404)) {
    return { kind: 'sent', item, replaced: body?.replaced ?? null };
  }
  if (response.status === 409 && body?.error?.code === 'newer_entry' && body.kept) {
    return { kind: 'kept-newer', item, kept: body.kept };
  }
  // Signed out, rate-limited, or the server failing: try again later.
  if (response.status === 401 || response.status === 408 || response.status === 429 || response.status >= 500) {
    return { kind: 'unsent', item };
  }
  return { kind: 'refused', item, message: body?.error?.message ?? `HTTP ${response.status}` };
}

/**
 * Sends `user`'s pending check-ins, oldest tap first, and removes each the server
 * answered for good. Stops at the first one without an answer (still offline):
 * the rest wait for the next try. Other users' check-ins wait for them to sign in.
 */
export async function flush(store: PendingStore, user: string, fetcher: Fetch): Promise<Outcome[]> {
  const items = (await store.all()).filter((c) => c.user_id === user).sort((a, b) => a.tapped_at - b.tapped_at);
  const outcomes: Outcome[] = [];
  for (const item of items) {
    const outcome = await send(item, fetcher);
    outcomes.push(outcome);
    if (outcome.kind === 'unsent') break;
    await store.remove(item.key, item.tapped_at);
  }
  return outcomes;
}

/**
 * `entries` (one habit's, oldest first, from `from` to `to`) as they will be once
 * the pending check-ins of `habitId` are sent.
 */
export function withPending(entries: Entry[], pending: PendingCheckIn[], habitId: string, from?: string, to?: string): Entry[] {
  let result = entries;
  for (const p of pending) {
    if (p.habit_id !== habitId || (from && p.date < from) || (to && p.date > to)) continue;
    result = result.filter((e) => e.date !== p.date);
    if (p.input) result = [...result, entryOf(p.habit_id, p.date, p.input)];
  }
  return result === entries ? entries : [...result].sort((a, b) => a.date.localeCompare(b.date));
}

/** The entry `input` makes, as the server would store it. */
export function entryOf(habitId: string, date: string, input: EntryInput): Entry {
  return {
    habit_id: habitId,
    date,
    status: 'value' in input ? 'value' : input.status,
    value: 'value' in input ? input.value : null,
    note: input.note ?? null,
    source: 'manual',
  };
}

/** Whether two entries hold the same check-in (status, value and note). */
export function sameCheckIn(a: Entry | null | undefined, b: Entry | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return a.status === b.status && a.value === b.value && (a.note ?? null) === (b.note ?? null);
}

function describe(e: Entry): string {
  if (e.status === 'value' && e.value !== null) return String(e.value);
  return e.status;
}

/**
 * What the user should hear of `outcomes`: another device's check-in replaced or
 * kept, or a check-in the server refused. Null when all went as shown.
 */
export function outcomeMessage(outcomes: Outcome[]): string | null {
  const said: string[] = [];
  for (const o of outcomes) {
    const day = o.item.date;
    if (o.kind === 'kept-newer') {
      said.push(`${o.item.habit_name} on ${day}: a later check-in from another device was kept (${describe(o.kept)}).`);
    } else if (o.kind === 'sent' && o.replaced && !sameCheckIn(o.replaced, o.item.seen ?? null)) {
      said.push(`${o.item.habit_name} on ${day}: replaced ${describe(o.replaced)} from another device.`);
    } else if (o.kind === 'refused') {
      said.push(`${o.item.habit_name} on ${day} was not saved: ${o.message}`);
    }
  }
  if (said.length === 0) return null;
  return said.length === 1 ? (said[0] ?? null) : `${said[0]} And ${said.length - 1} more.`;
}

/** Pending check-ins in memory (tests, and browsers without IndexedDB). */
export function memoryStore(): PendingStore {
  const items = new Map<string, PendingCheckIn>();
  return {
    all: async () => [...items.values()],
    put: async (item) => {
      items.set(item.key, item);
    },
    remove: async (key, tapped_at) => {
      if (items.get(key)?.tapped_at === tapped_at) items.delete(key);
    },
    clear: async () => items.clear(),
  };
}

const DB_NAME = 'ham';
const STORE = 'pending-check-ins';

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((ok, fail) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((ok, fail) => {
    tx.oncomplete = () => ok();
    tx.onerror = () => fail(tx.error);
    tx.onabort = () => fail(tx.error);
  });
}

/** Pending check-ins in IndexedDB (database `ham`), shared by the page and the service worker. */
export function indexedDbStore(factory: IDBFactory = indexedDB): PendingStore {
  let opened: Promise<IDBDatabase> | null = null;
  const db = () => {
    opened ??= new Promise<IDBDatabase>((ok, fail) => {
      const r = factory.open(DB_NAME, 1);
      r.onupgradeneeded = () => r.result.createObjectStore(STORE, { keyPath: 'key' });
      r.onsuccess = () => ok(r.result);
      r.onerror = () => {
        opened = null;
        fail(r.error);
      };
    });
    return opened;
  };
  const run = async <T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => Promise<T>): Promise<T> => {
    const tx = (await db()).transaction(STORE, mode);
    const [result] = await Promise.all([fn(tx.objectStore(STORE)), done(tx)]);
    return result;
  };
  return {
    all: () => run('readonly', (s) => request(s.getAll() as IDBRequest<PendingCheckIn[]>)),
    put: (item) => run('readwrite', async (s) => void (await request(s.put(item)))),
    remove: (key, tapped_at) =>
      run('readwrite', async (s) => {
        const current = (await request(s.get(key))) as PendingCheckIn | undefined;
        if (current?.tapped_at === tapped_at) await request(s.delete(key));
      }),
    clear: () => run('readwrite', async (s) => void (await request(s.clear()))),
  };
}

/** The tag of the Background Sync that sends pending check-ins. */
export const SYNC_TAG = 'ham-check-ins';

/** The message the service worker posts to its pages after sending check-ins. */
export interface SentMessage {
  type: 'check-ins-sent';
  outcomes: Outcome[];
}
