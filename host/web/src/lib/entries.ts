// What a day's check-in shows, and what a tap on it may change.
//
// The rule that keeps numbers safe: a tap never writes a number. For a yes/no
// habit a tap toggles done / not done; for a measurable habit a tap opens the day
// editor, which changes nothing until it is saved. Quick amounts add to the day's
// value, never replace it.
import { addDays } from './dates';
import { formatNumber, isDaily, isDueOn, timesInDays } from './format';
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
 * A tap on a yes/no habit's day: done becomes not done (the entry is deleted);
 * not done or skipped becomes done. The note stays. `null` deletes.
 */
export function toggleDone(entry: Entry | undefined): EntryInput | null {
  if (entry?.status === 'done') return null;
  return entry?.note ? { status: 'done', note: entry.note } : { status: 'done' };
}

/** The body that puts `entry` back as it was (undo); `null` when there was none. */
export function entryToInput(entry: Entry | undefined): EntryInput | null {
  if (!entry) return null;
  const note = entry.note ? { note: entry.note } : {};
  if (entry.status === 'value') return { value: entry.value ?? 0, ...note };
  return { status: entry.status, ...note };
}

/** The value a measurable day holds now (0 for none or a skip). */
export function dayValue(entry: Entry | undefined): number {
  return entry?.status === 'value' ? entry.value ?? 0 : 0;
}

/** Adds `amount` to the day's value, keeping its note: a quick amount. */
export function addAmount(entry: Entry | undefined, amount: number): EntryInput {
  const value = Number((dayValue(entry) + amount).toPrecision(12));
  return entry?.note ? { value, note: entry.note } : { value };
}

/**
 * The step of a measurable habit's steppers and quick amounts: about an eighth of
 * the target, on the 1-2-2.5-5 scale (a 2 l target steps by 0.25 l, 30 min by 5).
 */
export function amountStep(habit: Pick<Habit, 'target'>): number {
  const target = habit.target?.value ?? 0;
  if (!(target > 0)) return 1;
  const rough = target / 8;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const nice = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).reverse().find((n) => n <= rough * 1.0001) ?? magnitude;
  return Number(nice.toPrecision(6));
}

/** Quick amounts offered for a measurable habit: one, two and four steps. */
export function quickAmounts(habit: Pick<Habit, 'target'>): number[] {
  const step = amountStep(habit);
  return [step, step * 2, step * 4].map((n) => Number(n.toPrecision(6)));
}

export function describeEntry(habit: Pick<Habit, 'unit'>, entry: Entry | undefined): string {
  if (!entry) return 'not checked in';
  if (entry.status === 'done') return 'done';
  if (entry.status === 'skipped') return 'skipped';
  return `${formatNumber(entry.value ?? 0)}${habit.unit ? ' ' + habit.unit : ''}`;
}

/** Entries keyed by date. */
export function byDate(entries: Entry[]): Map<string, Entry> {
  return new Map(entries.map((e) => [e.date, e]));
}

/** Whether a day counts toward a streak on its own (done, skipped, or on target). */
function countsOnItsOwn(habit: Pick<Habit, 'target'>, entry: Entry | undefined): boolean {
  const state = cellState(habit, entry);
  return state === 'done' || state === 'skipped';
}

/** Consecutive counting days up to today (a fallback when the stats route is absent). */
export function currentStreak(habit: Pick<Habit, 'target'>, entries: Map<string, Entry>, today: string): number {
  let streak = 0;
  let day = today;
  // Today not yet checked in does not break the streak.
  if (!countsOnItsOwn(habit, entries.get(day))) day = addDays(day, -1);
  while (countsOnItsOwn(habit, entries.get(day))) {
    streak++;
    day = addDays(day, -1);
  }
  return streak;
}

/**
 * How many skipped days lie in the current streak of `length` days (as far as
 * `entries` reach). The streak ends today when today counts, else yesterday.
 */
export function skipsInStreak(habit: Pick<Habit, 'target'>, entries: Map<string, Entry>, today: string, length: number): number {
  if (length <= 0) return 0;
  const end = countsOnItsOwn(habit, entries.get(today)) ? today : addDays(today, -1);
  let skips = 0;
  for (let i = 0; i < length; i++) {
    if (entries.get(addDays(end, -i))?.status === 'skipped') skips++;
  }
  return skips;
}

export interface Standing {
  /** Done for now: today is done or skipped, or (not daily) the period's goal is met. */
  handled: boolean;
  /** False for a weekday habit on a day it is not due: Today lists it apart. */
  due: boolean;
  /** Progress in the habit's own window ending today, from `entries`. */
  window: { done: number; target: number; days: number };
}

/**
 * Where a habit stands today, from its recent entries: what "4 of 6 done" counts
 * and what puts a habit first on Today (not handled yet means due).
 */
export function standing(habit: Pick<Habit, 'kind' | 'target' | 'frequency'>, entries: Map<string, Entry>, today: string): Standing {
  // A weekday habit's window is the week ending today, against its due days in it.
  const { times, days } = timesInDays(habit.frequency);
  let done = 0;
  for (let i = 0; i < days; i++) {
    const e = entries.get(addDays(today, -i));
    if (!e) continue;
    if (habit.kind === 'measurable') done += dayValue(e);
    else if (e.status === 'done') done += 1;
  }
  done = Number(done.toPrecision(12));
  const perDay = habit.kind === 'measurable' ? habit.target?.value ?? 0 : 1;
  const target = habit.kind === 'measurable' ? ('weekdays' in habit.frequency ? perDay * times : perDay) : times;
  const todayState = cellState(habit, entries.get(today));
  let handled = todayState === 'done' || todayState === 'skipped';
  if (!handled && !isDaily(habit)) {
    handled = habit.kind === 'measurable' ? habit.target?.type === 'at_least' && done >= target : done >= target;
  }
  return { handled, due: isDueOn(habit, today), window: { done, target, days } };
}
