import { describe, expect, it } from 'vitest';
import { addReminder, applyPreset, describeDays, describeFrequency, describeTarget, emptyHabitForm, frequencyPreset, habitFormToInput, presetOf, habitToForm, removeReminder, toggleReminderDay, validateHabitForm, validateReminders } from './habitForm';
import type { Habit } from './types';

const form = (over: Partial<ReturnType<typeof emptyHabitForm>>) => ({ ...emptyHabitForm(), name: 'Floss teeth', ...over });

describe('validateHabitForm', () => {
  it('accepts a daily yes/no habit', () => {
    expect(validateHabitForm(form({}))).toEqual({});
  });

  it('names each field at fault', () => {
    const errors = validateHabitForm(form({ name: '  ', times: '0', days: '400', color: 'red', reminders: [{ time: '25:00', days: [1] }] }));
    expect(Object.keys(errors).sort()).toEqual(['color', 'days', 'name', 'reminders', 'times']);
  });

  it('needs a target for a measurable habit, never negative', () => {
    expect(validateHabitForm(form({ kind: 'measurable' })).targetValue).toBeDefined();
    expect(validateHabitForm(form({ kind: 'measurable', targetValue: '-1' })).targetValue).toMatch(/negative/);
    expect(validateHabitForm(form({ kind: 'measurable', targetValue: '2.5' }))).toEqual({});
  });

  it('refuses more times than days, as the host does', () => {
    expect(validateHabitForm(form({ times: '4', days: '3' })).times).toBe('At most 3 (one a day).');
    expect(validateHabitForm(form({ times: '3', days: '7' }))).toEqual({});
    expect(validateHabitForm(form({ times: '1.5' })).times).toBeDefined();
  });
});

describe('habitFormToInput', () => {
  it('sends no target or unit for a yes/no habit', () => {
    expect(habitFormToInput(form({ unit: 'km', targetValue: '5' }))).toMatchObject({ kind: 'boolean', unit: null, target: null, reminders: [] });
  });

  it('sends the target of a measurable habit', () => {
    const input = habitFormToInput(form({ name: ' Water ', kind: 'measurable', unit: 'l', targetValue: '2', targetType: 'at_least', times: '1', days: '1', reminders: [{ time: '07:30', days: [3, 1, 3] }], color: '#ABCDEF' }));
    expect(input).toEqual({ name: 'Water', description: '', kind: 'measurable', unit: 'l', target: { value: 2, type: 'at_least' }, frequency: { times: 1, days: 1 }, color: '#abcdef', reminders: [{ time: '07:30', days: [1, 3] }], group: null });
  });

  it('round-trips a habit through the form', () => {
    const habit: Habit = { id: 'h', name: 'Run', description: 'outside', color: '#059669', kind: 'measurable', unit: 'km', target: { value: 5, type: 'at_most' }, frequency: { times: 3, days: 7 }, reminders: [{ time: '07:30', days: [6, 7] }], archived: false, position: 1, group: 'Sport', created: '2026-11-01' };
    const input = habitFormToInput(habitToForm(habit));
    expect(input).toMatchObject({ name: 'Run', description: 'outside', unit: 'km', target: { value: 5, type: 'at_most' }, frequency: { times: 3, days: 7 }, group: 'Sport' });
  });

  it('sends a weekday habit as its weekdays, sorted, and round-trips it', () => {
    expect(habitFormToInput(form({ name: 'Gym', weekdays: [5, 1, 3] }), true).frequency).toEqual({ weekdays: [1, 3, 5] });
    expect(validateHabitForm(form({ name: 'Gym', weekdays: [] }), true).weekdays).toBe('Choose at least one day.');
    // times/days are not checked for a weekday habit.
    expect(validateHabitForm(form({ name: 'Gym', times: '0' }), true)).toEqual({});
    const habit: Habit = { id: 'h', name: 'Gym', description: '', color: '#059669', kind: 'boolean', unit: null, target: null, frequency: { weekdays: [1, 3, 5] }, reminders: [], archived: false, position: 1, group: null, created: '2026-11-01' };
    const values = habitToForm(habit);
    expect(values.weekdays).toEqual([1, 3, 5]);
    expect(presetOf(values, true)).toBe('weekdays');
    expect(habitFormToInput(values, true).frequency).toEqual({ weekdays: [1, 3, 5] });
  });
});

describe('groups', () => {
  it('are trimmed, sent as null when empty, and at most 40 characters', () => {
    expect(habitFormToInput(form({ name: 'Run', group: '  Morning ' })).group).toBe('Morning');
    expect(habitFormToInput(form({ name: 'Run', group: '   ' })).group).toBeNull();
    expect(validateHabitForm(form({ name: 'Run', group: 'x'.repeat(41) })).group).toBe('At most 40 characters.');
    expect(validateHabitForm(form({ name: 'Run', group: 'x'.repeat(40) })).group).toBeUndefined();
  });
});

describe('descriptions', () => {
  it('says how often and how much', () => {
    expect(describeFrequency({ times: 1, days: 1 })).toBe('Every day');
    expect(describeFrequency({ times: 3, days: 7 })).toBe('3 times a week');
    expect(describeFrequency({ times: 1, days: 2 })).toBe('Once every 2 days');
    expect(describeFrequency({ weekdays: [1, 3, 5] })).toBe('Mo, We, Fr');
    expect(describeFrequency({ weekdays: [1, 2, 3, 4, 5] })).toBe('Weekdays');
    expect(describeTarget({ target: { value: 2, type: 'at_least' }, unit: 'l' })).toBe('≥ 2 l');
    expect(describeTarget({ target: { value: 30, type: 'at_most' }, unit: null })).toBe('≤ 30');
  });
});

describe('frequency presets', () => {
  it('name the shapes of {times, days} people use', () => {
    expect(frequencyPreset('1', '1')).toBe('daily');
    expect(frequencyPreset('3', '7')).toBe('weekly');
    expect(frequencyPreset('7', '7')).toBe('custom');
    expect(frequencyPreset('10', '30')).toBe('monthly');
    expect(frequencyPreset('1', '2')).toBe('custom');
  });

  it('set the fields, keeping the times where they fit', () => {
    expect(applyPreset('weekly', '1', '1')).toEqual({ times: '3', days: '7' });
    expect(applyPreset('weekly', '5', '30')).toEqual({ times: '5', days: '7' });
    expect(applyPreset('daily', '3', '7')).toEqual({ times: '1', days: '1' });
    expect(applyPreset('monthly', '3', '7')).toEqual({ times: '3', days: '30' });
    expect(applyPreset('custom', '2', '3')).toEqual({ times: '2', days: '3' });
  });

  it('describe a month', () => {
    expect(describeFrequency({ times: 4, days: 30 })).toBe('4 times a month');
  });
});

describe('reminders', () => {
  it('adds rows every day, an hour after the last, at most ten, and removes them', () => {
    let rows = addReminder([]);
    expect(rows).toEqual([{ time: '08:00', days: [1, 2, 3, 4, 5, 6, 7] }]);
    rows = addReminder(rows);
    expect(rows[1]?.time).toBe('09:00');
    for (let i = 0; i < 20; i++) rows = addReminder(rows);
    expect(rows).toHaveLength(10);
    expect(removeReminder(rows, 0)[0]?.time).toBe('09:00');
  });

  it('toggles weekdays, kept sorted, and describes them', () => {
    const row = toggleReminderDay(toggleReminderDay({ time: '07:00', days: [6] }, 1), 6);
    expect(row.days).toEqual([1]);
    expect(toggleReminderDay(row, 3).days).toEqual([1, 3]);
    expect(describeDays([1, 2, 3, 4, 5])).toBe('Weekdays');
    expect(describeDays([7, 6])).toBe('Weekends');
    expect(describeDays([1, 3, 5])).toBe('Mo, We, Fr');
    expect(describeDays([1, 2, 3, 4, 5, 6, 7])).toBe('Every day');
  });

  it('refuses what the host refuses, naming the reminder', () => {
    expect(validateReminders([{ time: '07:00', days: [1] }, { time: '07:00', days: [2] }])).toBeUndefined();
    expect(validateReminders([{ time: '', days: [1] }])).toBe('Reminder 1: a time like 07:30.');
    expect(validateReminders([{ time: '07:00', days: [] }])).toBe('Reminder 1: choose at least one day.');
    expect(validateReminders([{ time: '07:00', days: [1, 2] }, { time: '07:00', days: [2, 3] }])).toMatch(/^Reminder 2: reminder 1 is already at 07:00/);
  });
});
