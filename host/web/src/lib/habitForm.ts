// The habit form: its fields as typed, the checks the host makes (habits.rs), and
// the body sent. Checking here too means a mistake is named before a round trip.
import { formatNumber } from './format';
import type { Habit, HabitInput, HabitKind, TargetType } from './types';

export interface HabitFormValues {
  name: string;
  description: string;
  kind: HabitKind;
  unit: string;
  targetValue: string;
  targetType: TargetType;
  times: string;
  days: string;
  color: string;
  reminder: string;
}

export type HabitFormErrors = Partial<Record<keyof HabitFormValues, string>>;

export const DEFAULT_COLOR = '#5b54e8';

/**
 * The ways of saying how often, each a shape of the API's `{times, days}`:
 * every day (1 in 1), N times a week (N in 7), N times a month (N in 30), or any
 * other N in D. Specific weekdays (Mon, Wed, Fri) need a schedule the API does not
 * have yet, so they are not offered.
 */
export type FrequencyPreset = 'daily' | 'weekly' | 'monthly' | 'custom';

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
      return { times, days };
  }
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
    color: DEFAULT_COLOR,
    reminder: '',
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
    times: String(h.frequency.times),
    days: String(h.frequency.days),
    color: h.color,
    reminder: h.reminder ?? '',
  };
}

function wholeNumber(s: string): number | null {
  return /^\s*\d+\s*$/.test(s) ? Number(s) : null;
}

/** The field errors, empty when the form can be sent. */
export function validateHabitForm(v: HabitFormValues): HabitFormErrors {
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
  if (times === null || times < 1) errors.times = 'At least 1.';
  if (days === null || days < 1 || days > 366) errors.days = 'Between 1 and 366 days.';
  else if (times !== null && times > days) errors.times = `At most ${days} (one a day).`;
  if (!/^#[0-9a-fA-F]{6}$/.test(v.color)) errors.color = 'A color like #5b54e8.';
  if (v.reminder && !/^([01]\d|2[0-3]):[0-5]\d$/.test(v.reminder)) errors.reminder = 'A time like 07:30.';
  return errors;
}

/** The body for POST /api/habits or PATCH /api/habits/{id} (valid values only). */
export function habitFormToInput(v: HabitFormValues): HabitInput {
  const measurable = v.kind === 'measurable';
  return {
    name: v.name.trim(),
    description: v.description.trim(),
    kind: v.kind,
    unit: measurable && v.unit.trim() ? v.unit.trim() : null,
    target: measurable ? { value: Number(v.targetValue), type: v.targetType } : null,
    frequency: { times: Number(v.times), days: Number(v.days) },
    color: v.color.toLowerCase(),
    reminder: v.reminder || null,
  };
}

/** "Every day", "3 times every 7 days", "Once every 2 days". */
export function describeFrequency(f: { times: number; days: number }): string {
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
