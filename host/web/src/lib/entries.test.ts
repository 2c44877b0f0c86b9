import { describe, expect, it } from 'vitest';
import { addAmount, amountStep, byDate, cellState, currentStreak, entryToInput, quickAmounts, skipsInStreak, standing, toggleDone } from './entries';
import type { Entry } from './types';

const entry = (date: string, over: Partial<Entry> = {}): Entry => ({ habit_id: 'h', date, status: 'done', value: null, note: null, source: 'manual', ...over });
const yesNo = { kind: 'boolean' as const, target: null, frequency: { times: 1, days: 1 } };
const water = { kind: 'measurable' as const, target: { value: 2, type: 'at_least' as const }, frequency: { times: 1, days: 1 } };

describe('a tap never writes a number', () => {
  it('toggles a yes/no day between done and not done, keeping the note', () => {
    expect(toggleDone(undefined)).toEqual({ status: 'done' });
    expect(toggleDone(entry('d'))).toBeNull();
    expect(toggleDone(entry('d', { status: 'skipped', note: 'ill' }))).toEqual({ status: 'done', note: 'ill' });
  });

  it('adds a quick amount to the typed value instead of replacing it', () => {
    expect(addAmount(entry('d', { status: 'value', value: 1.25 }), 0.25)).toEqual({ value: 1.5 });
    expect(addAmount(entry('d', { status: 'value', value: 0.1, note: 'n' }), 0.2)).toEqual({ value: 0.3, note: 'n' });
    expect(addAmount(undefined, 0.5)).toEqual({ value: 0.5 });
    expect(addAmount(entry('d', { status: 'skipped' }), 0.5)).toEqual({ value: 0.5 });
  });

  it('puts an entry back exactly as it was (undo)', () => {
    expect(entryToInput(undefined)).toBeNull();
    expect(entryToInput(entry('d', { status: 'value', value: 1.25, note: 'x' }))).toEqual({ value: 1.25, note: 'x' });
    expect(entryToInput(entry('d', { status: 'skipped' }))).toEqual({ status: 'skipped' });
  });

  it('steps by a round share of the target', () => {
    expect(amountStep(water)).toBe(0.25);
    expect(quickAmounts(water)).toEqual([0.25, 0.5, 1]);
    expect(amountStep({ target: { value: 30, type: 'at_most' } })).toBe(2.5);
    expect(amountStep({ target: { value: 10000, type: 'at_least' } })).toBe(1000);
    expect(amountStep({ target: { value: 5, type: 'at_least' } })).toBe(0.5);
    expect(amountStep({ target: null })).toBe(1);
  });
});

describe('cells', () => {
  it('shows a value under an at-least target as partial, over an at-most target as partial', () => {
    expect(cellState(water, entry('d', { status: 'value', value: 1 }))).toBe('partial');
    expect(cellState(water, entry('d', { status: 'value', value: 2 }))).toBe('done');
    const coffee = { target: { value: 2, type: 'at_most' as const } };
    expect(cellState(coffee, entry('d', { status: 'value', value: 3 }))).toBe('partial');
    expect(cellState(coffee, entry('d', { status: 'value', value: 0 }))).toBe('done');
  });
});

describe('streaks (fallback) and skips in them', () => {
  it('counts the current streak, not broken by an unchecked today, run through skips', () => {
    const map = byDate([entry('2026-11-20'), entry('2026-11-21', { status: 'skipped' }), entry('2026-11-22')]);
    expect(currentStreak(yesNo, map, '2026-11-23')).toBe(3);
    expect(currentStreak(yesNo, map, '2026-11-24')).toBe(0);
    expect(skipsInStreak(yesNo, map, '2026-11-23', 3)).toBe(1);
    expect(skipsInStreak(yesNo, map, '2026-11-23', 0)).toBe(0);
  });
});

describe('standing: what "4 of 6 done" counts', () => {
  const today = '2026-11-23';
  it('a daily habit is done for today when today is done or skipped', () => {
    expect(standing(yesNo, byDate([]), today).handled).toBe(false);
    expect(standing(yesNo, byDate([entry(today)]), today).handled).toBe(true);
    expect(standing(yesNo, byDate([entry(today, { status: 'skipped' })]), today).handled).toBe(true);
    expect(standing(water, byDate([entry(today, { status: 'value', value: 1.25 })]), today)).toEqual({ handled: false, due: true, window: { done: 1.25, target: 2, days: 1 } });
  });

  it('a 3-times-a-week habit counts its week', () => {
    const run = { kind: 'boolean' as const, target: null, frequency: { times: 3, days: 7 } };
    const two = byDate([entry('2026-11-18'), entry('2026-11-21')]);
    expect(standing(run, two, today)).toEqual({ handled: false, due: true, window: { done: 2, target: 3, days: 7 } });
    const three = byDate([entry('2026-11-17'), entry('2026-11-18'), entry('2026-11-21')]);
    expect(standing(run, three, today).handled).toBe(true);
    // Outside the window: 2026-11-16 is 8 days back.
    expect(standing(run, byDate([entry('2026-11-16'), entry('2026-11-18'), entry('2026-11-21')]), today).handled).toBe(false);
  });

  it('a Mon/Wed/Fri habit is due on those days only, and counts its week against them', () => {
    const gym = { kind: 'boolean' as const, target: null, frequency: { weekdays: [1, 3, 5] } };
    // 2026-11-23 is a Monday: due, not handled until done.
    const week = byDate([entry('2026-11-18'), entry('2026-11-20')]);
    expect(standing(gym, week, today)).toEqual({ handled: false, due: true, window: { done: 2, target: 3, days: 7 } });
    expect(standing(gym, byDate([entry(today)]), today).handled).toBe(true);
    // Tuesday: not due, whatever was done.
    expect(standing(gym, week, '2026-11-24').due).toBe(false);
    // A measurable weekday habit's week holds its target once per due day.
    const yoga = { kind: 'measurable' as const, target: { value: 30, type: 'at_least' as const }, frequency: { weekdays: [2, 4] } };
    expect(standing(yoga, byDate([entry('2026-11-20', { status: 'value', value: 30 })]), today).window).toEqual({ done: 30, target: 60, days: 7 });
  });
});
