// Data from the host through TanStack Query: one hook per resource, keys in one place.
import { keepPreviousData, QueryClient, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from './api';
import { pendingStore, queueCheckIn, sendPending } from './offline';
import { entryOf, pendingKey, send, withPending, type Outcome, type PendingCheckIn } from './pending';
import type { AuthConfig, Entry, EntryInput, Habit, HabitStats, HabitStatsSummary, User } from './types';

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 30_000,
        // A client error will not change on retry; a network blip may.
        retry: (count, error) => !(error instanceof ApiError && error.status >= 400 && error.status < 500) && count < 2,
        refetchOnWindowFocus: true,
        // Ask even when the browser says it is offline: the service worker
        // answers with the last data seen.
        networkMode: 'offlineFirst',
      },
    },
  });
}

export const keys = {
  me: ['me'] as const,
  authConfig: ['auth-config'] as const,
  habits: (archived: boolean) => ['habits', { archived }] as const,
  habit: (id: string) => ['habit', id] as const,
  entries: (id: string, from: string, to: string) => ['entries', id, from, to] as const,
  allStats: ['stats', 'all'] as const,
  stats: (id: string, from: string, to: string) => ['stats', id, from, to] as const,
};

export function useMe() {
  return useQuery({ queryKey: keys.me, queryFn: () => api<User>('/api/me'), staleTime: 60_000 });
}

export function useAuthConfig() {
  return useQuery({ queryKey: keys.authConfig, queryFn: () => api<AuthConfig>('/api/auth/config'), staleTime: Infinity });
}

export function useHabits(archived = false) {
  return useQuery({
    queryKey: keys.habits(archived),
    queryFn: async () => (await api<{ habits: Habit[] }>(`/api/habits${archived ? '?archived=true' : ''}`)).habits,
  });
}

export function useHabit(id: string) {
  return useQuery({ queryKey: keys.habit(id), queryFn: () => api<Habit>(`/api/habits/${encodeURIComponent(id)}`), enabled: id !== '' });
}

/**
 * The query for a habit's entries from `from` to `to` (both included), with the
 * check-ins still pending on this device shown as they will be.
 */
export function entriesQuery(id: string, from: string, to: string) {
  return {
    queryKey: keys.entries(id, from, to),
    queryFn: async () => {
      const { entries } = await api<{ entries: Entry[] }>(`/api/habits/${encodeURIComponent(id)}/entries?from=${from}&to=${to}`);
      const pending = await pendingStore.all().catch(() => []);
      return withPending(entries, pending, id, from, to);
    },
  };
}

export function useEntries(id: string, from: string, to: string, enabled = true) {
  return useQuery({ ...entriesQuery(id, from, to), enabled });
}

/** Score and streak for every habit (habit-rules plugin); 404 when not installed. */
export function useAllStats() {
  return useQuery({
    queryKey: keys.allStats,
    queryFn: async () => {
      const body = await api<{ stats: HabitStatsSummary[] }>('/api/habits/stats');
      return new Map(body.stats.map((s) => [s.habit_id, s]));
    },
    retry: false,
  });
}

export function useHabitStats(id: string, from: string, to: string) {
  return useQuery({
    queryKey: keys.stats(id, from, to),
    queryFn: () => api<HabitStats>(`/api/habits/${encodeURIComponent(id)}/stats?from=${from}&to=${to}`),
    retry: false,
    // A new range keeps the figures on screen until its own arrive.
    placeholderData: keepPreviousData,
  });
}

export interface EntryChange {
  habit: Habit;
  date: string;
  /** null deletes the day's entry. */
  input: EntryInput | null;
  /** The day's entry as shown when tapped (to tell another device's from it). */
  seen?: Entry | null;
}

function applyChange(entries: Entry[] | undefined, change: EntryChange, from?: string, to?: string): Entry[] | undefined {
  if (!entries) return entries;
  if (from && to && (change.date < from || change.date > to)) return entries;
  const rest = entries.filter((e) => e.date !== change.date);
  if (!change.input) return rest;
  return [...rest, entryOf(change.habit.id, change.date, change.input)].sort((a, b) => a.date.localeCompare(b.date));
}

/**
 * Records or clears a check-in, shown at once. It is kept on this device first
 * (lib/offline.ts) and sent with the time of the tap; without a connection it
 * stays pending and resolves `unsent` (no error: it is sent later). The answer
 * is an Outcome: `kept-newer` when another device's later tap won.
 */
export function useSetEntry() {
  const qc = useQueryClient();
  return useMutation({
    // Offline is handled here (pending), not by pausing the mutation.
    networkMode: 'always',
    mutationFn: async (change: EntryChange): Promise<Outcome> => {
      const me = qc.getQueryData<User>(keys.me);
      const item: PendingCheckIn = {
        key: pendingKey(change.habit.id, change.date),
        user_id: me?.id ?? '',
        habit_id: change.habit.id,
        habit_name: change.habit.name,
        date: change.date,
        input: change.input,
        tapped_at: Date.now(),
        seen: change.seen ?? null,
      };
      let outcome: Outcome;
      try {
        await queueCheckIn(item);
        const outcomes = await sendPending(item.user_id);
        outcome = outcomes.find((o) => o.item.key === item.key && o.item.tapped_at === item.tapped_at) ?? { kind: 'unsent', item };
      } catch {
        // Nowhere to keep it (IndexedDB refused): send it now or fail as before.
        outcome = await send(item, (url, init) => fetch(url, init));
        if (outcome.kind === 'unsent') throw new ApiError(0, 'network', 'The server cannot be reached. Check that ham is running.');
      }
      if (outcome.kind === 'refused') throw new ApiError(422, 'refused', outcome.message);
      return outcome;
    },
    onMutate: async (change) => {
      await qc.cancelQueries({ queryKey: ['entries', change.habit.id] });
      const previous = qc.getQueriesData<Entry[]>({ queryKey: ['entries', change.habit.id] });
      for (const [key] of previous) {
        const [, , from, to] = key as unknown as [string, string, string, string];
        qc.setQueryData<Entry[]>(key, (old) => applyChange(old, change, from, to));
      }
      return { previous };
    },
    onError: (_error, _change, context) => {
      for (const [key, data] of context?.previous ?? []) qc.setQueryData(key, data);
    },
    onSettled: (_data, _error, change) => {
      void qc.invalidateQueries({ queryKey: ['entries', change.habit.id] });
      void qc.invalidateQueries({ queryKey: ['stats'] });
    },
  });
}
