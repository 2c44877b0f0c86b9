// What a check-in cell shows and what a tap on it does.
import type { Entry, EntryInput, Habit } from './types';

export type CellState = 'none' | 'done' | 'skipped' | 'partial';

/** Whether a measured value meets the habit's target. */
export function meetsTarget(habit: Pick<Habit, 'target'>, value: number): boolean {
  if (!habit.target) return value > 0;
  return habit.target.type === 'at_least' ? value >= habit.target.value : value <= habit.target.value;
}

export function cellState(habit: Pick<Habit, 'target'>, entry: Entry | undefined): CellState {
  if (!entry) return 'none';
  if (entry.status === 'skipped') return 'skipped';
  if (entry.status === 'done') return 'done';
  return meetsTarget(habit, entry.value ?? 0) ? 'done' : 'partial';
}

/**
 * A tap on a day's cell cycles none → done → skipped → none. For a measurable
 * habit "done" records the target value. `null` means delete the entry.
 */
export function nextEntry(habit: Pick<Habit, 'kind' | 'target'>, entry: Entry | undefined): EntryInput | null {
  const note = entry?.note ?? undefined;
  const withNote = <T extends object>(body: T): T => (note ? { ...body, note } : body);
  const state = entry ? cellState(habit as Habit, entry) : 'none';
  if (state === 'none' || state === 'partial') {
    return habit.kind === 'boolean' ? withNote({ status: 'done' as const }) : withNote({ value: habit.target?.value ?? 1 });
  }
  if (state === 'done') return withNote({ status: 'skipped' as const });
  return null;
}

export function describeEntry(habit: Pick<Habit, 'unit'>, entry: Entry | undefined): string {
  if (!entry) return 'not checked in';
  if (entry.status === 'done') return 'done';
  if (entry.status === 'skipped') return 'skipped';
  return `${entry.value ?? 0}${habit.unit ? ' ' + habit.unit : ''}`;
}

/** Entries keyed by date. */
export function byDate(entries: Entry[]): Map<string, Entry> {
  return new Map(entries.map((e) => [e.date, e]));
}

/** Consecutive done days up to today (a fallback when the stats route is absent). */
export function currentStreak(habit: Pick<Habit, 'target'>, entries: Map<string, Entry>, today: string, addDays: (d: string, n: number) => string): number {
  let streak = 0;
  let day = today;
  // Today not yet checked in does not break the streak.
  if (cellState(habit, entries.get(day)) !== 'done') day = addDays(day, -1);
  while (cellState(habit, entries.get(day)) === 'done') {
    streak++;
    day = addDays(day, -1);
  }
  return streak;
}
