// Import: telling a Loop Habit Tracker backup from HAM's own export, and what an
// import says it did.
import type { ImportCounts } from './types';

const SQLITE_MAGIC = 'SQLite format 3\u0000';

/** Whether a file starts as an SQLite database does (a Loop backup is one). */
export function isSqlite(head: Uint8Array): boolean {
  return head.length >= 16 && [...SQLITE_MAGIC].every((c, i) => head[i] === c.charCodeAt(0));
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** "Imported 2 habits and 310 entries from Loop; 1 note on an unchecked day was left out." */
export function importedWords(c: ImportCounts, loop: boolean): string {
  const what = loop
    ? `${plural(c.habits, 'habit', 'habits')} and ${plural(c.entries, 'entry', 'entries')} from Loop`
    : `${plural(c.habits, 'habit', 'habits')}, ${plural(c.entries, 'entry', 'entries')} and ${plural(c.activities, 'activity', 'activities')}`;
  const dropped = c.dropped_notes > 0 ? `; ${plural(c.dropped_notes, 'note', 'notes')} on unchecked days ${c.dropped_notes === 1 ? 'was' : 'were'} left out (HAM keeps notes on check-ins)` : '';
  return `Imported ${what}${dropped}.`;
}
