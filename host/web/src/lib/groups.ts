// Habit groups on Today, and moving a habit within the order (Arrange).
import type { Habit } from './types';

export interface Section {
  /** null: the habits in no group, shown first and without a heading. */
  group: string | null;
  habits: Habit[];
}

/**
 * `habits` (in the order Today shows them) split by group: the ungrouped ones
 * first, then each group where its first habit by position stands in `byPosition`.
 * Within a section the shown order is kept.
 */
export function sections(habits: Habit[], byPosition: Habit[] = habits): Section[] {
  const rank = new Map<string | null, number>([[null, -1]]);
  byPosition.forEach((h, i) => {
    if (h.group !== null && !rank.has(h.group)) rank.set(h.group, i);
  });
  const out = new Map<string | null, Habit[]>();
  for (const h of habits) {
    const key = h.group ?? null;
    if (!rank.has(key)) rank.set(key, Number.MAX_SAFE_INTEGER);
    out.set(key, [...(out.get(key) ?? []), h]);
  }
  return [...out.entries()].sort(([a], [b]) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0)).map(([group, list]) => ({ group, habits: list }));
}

/** `ids` with the item at `from` moved to `to` (clamped to the list). */
export function move<T>(ids: readonly T[], from: number, to: number): T[] {
  const out = [...ids];
  const target = Math.max(0, Math.min(out.length - 1, to));
  if (from < 0 || from >= out.length || target === from) return out;
  const [item] = out.splice(from, 1);
  out.splice(target, 0, item as T);
  return out;
}

const COLLAPSED_KEY = 'ham.today.collapsed';

/** The groups collapsed on Today, as this browser remembers them. */
export function collapsedGroups(storage: Pick<Storage, 'getItem'> | undefined = globalThis.localStorage): Set<string> {
  try {
    const stored: unknown = JSON.parse(storage?.getItem(COLLAPSED_KEY) ?? '[]');
    return new Set(Array.isArray(stored) ? stored.filter((g): g is string => typeof g === 'string') : []);
  } catch {
    return new Set();
  }
}

export function rememberCollapsed(groups: Set<string>, storage: Pick<Storage, 'setItem'> | undefined = globalThis.localStorage) {
  try {
    storage?.setItem(COLLAPSED_KEY, JSON.stringify([...groups].sort()));
  } catch {
    // Private mode or a full quota: the choice lasts this visit only.
  }
}
