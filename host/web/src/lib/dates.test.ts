import { describe, expect, it } from 'vitest';
import { addDays, dayLabel, daysBetween, heatmapWeeks, isDate, lastDays, relativeTime, weekdayIndex } from './dates';

describe('dates', () => {
  it('checks real calendar dates', () => {
    expect(isDate('2026-11-23')).toBe(true);
    expect(isDate('2024-02-29')).toBe(true);
    expect(isDate('2026-02-29')).toBe(false);
    expect(isDate('2026-13-01')).toBe(false);
    expect(isDate('26-11-23')).toBe(false);
  });

  it('adds days across months, years and DST changes', () => {
    expect(addDays('2026-12-31', 1)).toBe('2027-01-01');
    expect(addDays('2024-03-01', -1)).toBe('2024-02-29');
    expect(addDays('2026-03-29', 1)).toBe('2026-03-30');
    expect(addDays('2026-10-25', 1)).toBe('2026-10-26');
    expect(daysBetween('2026-01-01', '2027-01-01')).toBe(365);
  });

  it('lists the last n days oldest first', () => {
    expect(lastDays('2026-11-23', 3)).toEqual(['2026-11-21', '2026-11-22', '2026-11-23']);
  });

  it('names weekdays with Monday first', () => {
    expect(weekdayIndex('2026-11-23')).toBe(0); // a Monday
    expect(weekdayIndex('2026-11-29')).toBe(6);
    expect(dayLabel('2026-11-23')).toBe('Mon 23 Nov');
  });

  it('builds a heat-map grid of Monday-first weeks ending today', () => {
    const grid = heatmapWeeks('2026-11-25', 53); // a Wednesday
    expect(grid).toHaveLength(53);
    const last = grid[52] ?? [];
    expect(last.slice(0, 3)).toEqual(['2026-11-23', '2026-11-24', '2026-11-25']);
    expect(last.slice(3)).toEqual([null, null, null, null]);
    expect(grid[0]?.[0]).toBe(addDays('2026-11-23', -52 * 7));
    expect(grid.every((week) => week.length === 7)).toBe(true);
  });

  it('says how long ago', () => {
    const now = Date.parse('2026-11-23T12:00:00Z');
    expect(relativeTime('2026-11-23T11:59:50Z', now)).toBe('just now');
    expect(relativeTime('2026-11-23T11:30:00Z', now)).toBe('30 min ago');
    expect(relativeTime('2026-11-20T12:00:00Z', now)).toBe('3 days ago');
    expect(relativeTime(now - 120_000, now)).toBe('2 min ago');
  });
});
