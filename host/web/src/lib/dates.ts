// Calendar dates as the host sends them: `YYYY-MM-DD` strings in the user's time
// zone. All arithmetic is on UTC midnights, so no daylight-saving shift can move a day.

const DAY_MS = 86_400_000;
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** Whether `s` is a real calendar date `YYYY-MM-DD`. */
export function isDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  return y >= 1 && date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d;
}

function toUtc(s: string): number {
  const [y, m, d] = s.split('-').map(Number) as [number, number, number];
  const t = new Date(0);
  t.setUTCFullYear(y, m - 1, d);
  t.setUTCHours(0, 0, 0, 0);
  return t.getTime();
}

function fromUtc(ms: number): string {
  const t = new Date(ms);
  const y = String(t.getUTCFullYear()).padStart(4, '0');
  const m = String(t.getUTCMonth() + 1).padStart(2, '0');
  const d = String(t.getUTCDate()).padStart(2, '0');
  return `${y}-${m}-${d}`;
}

export function addDays(date: string, days: number): string {
  return fromUtc(toUtc(date) + days * DAY_MS);
}

/** Days from `a` to `b` (positive when b is later). */
export function daysBetween(a: string, b: string): number {
  return Math.round((toUtc(b) - toUtc(a)) / DAY_MS);
}

/** The `n` days ending with `today`, oldest first. */
export function lastDays(today: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => addDays(today, i - n + 1));
}

/** 0 = Monday … 6 = Sunday. */
export function weekdayIndex(date: string): number {
  return (new Date(toUtc(date)).getUTCDay() + 6) % 7;
}

export function weekdayShort(date: string): string {
  return WEEKDAYS[new Date(toUtc(date)).getUTCDay()] ?? '';
}

/** `Mon 23 Nov`. */
export function dayLabel(date: string): string {
  const t = new Date(toUtc(date));
  return `${WEEKDAYS[t.getUTCDay()]} ${t.getUTCDate()} ${MONTHS[t.getUTCMonth()]}`;
}

/** `23 Nov 2026`. */
export function longDate(date: string): string {
  const t = new Date(toUtc(date));
  return `${t.getUTCDate()} ${MONTHS[t.getUTCMonth()]} ${t.getUTCFullYear()}`;
}

export function monthShort(date: string): string {
  return MONTHS[new Date(toUtc(date)).getUTCMonth()] ?? '';
}

/**
 * The heat-map grid: `weeks` columns (Monday first) ending with the week that
 * holds `today`; days after `today` are null.
 */
export function heatmapWeeks(today: string, weeks: number): (string | null)[][] {
  const lastMonday = addDays(today, -weekdayIndex(today));
  const firstMonday = addDays(lastMonday, -7 * (weeks - 1));
  const columns: (string | null)[][] = [];
  for (let w = 0; w < weeks; w++) {
    const column: (string | null)[] = [];
    for (let d = 0; d < 7; d++) {
      const date = addDays(firstMonday, w * 7 + d);
      column.push(daysBetween(date, today) >= 0 ? date : null);
    }
    columns.push(column);
  }
  return columns;
}

/** Today in the browser's own time zone (used only before the server says). */
export function browserToday(now: Date = new Date()): string {
  const y = now.getFullYear();
  const m = String(now.getMonth() + 1).padStart(2, '0');
  const d = String(now.getDate()).padStart(2, '0');
  return `${y}-${m}-${d}`;
}

/** "3 min ago" style, for RFC 3339 timestamps or milliseconds since the epoch. */
export function relativeTime(at: string | number, now: number = Date.now()): string {
  const t = typeof at === 'number' ? at : /^\d+$/.test(at) ? Number(at) : Date.parse(at);
  if (Number.isNaN(t)) return String(at);
  const s = Math.round((now - t) / 1000);
  if (s < 45) return 'just now';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 36) return `${h} h ago`;
  const d = Math.round(h / 24);
  return `${d} days ago`;
}
