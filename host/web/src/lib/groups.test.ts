import { describe, expect, it } from 'vitest';
import { collapsedGroups, move, rememberCollapsed, sections } from './groups';
import type { Habit } from './types';

const habit = (id: string, group: string | null): Habit => ({
  id,
  name: id,
  description: '',
  color: '#5b54e8',
  kind: 'boolean',
  unit: null,
  target: null,
  frequency: { times: 1, days: 1 },
  reminders: [],
  archived: false,
  position: 0,
  group,
  created: '2026-11-01',
});

describe('sections', () => {
  it('puts ungrouped habits first, then groups where their first habit stands', () => {
    const byPosition = [habit('a', 'Evening'), habit('b', null), habit('c', 'Morning'), habit('d', 'Evening')];
    // Today's order (still to do first) differs from the position order.
    const shown = [byPosition[2]!, byPosition[3]!, byPosition[1]!, byPosition[0]!];
    const got = sections(shown, byPosition).map((s) => [s.group, s.habits.map((h) => h.id)]);
    expect(got).toEqual([
      [null, ['b']],
      ['Evening', ['d', 'a']],
      ['Morning', ['c']],
    ]);
  });

  it('is one section when no habit has a group', () => {
    expect(sections([habit('a', null), habit('b', null)]).map((s) => s.group)).toEqual([null]);
  });
});

describe('move', () => {
  it('moves an item and clamps the target', () => {
    expect(move(['a', 'b', 'c', 'd'], 3, 0)).toEqual(['d', 'a', 'b', 'c']);
    expect(move(['a', 'b', 'c', 'd'], 0, 2)).toEqual(['b', 'c', 'a', 'd']);
    expect(move(['a', 'b', 'c'], 1, 9)).toEqual(['a', 'c', 'b']);
    expect(move(['a', 'b', 'c'], 0, -1)).toEqual(['a', 'b', 'c']);
    expect(move(['a', 'b'], 5, 0)).toEqual(['a', 'b']);
  });
});

describe('collapsed groups', () => {
  it('are remembered, and bad stored data reads as none', () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
    rememberCollapsed(new Set(['Morning', 'Evening']), storage);
    expect([...collapsedGroups(storage)].sort()).toEqual(['Evening', 'Morning']);
    store.set('ham.today.collapsed', '{not json');
    expect(collapsedGroups(storage).size).toBe(0);
    store.set('ham.today.collapsed', '[1, "Health"]');
    expect([...collapsedGroups(storage)]).toEqual(['Health']);
  });
});
