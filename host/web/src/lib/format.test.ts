import { describe, expect, it } from 'vitest';
import { count, formatCellValue, formatNumber, percent, periodName, progressText, streakText, withUnit } from './format';

describe('formatNumber: values as entered', () => {
  it('keeps every digit typed', () => {
    expect(formatNumber(1.25)).toBe('1.25');
    expect(formatNumber(2)).toBe('2');
    expect(formatNumber(0.125)).toBe('0.125');
    expect(formatNumber(10000)).toBe('10000');
    expect(formatNumber(0)).toBe('0');
  });

  it('drops floating-point noise, never a real digit', () => {
    expect(formatNumber(0.1 + 0.2)).toBe('0.3');
    expect(formatNumber(1.1 * 3)).toBe('3.3');
    expect(formatNumber(1.005)).toBe('1.005');
  });

  it('adds the unit', () => {
    expect(withUnit(1.25, 'l')).toBe('1.25 l');
    expect(withUnit(3, null)).toBe('3');
  });
});

describe('formatCellValue: what fits in a day cell', () => {
  it('shows short values exactly (1.25 is not 1.3)', () => {
    expect(formatCellValue(1.25)).toBe('1.25');
    expect(formatCellValue(12.75)).toBe('12.75');
    expect(formatCellValue(2)).toBe('2');
    expect(formatCellValue(10000)).toBe('10000');
  });

  it('shortens only what cannot fit', () => {
    expect(formatCellValue(123456)).toBe('123k');
    expect(formatCellValue(12345)).toBe('12345');
    expect(formatCellValue(12345.5)).toBe('12.3k');
    expect(formatCellValue(1234567)).toBe('1.23M');
    expect(formatCellValue(3.14159)).toBe('3.142');
    expect(formatCellValue(123.456)).toBe('123.5');
  });
});

describe('streakText', () => {
  it('says nothing for no streak (never "0-day streak")', () => {
    expect(streakText(0)).toBeNull();
    expect(streakText(-1)).toBeNull();
    expect(streakText(Number.NaN)).toBeNull();
  });

  it('counts days, and says when skips are part of it', () => {
    expect(streakText(1)).toBe('1-day streak');
    expect(streakText(36)).toBe('36-day streak');
    expect(streakText(37, 1)).toBe('37-day streak incl. 1 skip');
    expect(streakText(40, 3)).toBe('40-day streak incl. 3 skips');
  });
});

describe('progressText: non-daily habits in their own period', () => {
  const run = { kind: 'boolean' as const, unit: null, target: null, frequency: { times: 3, days: 7 } };
  const water = { kind: 'measurable' as const, unit: 'l', target: { value: 2, type: 'at_least' as const }, frequency: { times: 1, days: 1 } };
  const screen = { kind: 'measurable' as const, unit: 'h', target: { value: 2, type: 'at_most' as const }, frequency: { times: 1, days: 1 } };

  it('says "2 of 3 this week"', () => {
    expect(progressText(run, { done: 2, target: 3, days: 7 })).toBe('2 of 3 this week');
    expect(progressText({ ...run, frequency: { times: 1, days: 2 } }, { done: 0, target: 1, days: 2 })).toBe('0 of 1 in the last 2 days');
  });

  it('shows measured sums as entered, with the unit', () => {
    expect(progressText(water, { done: 1.25, target: 2, days: 1 })).toBe('1.25 of 2 l today');
    expect(progressText(screen, { done: 1.5, target: 2, days: 1 })).toBe('1.5 of at most 2 h today');
  });

  it('names the period', () => {
    expect(periodName(1)).toBe('today');
    expect(periodName(7)).toBe('this week');
    expect(periodName(30)).toBe('in the last 30 days');
  });
});

describe('small words', () => {
  it('formats percentages and counts', () => {
    expect(percent(0.051)).toBe('5%');
    expect(percent(1.2)).toBe('100%');
    expect(count(1, 'habit')).toBe('1 habit');
    expect(count(3, 'habit')).toBe('3 habits');
  });
});
