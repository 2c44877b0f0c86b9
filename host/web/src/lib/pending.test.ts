import { describe, expect, it } from 'vitest';
import { flush, memoryStore, outcomeMessage, pendingKey, send, withPending, type Fetch, type PendingCheckIn } from './pending';
import type { Entry } from './types';

function checkIn(date: string, tapped_at: number, input: PendingCheckIn['input'] = { status: 'done' }, user_id = 'u1'): PendingCheckIn {
  return { key: pendingKey('h1', date), user_id, habit_id: 'h1', habit_name: 'Floss', date, input, tapped_at };
}

const stored = (date: string, value: number, updated_at: number) => ({
  habit_id: 'h1',
  date,
  status: 'value' as const,
  value,
  note: null,
  source: 'manual',
  updated_at,
});

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

/** A fake server: answers from `answer`, records every request. */
function server(answer: (url: string, init: RequestInit) => Response | 'offline') {
  const seen: { url: string; method: string; body: unknown }[] = [];
  const fetcher: Fetch = async (url, init) => {
    seen.push({ url, method: init.method ?? 'GET', body: init.body ? JSON.parse(String(init.body)) : null });
    const r = answer(url, init);
    if (r === 'offline') throw new TypeError('Failed to fetch');
    return r;
  };
  return { fetcher, seen };
}

describe('the pending queue', () => {
  it('keeps one check-in per habit and day: a later tap replaces the pending one', async () => {
    const store = memoryStore();
    await store.put(checkIn('2026-03-01', 1, { status: 'done' }));
    await store.put(checkIn('2026-03-02', 2));
    await store.put(checkIn('2026-03-01', 3, { status: 'skipped' }));
    const all = await store.all();
    expect(all).toHaveLength(2);
    expect(all.find((c) => c.date === '2026-03-01')).toMatchObject({ tapped_at: 3, input: { status: 'skipped' } });
  });

  it('removes a sent check-in only if no later tap replaced it meanwhile', async () => {
    const store = memoryStore();
    await store.put(checkIn('2026-03-01', 5));
    await store.remove(pendingKey('h1', '2026-03-01'), 4);
    expect(await store.all()).toHaveLength(1);
    await store.remove(pendingKey('h1', '2026-03-01'), 5);
    expect(await store.all()).toHaveLength(0);
  });

  it('sends the tap time with the check-in, oldest tap first, and empties the queue', async () => {
    const store = memoryStore();
    await store.put(checkIn('2026-03-02', 20, { value: 1.5 }));
    await store.put(checkIn('2026-03-01', 10, null));
    const { fetcher, seen } = server((_, init) => (init.method === 'DELETE' ? new Response(null, { status: 404 }) : json(200, { replaced: null })));
    const outcomes = await flush(store, 'u1', fetcher);
    expect(seen).toEqual([
      { url: '/api/habits/h1/entries/2026-03-01', method: 'DELETE', body: null },
      { url: '/api/habits/h1/entries/2026-03-02', method: 'PUT', body: { value: 1.5, tapped_at: 20 } },
    ]);
    expect(outcomes.map((o) => o.kind)).toEqual(['sent', 'sent']);
    expect(await store.all()).toEqual([]);
  });

  it('stops at the first check-in without an answer and keeps the rest for later', async () => {
    const store = memoryStore();
    await store.put(checkIn('2026-03-01', 1));
    await store.put(checkIn('2026-03-02', 2));
    const { fetcher, seen } = server(() => 'offline');
    const outcomes = await flush(store, 'u1', fetcher);
    expect(outcomes.map((o) => o.kind)).toEqual(['unsent']);
    expect(seen).toHaveLength(1);
    expect(await store.all()).toHaveLength(2);
    // A failing server (5xx) or an expired session (401) is no answer either.
    for (const status of [401, 503]) {
      const outcome = await send(checkIn('2026-03-01', 1), server(() => json(status, { error: { code: 'x', message: 'x' } })).fetcher);
      expect(outcome.kind).toBe('unsent');
    }
  });

  it("sends only the signed-in user's check-ins", async () => {
    const store = memoryStore();
    await store.put(checkIn('2026-03-01', 1, { status: 'done' }, 'u1'));
    await store.put({ ...checkIn('2026-03-02', 2, { status: 'done' }, 'u2'), key: pendingKey('h2', '2026-03-02'), habit_id: 'h2' });
    const { fetcher, seen } = server(() => json(200, { replaced: null }));
    await flush(store, 'u2', fetcher);
    expect(seen.map((s) => s.url)).toEqual(['/api/habits/h2/entries/2026-03-02']);
    expect((await store.all()).map((c) => c.user_id)).toEqual(['u1']);
  });

  it("tells another device's later check-in kept, and a value replaced, from the server's answers", async () => {
    const kept = stored('2026-03-01', 3, 50);
    const older = checkIn('2026-03-01', 40, { value: 1 });
    const keptOutcome = await send(older, server(() => json(409, { error: { code: 'newer_entry', message: 'kept' }, kept })).fetcher);
    expect(keptOutcome).toEqual({ kind: 'kept-newer', item: older, kept });
    expect(outcomeMessage([keptOutcome])).toBe('Floss on 2026-03-01: a later check-in from another device was kept (3).');

    const newer = { ...checkIn('2026-03-01', 60, { value: 2 }), seen: null };
    const replacedOutcome = await send(newer, server(() => json(200, { ...stored('2026-03-01', 2, 60), replaced: kept })).fetcher);
    expect(replacedOutcome).toEqual({ kind: 'sent', item: newer, replaced: kept });
    expect(outcomeMessage([replacedOutcome])).toBe('Floss on 2026-03-01: replaced 3 from another device.');

    // Replacing what this device showed when tapped is no news.
    const own: Entry = { habit_id: 'h1', date: '2026-03-01', status: 'value', value: 3, note: null, source: 'manual' };
    expect(outcomeMessage([{ kind: 'sent', item: { ...newer, seen: own }, replaced: kept }])).toBeNull();
  });

  it('drops a check-in the server refuses for good, and says so', async () => {
    const store = memoryStore();
    await store.put(checkIn('2026-03-01', 1));
    const { fetcher } = server(() => json(404, { error: { code: 'not_found', message: 'no such habit' } }));
    const outcomes = await flush(store, 'u1', fetcher);
    expect(outcomes[0]).toMatchObject({ kind: 'refused', message: 'no such habit' });
    expect(await store.all()).toEqual([]);
    expect(outcomeMessage(outcomes)).toBe('Floss on 2026-03-01 was not saved: no such habit');
  });

  it('shows the entries as they will be once the pending check-ins are sent', () => {
    const entries: Entry[] = [
      { habit_id: 'h1', date: '2026-03-01', status: 'done', value: null, note: null, source: 'manual' },
      { habit_id: 'h1', date: '2026-03-03', status: 'done', value: null, note: null, source: 'manual' },
    ];
    const pending = [checkIn('2026-03-01', 1, null), checkIn('2026-03-02', 2, { status: 'skipped', note: 'rain' }), checkIn('2026-04-01', 3)];
    expect(withPending(entries, pending, 'h1', '2026-03-01', '2026-03-31').map((e) => [e.date, e.status, e.note])).toEqual([
      ['2026-03-02', 'skipped', 'rain'],
      ['2026-03-03', 'done', null],
    ]);
    expect(withPending(entries, pending, 'other')).toBe(entries);
  });
});
