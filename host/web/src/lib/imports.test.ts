import { describe, expect, it } from 'vitest';
import { importedWords, isSqlite } from './imports';

describe('isSqlite', () => {
  it('knows an SQLite header, and nothing else', () => {
    const head = new TextEncoder().encode('SQLite format 3\u0000rest');
    expect(isSqlite(head)).toBe(true);
    expect(isSqlite(new TextEncoder().encode('{"format": "ham-export"}'))).toBe(false);
    expect(isSqlite(new TextEncoder().encode('SQLite format 3'))).toBe(false);
  });
});

describe('importedWords', () => {
  it('says what came in, and what was left out', () => {
    expect(importedWords({ habits: 2, entries: 310, activities: 0, dropped_notes: 1 }, true)).toBe('Imported 2 habits and 310 entries from Loop; 1 note on unchecked days was left out (HAM keeps notes on check-ins).');
    expect(importedWords({ habits: 1, entries: 1, activities: 2, dropped_notes: 0 }, false)).toBe('Imported 1 habit, 1 entry and 2 activities.');
  });
});
