// Numbers as people read them: values as they were entered, streaks that say
// nothing rather than "0-day streak", and progress for habits that are not daily
// ("2 of 3 this week") instead of a streak counted in days.
import { weekdayIndex } from './dates';
import type { Frequency, Habit } from './types';

/**
 * A value as the user entered it: 1.25 stays 1.25, 2 stays 2. Floating-point
 * noise (0.1 + 0.2) is dropped; nothing is rounded to fewer digits than typed.
 */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return '';
  return String(Number(v.toPrecision(12)));
}

/** A value with its unit: `1.25 l`, `3`. */
export function withUnit(v: number, unit: string | null | undefined): string {
  return unit ? `${formatNumber(v)} ${unit}` : formatNumber(v);
}

/**
 * A value in a day cell (about 5 characters fit): exact when it fits (1.25,
 * 12.75, 10000), otherwise shortened (12.3k, 1.23M, 3.142). The cell's label
 * always carries the exact value.
 */
export function formatCellValue(v: number): string {
  const exact = formatNumber(v);
  if (exact.length <= 5) return exact;
  const abs = Math.abs(v);
  if (abs >= 1000) {
    const [n, suffix] = abs >= 1e9 ? [v / 1e9, 'G'] : abs >= 1e6 ? [v / 1e6, 'M'] : [v / 1e3, 'k'];
    for (const digits of [3, 2, 1]) {
      const s = String(Number(n.toPrecision(digits))) + suffix;
      if (s.length <= 5) return s;
    }
    return String(Math.round(n)) + suffix;
  }
  for (const digits of [4, 3, 2, 1]) {
    const s = String(Number(v.toPrecision(digits)));
    if (s.length <= 5) return s;
  }
  return exact;
}

/** "today", "this week", "in 30 days": the rolling window a habit is judged over. */
export function periodName(days: number): string {
  if (days === 1) return 'today';
  if (days === 7) return 'this week';
  return `in the last ${days} days`;
}

/** A weekday habit's ISO weekdays (1 = Monday); null for one due `times` in `days`. */
export function weekdaysOf(f: Frequency): number[] | null {
  return 'weekdays' in f ? f.weekdays : null;
}

/** As `times` in every `days`: a weekday habit is its count of weekdays in 7. */
export function timesInDays(f: Frequency): { times: number; days: number } {
  return 'weekdays' in f ? { times: f.weekdays.length, days: 7 } : f;
}

/** Whether the habit is due on `date`: every day, unless it has weekdays. */
export function isDueOn(habit: Pick<Habit, 'frequency'>, date: string): boolean {
  const weekdays = weekdaysOf(habit.frequency);
  return weekdays === null || weekdays.includes(weekdayIndex(date) + 1);
}

/**
 * A habit is "daily" when every day it is due counts on its own: 1 time in 1 day,
 * or on fixed weekdays.
 */
export function isDaily(habit: Pick<Habit, 'frequency'>): boolean {
  const f = habit.frequency;
  return 'weekdays' in f || f.times === f.days;
}

/**
 * The current streak in words, or null for none: a streak of 0 says nothing.
 * `skips` is how many skipped days the streak holds (the bundled rules, like
 * Loop Habit Tracker, count a skipped day as part of a streak).
 */
export function streakText(days: number, skips = 0): string | null {
  if (!Number.isFinite(days) || days <= 0) return null;
  const base = `${days}-day streak`;
  if (skips <= 0) return base;
  return `${base} incl. ${skips} ${skips === 1 ? 'skip' : 'skips'}`;
}

/** Progress in the habit's window: "2 of 3 this week", "1.25 of 2 l today". */
export function progressText(
  habit: Pick<Habit, 'kind' | 'unit' | 'target' | 'frequency'>,
  window: { done: number; target: number; days: number },
): string {
  const period = periodName(window.days);
  if (habit.kind === 'measurable') {
    const limit = habit.target?.type === 'at_most' ? 'at most ' : '';
    return `${formatNumber(window.done)} of ${limit}${withUnit(window.target, habit.unit)} ${period}`;
  }
  return `${formatNumber(window.done)} of ${formatNumber(window.target)} ${period}`;
}

/** A score 0..1 as a whole percentage. */
export function percent(score: number): string {
  return `${Math.round(Math.max(0, Math.min(1, score)) * 100)}%`;
}

/** Plural with the number: `1 habit`, `3 habits`. */
export function count(n: number, one: string, many = one + 's'): string {
  return `${n} ${n === 1 ? one : many}`;
}
