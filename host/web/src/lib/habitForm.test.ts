import { describe, expect, it } from 'vitest';
import { applyPreset, describeFrequency, describeTarget, emptyHabitForm, frequencyPreset, habitFormToInput, habitToForm, validateHabitForm } from './habitForm';
import type { Habit } from './types';

const form = (over: Partial<ReturnType<typeof emptyHabitForm>>) => ({ ...emptyHabitForm(), name: 'Floss teeth', ...over });

describe('validateHabitForm', () => {
  it('accepts a daily yes/no habit', () => {
    expect(validateHabitForm(form({}))).toEqual({});
  });

  it('names each field at fault', () => {
    const errors = validateHabitForm(form({ name: '  ', times: '0', days: '400', color: 'red', reminder: '25:00' }));
    expect(Object.keys(errors).sort()).toEqual(['color', 'days', 'name', 'reminder', 'times']);
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
    expect(habitFormToInput(form({ unit: 'km', targetValue: '5' }))).toMatchObject({ kind: 'boolean', unit: null, target: null, reminder: null });
  });

  it('sends the target of a measurable habit', () => {
    const input = habitFormToInput(form({ name: ' Water ', kind: 'measurable', unit: 'l', targetValue: '2', targetType: 'at_least', times: '1', days: '1', reminder: '07:30', color: '#ABCDEF' }));
    expect(input).toEqual({ name: 'Water', description: '', kind: 'measurable', unit: 'l', target: { value: 2, type: 'at_least' }, frequency: { times: 1, days: 1 }, color: '#abcdef', reminder: '07:30' });
  });

  it('round-trips a habit through the form', () => {
    const habit: Habit = { id: 'h', name: 'Run', description: 'outside', color: '#059669', kind: 'measurable', unit: 'km', target: { value: 5, type: 'at_most' }, frequency: { times: 3, days: 7 }, reminder: null, archived: false, position: 1, created: '2026-11-01' };
    const input = habitFormToInput(habitToForm(habit));
    expect(input).toMatchObject({ name: 'Run', description: 'outside', unit: 'km', target: { value: 5, type: 'at_most' }, frequency: { times: 3, days: 7 } });
  });
});

describe('descriptions', () => {
  it('says how often and how much', () => {
    expect(describeFrequency({ times: 1, days: 1 })).toBe('Every day');
    expect(describeFrequency({ times: 3, days: 7 })).toBe('3 times a week');
    expect(describeFrequency({ times: 1, days: 2 })).toBe('Once every 2 days');
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
