// The habit form: its fields as typed, the checks the host makes (habits.rs), and
// the body sent. Checking here too means a mistake is named before a round trip.
import { formatNumber, timesInDays, weekdaysOf } from './format';
import type { Frequency, Habit, HabitInput, HabitKind, Reminder, TargetType } from './types';

export interface HabitFormValues {
  name: string;
  description: string;
  kind: HabitKind;
  unit: string;
  targetValue: string;
  targetType: TargetType;
  times: string;
  days: string;
  /** The ISO weekdays of a weekday habit (preset `weekdays`). */
  weekdays: number[];
  color: string;
  reminders: ReminderRow[];
  /** Empty for no group. */
  group: string;
}

/** One reminder as edited: a time `HH:MM` (empty while unset) and ISO weekdays. */
export interface ReminderRow {
  time: string;
  days: number[];
}

export type HabitFormErrors = Partial<Record<keyof HabitFormValues, string>>;

/** The longest group name (the host's limit). */
export const MAX_GROUP_CHARS = 40;

/** The most reminders a habit may have (the host's limit). */
export const MAX_REMINDERS = 10;

/** ISO weekdays (1 = Monday) with their names, in order. */
export const WEEKDAYS: { day: number; short: string; long: string }[] = [
  { day: 1, short: 'Mo', long: 'Monday' },
  { day: 2, short: 'Tu', long: 'Tuesday' },
  { day: 3, short: 'We', long: 'Wednesday' },
  { day: 4, short: 'Th', long: 'Thursday' },
  { day: 5, short: 'Fr', long: 'Friday' },
  { day: 6, short: 'Sa', long: 'Saturday' },
  { day: 7, short: 'Su', long: 'Sunday' },
];

const EVERY_DAY = [1, 2, 3, 4, 5, 6, 7];

/** The rows with a new one at the end (every day, at 08:00 or an hour after the last). */
export function addReminder(rows: ReminderRow[]): ReminderRow[] {
  if (rows.length >= MAX_REMINDERS) return rows;
  const last = rows[rows.length - 1]?.time;
  const hour = last && /^\d\d:\d\d$/.test(last) ? (Number(last.slice(0, 2)) + 1) % 24 : 8;
  return [...rows, { time: `${String(hour).padStart(2, '0')}:00`, days: [...EVERY_DAY] }];
}

export function removeReminder(rows: ReminderRow[], index: number): ReminderRow[] {
  return rows.filter((_, i) => i !== index);
}

/** The row with `day` switched on or off, days kept sorted. */
export function toggleReminderDay(row: ReminderRow, day: number): ReminderRow {
  const days = row.days.includes(day) ? row.days.filter((d) => d !== day) : [...row.days, day].sort((a, b) => a - b);
  return { ...row, days };
}

/** "Every day", "Weekdays", "Weekends", "Mo, We, Fr". */
export function describeDays(days: number[]): string {
  const set = [...new Set(days)].sort((a, b) => a - b).join(',');
  if (set === '1,2,3,4,5,6,7') return 'Every day';
  if (set === '1,2,3,4,5') return 'Weekdays';
  if (set === '6,7') return 'Weekends';
  return WEEKDAYS.filter((w) => days.includes(w.day))
    .map((w) => w.short)
    .join(', ');
}

/** What is wrong with the reminders, as the host checks them; undefined when nothing. */
export function validateReminders(rows: ReminderRow[]): string | undefined {
  if (rows.length > MAX_REMINDERS) return `At most ${MAX_REMINDERS} reminders.`;
  for (const [i, row] of rows.entries()) {
    const n = i + 1;
    if (!/^([01]\d|2[0-3]):[0-5]\d$/.test(row.time)) return `Reminder ${n}: a time like 07:30.`;
    if (row.days.length === 0) return `Reminder ${n}: choose at least one day.`;
    const clash = rows.slice(0, i).findIndex((o) => o.time === row.time && o.days.some((d) => row.days.includes(d)));
    if (clash >= 0) return `Reminder ${n}: reminder ${clash + 1} is already at ${row.time} on one of these days.`;
  }
  return undefined;
}

export const DEFAULT_COLOR = '#5b54e8';

/**
 * The ways of saying how often: every day (1 in 1), N times a week (N in 7), N
 * times a month (N in 30), any other N in D (the API's `{times, days}`), or on
 * fixed weekdays (the API's `{weekdays}`).
 */
export type FrequencyPreset = 'daily' | 'weekly' | 'monthly' | 'custom' | 'weekdays';

/** The preset that shows `times` in `days` (as the form's text fields). */
export function frequencyPreset(times: string, days: string): FrequencyPreset {
  const t = Number(times);
  const d = Number(days);
  if (t === 1 && d === 1) return 'daily';
  if (d === 7 && t >= 1 && t <= 6) return 'weekly';
  if (d === 30 && t >= 1 && t <= 29) return 'monthly';
  return 'custom';
}

/** The fields a preset sets, keeping a sensible number of times. */
export function applyPreset(preset: FrequencyPreset, times: string, days: string): { times: string; days: string } {
  // Coming from "every day", 1 a week would be a surprise: start from 3 (or 10).
  const t = Number(days) === 1 ? 0 : Number(times);
  switch (preset) {
    case 'daily':
      return { times: '1', days: '1' };
    case 'weekly':
      return { times: String(t >= 1 && t <= 6 ? t : 3), days: '7' };
    case 'monthly':
      return { times: String(t >= 1 && t <= 29 ? t : 10), days: '30' };
    case 'custom':
    case 'weekdays':
      return { times, days };
  }
}

/** The preset a habit's form opens with. */
export function presetOf(v: HabitFormValues, weekdays: boolean): FrequencyPreset {
  return weekdays ? 'weekdays' : frequencyPreset(v.times, v.days);
}

export function emptyHabitForm(): HabitFormValues {
  return {
    name: '',
    description: '',
    kind: 'boolean',
    unit: '',
    targetValue: '',
    targetType: 'at_least',
    times: '1',
    days: '1',
    weekdays: [1, 3, 5],
    color: DEFAULT_COLOR,
    reminders: [],
    group: '',
  };
}

export function habitToForm(h: Habit): HabitFormValues {
  return {
    name: h.name,
    description: h.description,
    kind: h.kind,
    unit: h.unit ?? '',
    targetValue: h.target ? String(h.target.value) : '',
    targetType: h.target?.type ?? 'at_least',
    times: String(timesInDays(h.frequency).times),
    days: String(timesInDays(h.frequency).days),
    weekdays: weekdaysOf(h.frequency) ?? [1, 3, 5],
    color: h.color,
    reminders: (h.reminders ?? []).map((r) => ({ time: r.time, days: [...r.days] })),
    group: h.group ?? '',
  };
}

function wholeNumber(s: string): number | null {
  return /^\s*\d+\s*$/.test(s) ? Number(s) : null;
}

/** The field errors, empty when the form can be sent (`weekdays`: the preset). */
export function validateHabitForm(v: HabitFormValues, weekdays = false): HabitFormErrors {
  const errors: HabitFormErrors = {};
  const name = v.name.trim();
  if (!name) errors.name = 'Give the habit a name.';
  else if (name.length > 200) errors.name = 'At most 200 characters.';
  if (v.description.length > 2000) errors.description = 'At most 2000 characters.';
  if (v.kind === 'measurable') {
    const target = Number(v.targetValue);
    if (v.targetValue.trim() === '' || !Number.isFinite(target)) errors.targetValue = 'Enter a target number.';
    else if (target < 0) errors.targetValue = 'The target cannot be negative.';
    if (v.unit.length > 40) errors.unit = 'At most 40 characters.';
  }
  const times = wholeNumber(v.times);
  const days = wholeNumber(v.days);
  if (weekdays) {
    if (v.weekdays.length === 0) errors.weekdays = 'Choose at least one day.';
  } else {
    if (times === null || times < 1) errors.times = 'At least 1.';
    if (days === null || days < 1 || days > 366) errors.days = 'Between 1 and 366 days.';
    else if (times !== null && times > days) errors.times = `At most ${days} (one a day).`;
  }
  if (!/^#[0-9a-fA-F]{6}$/.test(v.color)) errors.color = 'A color like #5b54e8.';
  if (v.group.trim().length > MAX_GROUP_CHARS) errors.group = `At most ${MAX_GROUP_CHARS} characters.`;
  const reminders = validateReminders(v.reminders);
  if (reminders) errors.reminders = reminders;
  return errors;
}

/** The body for POST /api/habits or PATCH /api/habits/{id} (valid values only). */
export function habitFormToInput(v: HabitFormValues, weekdays = false): HabitInput {
  const measurable = v.kind === 'measurable';
  return {
    name: v.name.trim(),
    description: v.description.trim(),
    kind: v.kind,
    unit: measurable && v.unit.trim() ? v.unit.trim() : null,
    target: measurable ? { value: Number(v.targetValue), type: v.targetType } : null,
    frequency: weekdays ? { weekdays: [...new Set(v.weekdays)].sort((a, b) => a - b) } : { times: Number(v.times), days: Number(v.days) },
    color: v.color.toLowerCase(),
    reminders: v.reminders.map((r): Reminder => ({ time: r.time, days: [...new Set(r.days)].sort((a, b) => a - b) })),
    group: v.group.trim() || null,
  };
}

/** "Every day", "3 times a week", "Once every 2 days", "Mo, We, Fr". */
export function describeFrequency(frequency: Frequency): string {
  if ('weekdays' in frequency) return describeDays(frequency.weekdays);
  const f = frequency;
  if (f.times === 1 && f.days === 1) return 'Every day';
  if (f.days === 7) return f.times === 1 ? 'Once a week' : `${f.times} times a week`;
  if (f.days === 30) return f.times === 1 ? 'Once a month' : `${f.times} times a month`;
  const times = f.times === 1 ? 'Once' : `${f.times} times`;
  return `${times} every ${f.days} days`;
}

/** "≥ 2 l", "≤ 30 min". */
export function describeTarget(h: Pick<Habit, 'target' | 'unit'>): string {
  if (!h.target) return '';
  const sign = h.target.type === 'at_least' ? '≥' : '≤';
  return `${sign} ${formatNumber(h.target.value)}${h.unit ? ' ' + h.unit : ''}`;
}
