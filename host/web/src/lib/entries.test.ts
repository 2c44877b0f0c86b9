import { describe, expect, it } from 'vitest';
import { addDays } from './dates';
import { byDate, cellState, currentStreak, nextEntry } from './entries';
import type { Entry } from './types';

const entry = (date: string, over: Partial<Entry> = {}): Entry => ({ habit_id: 'h', date, status: 'done', value: null, note: null, source: 'manual', ...over });
const yesNo = { kind: 'boolean' as const, target: null };
const water = { kind: 'measurable' as const, target: { value: 2, type: 'at_least' as const } };

describe('cells', () => {
  it('cycles a yes/no day: empty → done → skipped → empty', () => {
    expect(nextEntry(yesNo, undefined)).toEqual({ status: 'done' });
    expect(nextEntry(yesNo, entry('d'))).toEqual({ status: 'skipped' });
    expect(nextEntry(yesNo, entry('d', { status: 'skipped' }))).toBeNull();
  });

  it('records the target for a measurable day and keeps notes', () => {
    expect(nextEntry(water, undefined)).toEqual({ value: 2 });
    expect(nextEntry(water, entry('d', { status: 'value', value: 1, note: 'tired' }))).toEqual({ value: 2, note: 'tired' });
    expect(nextEntry(water, entry('d', { status: 'value', value: 3 }))).toEqual({ status: 'skipped' });
  });

  it('shows a value under an at-least target as partial, over an at-most target as partial', () => {
    expect(cellState(water, entry('d', { status: 'value', value: 1 }))).toBe('partial');
    expect(cellState(water, entry('d', { status: 'value', value: 2 }))).toBe('done');
    const coffee = { target: { value: 2, type: 'at_most' as const } };
    expect(cellState(coffee, entry('d', { status: 'value', value: 3 }))).toBe('partial');
    expect(cellState(coffee, entry('d', { status: 'value', value: 0 }))).toBe('done');
  });

  it('counts the current streak, not broken by an unchecked today', () => {
    const map = byDate([entry('2026-11-20'), entry('2026-11-21'), entry('2026-11-22')]);
    expect(currentStreak(yesNo, map, '2026-11-23', addDays)).toBe(3);
    expect(currentStreak(yesNo, map, '2026-11-24', addDays)).toBe(0);
  });
});
