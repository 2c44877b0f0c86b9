// Today: every active habit due today, the ones still to do first, then the
// weekday habits not due today apart; each with one large control
// for today and a strip of recent days (labelled with weekday and date, longer
// when the screen is wide).
//
// A tap never writes a number: a yes/no habit's control and cells toggle done /
// not done; a measurable habit's open the day editor, which changes nothing until
// saved, and its quick amounts add to the day. Every change shows a toast with
// Undo. Skip and notes live in the editor (⋯ for a yes/no habit; a long press or
// right-click on any day).
import { useRef, useState, type KeyboardEvent, type PointerEvent as ReactPointerEvent } from 'react';
import { useQueries, useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { glyphOn } from '../lib/colors';
import { addDays, browserToday, dayLabel, lastDays, weekdayShort } from '../lib/dates';
import { addAmount, byDate, cellState, dayValue, describeEntry, entryToInput, quickAmounts, skipsInStreak, standing, toggleDone, type Standing } from '../lib/entries';
import { explainText } from '../lib/errors';
import { formatCellValue, isDaily, percent, progressText, streakText, timesInDays, withUnit } from '../lib/format';
import { describeFrequency, describeTarget } from '../lib/habitForm';
import { entriesQuery, keys, useAllStats, useHabits, useSetEntry } from '../lib/queries';
import { navigate, useTitle } from '../lib/router';
import { useWidth } from '../lib/useWidth';
import { isPending, offlineWords, usePending } from '../lib/offline';
import { entryOf } from '../lib/pending';
import { collapsedGroups, rememberCollapsed, sections } from '../lib/groups';
import type { Entry, EntryInput, Habit, HabitStatsSummary, User } from '../lib/types';
import { DayEditor } from '../components/DayEditor';
import { Explain, SCORE_WORDS, SKIP_WORDS, STREAK_WORDS } from '../components/Explain';
import { Link } from '../components/Link';
import { ErrorBox, Loading } from '../components/Status';
import { useToast } from '../components/Toast';

/** Days of entries Today loads per habit: the longest strip, and a month of window. */
const LOAD_DAYS = 35;

/**
 * How many days the strip shows in a list `width` px wide: a week on a phone, and
 * as many 44 px columns as fit beside the habit's name on a wider screen (Loop's
 * grid grows the same way), up to three weeks.
 */
export function stripLength(width: number): number {
  if (width < 720) return 7;
  const beside = width - 47 - 300;
  return Math.max(7, Math.min(21, Math.floor((beside + 4) / 44)));
}

/** "done today", "1.5 l on Tue 25 Nov", "cleared today": what a change did. */
export function changeWords(habit: Pick<Habit, 'unit'>, date: string, today: string, input: EntryInput | null): string {
  const when = date === today ? 'today' : `on ${dayLabel(date)}`;
  if (!input) return `cleared ${when}`;
  if ('value' in input) return `${withUnit(input.value, habit.unit)} ${when}`;
  return `${input.status} ${when}`;
}

interface Editing {
  habit: Habit;
  date: string;
}

export function Today({ user }: { user: User }) {
  useTitle('Today');
  const today = user.today ?? browserToday();
  const habits = useHabits();
  const stats = useAllStats();
  const section = useRef<HTMLElement | null>(null);
  const width = useWidth(section, 360);
  const days = lastDays(today, stripLength(width));
  const from = addDays(today, -(LOAD_DAYS - 1));
  const list = habits.data ?? [];
  const entryQueries = useQueries({ queries: list.map((h) => entriesQuery(h.id, from, today)) });
  const setEntry = useSetEntry();
  const toast = useToast();
  const [editing, setEditing] = useState<Editing | null>(null);
  const pending = usePending();
  const [collapsed, setCollapsed] = useState(collapsedGroups);

  const maps = new Map<string, Map<string, Entry>>();
  list.forEach((h, i) => maps.set(h.id, byDate(entryQueries[i]?.data ?? [])));
  const loaded = list.length > 0 && entryQueries.every((q) => !q.isPending);
  const standings = new Map<string, Standing>();
  for (const h of list) {
    const s = standing(h, maps.get(h.id) ?? new Map(), today);
    // A window longer than what Today loads: the rules' figure knows better.
    const server = stats.data?.get(h.id)?.window;
    if (timesInDays(h.frequency).days > LOAD_DAYS && server) {
      const met = h.kind === 'boolean' || h.target?.type === 'at_least' ? server.done >= server.target : false;
      standings.set(h.id, { handled: s.handled || met, due: s.due, window: server });
    } else standings.set(h.id, s);
  }

  // Only the habits due today count and come first; a weekday habit on a day off
  // is listed apart, below. Still to do first. The order is fixed when the day's
  // entries arrive and kept while the list is on screen, so a row never jumps
  // away from a finger.
  const dueToday = list.filter((h) => standings.get(h.id)?.due !== false);
  const notDue = list.filter((h) => standings.get(h.id)?.due === false);
  const order = useRef<{ key: string; ids: string[] } | null>(null);
  const idsKey = dueToday.map((h) => h.id).join(',');
  if (loaded && order.current?.key !== idsKey) {
    const todo = dueToday.filter((h) => !standings.get(h.id)?.handled);
    const rest = dueToday.filter((h) => standings.get(h.id)?.handled);
    order.current = { key: idsKey, ids: [...todo, ...rest].map((h) => h.id) };
  }
  const byId = new Map(list.map((h) => [h.id, h]));
  const shown = (order.current?.key === idsKey ? order.current.ids : dueToday.map((h) => h.id)).map((id) => byId.get(id)).filter((h): h is Habit => !!h);
  const handled = dueToday.filter((h) => standings.get(h.id)?.handled).length;

  const change = (habit: Habit, date: string, input: EntryInput | null) => {
    const previous = maps.get(habit.id)?.get(date);
    const undoInput = entryToInput(previous);
    const made = input ? entryOf(habit.id, date, input) : null;
    toast({
      message: `${habit.name}: ${changeWords(habit, date, today, input)}${offlineWords()}`,
      undo: () => setEntry.mutateAsync({ habit, date, input: undoInput, seen: made }),
    });
    setEntry.mutate(
      { habit, date, input, seen: previous ?? null },
      { onError: (e) => toast({ message: explainText(e, `save ${habit.name} for ${date === today ? 'today' : dayLabel(date)}`) }) },
    );
  };

  const row = (h: Habit) => (
              <HabitRow
                key={h.id}
                habit={h}
                today={today}
                days={days}
                entries={maps.get(h.id) ?? new Map()}
                error={entryQueries[list.indexOf(h)]?.error ?? null}
                standing={standings.get(h.id)!}
                stats={stats.data?.get(h.id)}
                pending={(date) => isPending(pending, h.id, date)}
                onChange={change}
                onEdit={(date) => setEditing({ habit: h, date })}
              />
  );
  // Groups: sections only when some habit has one; a collapsed group is
  // remembered by this browser.
  const split = sections(shown, dueToday);
  const groupedSections = split.some((s) => s.group !== null) ? split : [];
  const toggleGroup = (group: string) =>
    setCollapsed((old) => {
      const next = new Set(old);
      if (!next.delete(group)) next.add(group);
      rememberCollapsed(next);
      return next;
    });

  return (
    <section aria-labelledby="today-title" className="today" ref={section}>
      <div className="page-head">
        <h1 id="today-title">Today</h1>
        <span className="muted">{dayLabel(today)}</span>
        <button type="button" className="primary push-right" onClick={() => navigate('/habits/new')}>
          New habit
        </button>
      </div>
      <TimeZoneOffer user={user} />
      {habits.isPending && <Loading label="Loading habits…" lines={4} />}
      {habits.isError && <ErrorBox error={habits.error} action="load your habits" retry={() => void habits.refetch()} />}
      {habits.data && habits.data.length === 0 && (
        <div className="empty">
          <p>No habits yet. Start with one small thing you want to do regularly.</p>
          <button type="button" className="primary" onClick={() => navigate('/habits/new')}>
            Create your first habit
          </button>
        </div>
      )}
      {list.length > 0 && !loaded && <Loading label="Loading check-ins…" lines={Math.min(list.length, 6)} />}
      {list.length > 0 && loaded && (
        <>
          <p className="day-summary" data-testid="day-summary">
            {dueToday.length === 0 ? (
              <strong>Nothing due today</strong>
            ) : handled === dueToday.length ? (
              <strong>All {dueToday.length} done</strong>
            ) : (
              <strong>{`${handled} of ${dueToday.length} done`}</strong>
            )}
            <span className="muted"> {dueToday.length === 0 ? 'Enjoy the day off.' : handled === dueToday.length ? 'for now. Well done.' : 'so far today'}</span>
          </p>
          <div className="habit-row strip-head" aria-hidden="true" style={{ '--days': days.length } as React.CSSProperties}>
            <div className="habit-top" />
            <div className="week">
              {days.map((d) => (
                <span key={d} className={'day-label' + (d === today ? ' is-today' : '')} data-testid="day-label">
                  <span className="day-label-wd">{weekdayShort(d)}</span>
                  <span className="day-label-date">{Number(d.slice(8))}</span>
                </span>
              ))}
            </div>
          </div>
          {groupedSections.length === 0 ? (
            <ul className="habit-list">{shown.map(row)}</ul>
          ) : (
            groupedSections.map((s, i) =>
              s.group === null ? (
                <ul className="habit-list" key="">
                  {s.habits.map(row)}
                </ul>
              ) : (
                <section className="habit-group" key={s.group} aria-labelledby={`group-${i}-head`}>
                  <h2 className="group-head" id={`group-${i}-head`}>
                    <button type="button" className="group-toggle" aria-expanded={!collapsed.has(s.group)} aria-controls={`group-${i}`} onClick={() => toggleGroup(s.group!)}>
                      <span className="group-chevron" aria-hidden="true" />
                      <span className="group-name">{s.group}</span>
                      <span className="muted small">
                        {s.habits.filter((h) => standings.get(h.id)?.handled).length} of {s.habits.length} done
                      </span>
                    </button>
                  </h2>
                  {!collapsed.has(s.group) && (
                    <ul className="habit-list" id={`group-${i}`}>
                      {s.habits.map(row)}
                    </ul>
                  )}
                </section>
              ),
            )
          )}
          {notDue.length > 0 && (
            <section className="habit-group not-due" aria-labelledby="not-due-head" data-testid="not-due">
              <h2 className="group-head" id="not-due-head">
                <span className="group-name">Not due today</span>
                <span className="muted small"> {notDue.length === 1 ? '1 habit' : `${notDue.length} habits`} on other weekdays</span>
              </h2>
              <ul className="habit-list">{notDue.map(row)}</ul>
            </section>
          )}
          <div className="today-foot">
            <Explain label="How are streaks, skips and the score counted?" text="How are streaks, skips and the score counted?">
              <p>{STREAK_WORDS}</p>
              <p>{SKIP_WORDS}</p>
              <p>{SCORE_WORDS}</p>
            </Explain>
            <span className="today-links">
              <Link href="/arrange">Arrange habits</Link>
              <Link href="/archived">Archived habits</Link>
            </span>
          </div>
        </>
      )}
      {editing && (
        <DayEditor
          habit={editing.habit}
          date={editing.date}
          today={today}
          entry={maps.get(editing.habit.id)?.get(editing.date)}
          pending={isPending(pending, editing.habit.id, editing.date)}
          onClose={() => setEditing(null)}
          onSave={(input) => {
            const { habit, date } = editing;
            setEditing(null);
            change(habit, date, input);
          }}
        />
      )}
    </section>
  );
}

function HabitRow({
  habit,
  today,
  days,
  entries,
  error,
  standing: st,
  stats,
  pending,
  onChange,
  onEdit,
}: {
  habit: Habit;
  today: string;
  days: string[];
  entries: Map<string, Entry>;
  error: unknown;
  standing: Standing;
  stats: HabitStatsSummary | undefined;
  /** Whether the check-in of `date` waits on this device for the server. */
  pending: (date: string) => boolean;
  onChange: (habit: Habit, date: string, input: EntryInput | null) => void;
  onEdit: (date: string) => void;
}) {
  const cells = useRef<(HTMLButtonElement | null)[]>([]);
  const pressTimer = useRef<number | null>(null);
  const longPressed = useRef(false);
  const measurable = habit.kind === 'measurable';
  const todayEntry = entries.get(today);
  const state = cellState(habit, todayEntry);

  /** The one action for a day, the same on the big control and on the day's cell. */
  const tap = (date: string) => {
    if (measurable) return onEdit(date);
    onChange(habit, date, toggleDone(entries.get(date)));
  };

  const onCellKey = (e: KeyboardEvent<HTMLButtonElement>, i: number) => {
    const to = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : e.key === 'Home' ? 0 : e.key === 'End' ? days.length - 1 : -1;
    if (to >= 0 && to < days.length) {
      e.preventDefault();
      cells.current[to]?.focus();
    }
  };
  // A long press (touch) or right-click opens the day editor for any day.
  const startPress = (e: ReactPointerEvent, date: string) => {
    if (e.pointerType === 'mouse') return;
    longPressed.current = false;
    pressTimer.current = window.setTimeout(() => {
      longPressed.current = true;
      onEdit(date);
    }, 550);
  };
  const endPress = () => {
    if (pressTimer.current !== null) window.clearTimeout(pressTimer.current);
    pressTimer.current = null;
  };

  const daily = isDaily(habit);
  const streak = stats && daily ? streakText(stats.current_streak, skipsInStreak(habit, entries, today, stats.current_streak)) : null;
  const progress = !daily || measurable ? progressText(habit, st.window) : null;
  const value = dayValue(todayEntry);
  const todayPending = pending(today);
  const notSent = ' (not sent yet)';

  return (
    <li className="habit-row" style={{ '--habit-color': habit.color, '--habit-glyph': glyphOn(habit.color), '--days': days.length } as React.CSSProperties}>
      <div className="habit-top">
        <div className="habit-text">
          <Link href={`/habits/${habit.id}`} className="habit-name">
            {habit.name}
          </Link>
          <span className="muted small habit-line">
            {!progress && !streak && describeFrequency(habit.frequency)}
            {progress && <span data-testid="progress">{progress}</span>}
            {progress && streak && ' · '}
            {streak && (
              <span className="streak" data-testid="streak">
                {streak}
              </span>
            )}
            {stats && (
              <>
                {' · '}
                <span className="score" data-testid="score">
                  score {percent(stats.score)}
                </span>
              </>
            )}
          </span>
          {measurable && (
            <span className="quick-row">
              {quickAmounts(habit)
                .slice(0, 2)
                .map((a) => (
                  <button key={a} type="button" className="quick" aria-label={`Add ${withUnit(a, habit.unit)} to ${habit.name} today`} onClick={() => onChange(habit, today, addAmount(todayEntry, a))}>
                    +{withUnit(a, habit.unit)}
                  </button>
                ))}
            </span>
          )}
        </div>
        {measurable ? (
          <button
            type="button"
            className={`today-control measure state-${state}` + (todayPending ? ' is-pending' : '')}
            data-testid="today-control"
            aria-haspopup="dialog"
            aria-label={`${habit.name} today: ${todayEntry ? describeEntry(habit, todayEntry) : 'nothing yet'}${habit.target ? `, goal ${describeTarget(habit)}` : ''}${todayPending ? notSent : ''}. Change`}
            onClick={() => tap(today)}
          >
            {state === 'skipped' || !todayEntry ? (
              <span aria-hidden="true" className="today-value">
                {state === 'skipped' ? '–' : '+'}
              </span>
            ) : (
              <>
                {/* The visible text is part of the name (WCAG 2.5.3): "1.5 l". */}
                <span className="today-value">{formatCellValue(value)}</span>
                {habit.unit && (
                  <>
                    {' '}
                    <span className="today-unit">{habit.unit}</span>
                  </>
                )}
              </>
            )}
            {todayPending && <PendingMark />}
          </button>
        ) : (
          <>
            <button type="button" className={`today-control state-${state}` + (todayPending ? ' is-pending' : '')} data-testid="today-control" aria-pressed={state === 'done'} aria-label={`${habit.name}: done today`} aria-describedby={todayPending ? 'pending-words' : undefined} onClick={() => tap(today)}>
              <span aria-hidden="true">{state === 'done' ? '✓' : state === 'skipped' ? '–' : ''}</span>
              {todayPending && <PendingMark />}
            </button>
            <button type="button" className="icon-button" aria-haspopup="dialog" aria-label={`More for ${habit.name} today: skip or add a note`} onClick={() => onEdit(today)}>
              <span aria-hidden="true">⋯</span>
            </button>
          </>
        )}
      </div>
      <div className="week" role="group" aria-label={`${habit.name}: last ${days.length} days`}>
        {days.map((d, i) => {
          const entry = entries.get(d);
          const s = cellState(habit, entry);
          const waiting = pending(d);
          return (
            <button
              key={d}
              ref={(el) => {
                cells.current[i] = el;
              }}
              type="button"
              className={`cell cell-${s}` + (d === today ? ' cell-today' : '') + (waiting ? ' is-pending' : '')}
              aria-label={`${habit.name}, ${dayLabel(d)}${d === today ? ' (today)' : ''}: ${describeEntry(habit, entry)}${waiting ? notSent : ''}`}
              aria-haspopup={measurable ? 'dialog' : undefined}
              title={`${dayLabel(d)}: ${describeEntry(habit, entry)}${entry?.note ? ` (${entry.note})` : ''}`}
              tabIndex={i === days.length - 1 ? 0 : -1}
              onKeyDown={(e) => onCellKey(e, i)}
              onPointerDown={(e) => startPress(e, d)}
              onPointerUp={endPress}
              onPointerLeave={endPress}
              onPointerCancel={endPress}
              onContextMenu={(e) => {
                e.preventDefault();
                endPress();
                if (!longPressed.current) onEdit(d);
              }}
              onClick={() => {
                if (longPressed.current) {
                  longPressed.current = false;
                  return;
                }
                tap(d);
              }}
            >
              <span aria-hidden="true" className={entry?.status === 'value' ? undefined : 'cell-mark'}>
                {cellGlyph(s, entry)}
              </span>
              {entry?.note && <span className="cell-note" aria-hidden="true" />}
              {waiting && <PendingMark />}
            </button>
          );
        })}
      </div>
      {error ? <ErrorBox error={error} action={`load the check-ins of ${habit.name}`} /> : null}
    </li>
  );
}

/** The mark of a check-in kept on this device until the server has it. */
function PendingMark() {
  return <span className="pending-mark" data-testid="pending-mark" aria-hidden="true" title="Not sent yet" />;
}

function cellGlyph(state: string, entry: Entry | undefined): string {
  if (entry?.status === 'value' && entry.value !== null) return formatCellValue(entry.value);
  if (state === 'done') return '✓';
  if (state === 'skipped') return '–';
  return '';
}

/** The device's time zone, when the account's differs: offered once per pair. */
function TimeZoneOffer({ user }: { user: User }) {
  const qc = useQueryClient();
  const toast = useToast();
  const device = deviceTimeZone();
  const key = `ham.tz-offer.${user.id}`;
  const pair = `${user.time_zone}>${device}`;
  const [dismissed, setDismissed] = useState(() => readStorage(key) === pair);
  if (!device || device === user.time_zone || dismissed) return null;
  const use = async () => {
    try {
      const updated = await api<User>('/api/me', { method: 'PATCH', body: { time_zone: device } });
      qc.setQueryData(keys.me, updated);
      void qc.invalidateQueries({ queryKey: ['entries'] });
      void qc.invalidateQueries({ queryKey: ['stats'] });
      toast({ message: `Your time zone is now ${device}.` });
    } catch (e) {
      toast({ message: explainText(e, 'change your time zone') });
    }
  };
  const keep = () => {
    writeStorage(key, pair);
    setDismissed(true);
  };
  return (
    <div className="notice tz-offer" role="region" aria-label="Time zone">
      <p>
        This device is in <strong>{device}</strong>, your account in <strong>{user.time_zone}</strong>. Days start at
        midnight in the account's time zone.
      </p>
      <div className="actions">
        <button type="button" className="primary" onClick={() => void use()}>
          Use {device}
        </button>
        <button type="button" onClick={keep}>
          Keep {user.time_zone}
        </button>
      </div>
    </div>
  );
}

export function deviceTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone ?? '';
  } catch {
    return '';
  }
}

function readStorage(key: string): string | null {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

function writeStorage(key: string, value: string): void {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    // private mode: the offer comes back next time
  }
}

