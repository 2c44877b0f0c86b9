// Data from the host through TanStack Query: one hook per resource, keys in one place.
import { keepPreviousData, QueryClient, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from './api';
import type { AuthConfig, Entry, EntryInput, Habit, HabitStats, HabitStatsSummary, User } from './types';

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 30_000,
        // A client error will not change on retry; a network blip may.
        retry: (count, error) => !(error instanceof ApiError && error.status >= 400 && error.status < 500) && count < 2,
        refetchOnWindowFocus: true,
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

/** The query for a habit's entries from `from` to `to` (both included). */
export function entriesQuery(id: string, from: string, to: string) {
  return {
    queryKey: keys.entries(id, from, to),
    queryFn: async () =>
      (await api<{ entries: Entry[] }>(`/api/habits/${encodeURIComponent(id)}/entries?from=${from}&to=${to}`)).entries,
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
}

function applyChange(entries: Entry[] | undefined, change: EntryChange, from?: string, to?: string): Entry[] | undefined {
  if (!entries) return entries;
  if (from && to && (change.date < from || change.date > to)) return entries;
  const rest = entries.filter((e) => e.date !== change.date);
  if (!change.input) return rest;
  const input = change.input;
  const entry: Entry = {
    habit_id: change.habit.id,
    date: change.date,
    status: 'value' in input ? 'value' : input.status,
    value: 'value' in input ? input.value : null,
    note: input.note ?? null,
    source: 'manual',
  };
  return [...rest, entry].sort((a, b) => a.date.localeCompare(b.date));
}

/** Records or clears a check-in, shown at once and corrected by the server's answer. */
export function useSetEntry() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: async (change: EntryChange) => {
      const path = `/api/habits/${encodeURIComponent(change.habit.id)}/entries/${change.date}`;
      if (change.input) return api<Entry>(path, { method: 'PUT', body: change.input });
      try {
        await api<null>(path, { method: 'DELETE' });
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) throw e;
      }
      return null;
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
