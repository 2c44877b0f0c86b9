// Today: every active habit with one-tap check-in for today and the last 7 days
// as cells that cycle done → skipped → empty.
import { useRef, useState, type KeyboardEvent } from 'react';
import { describeError } from '../lib/api';
import { dayLabel, lastDays, weekdayShort } from '../lib/dates';
import { byDate, cellState, describeEntry, meetsTarget, nextEntry } from '../lib/entries';
import { describeFrequency, describeTarget } from '../lib/habitForm';
import { useAllStats, useEntries, useHabits, useSetEntry } from '../lib/queries';
import { navigate, useTitle } from '../lib/router';
import type { Entry, Habit, HabitStatsSummary, User } from '../lib/types';
import { Link } from '../components/Link';
import { ErrorBox, Loading } from '../components/Status';

export function Today({ user }: { user: User }) {
  useTitle('Today');
  const today = user.today ?? new Date().toISOString().slice(0, 10);
  const habits = useHabits();
  const stats = useAllStats();
  const days = lastDays(today, 7);
  return (
    <section aria-labelledby="today-title">
      <div className="page-head">
        <h1 id="today-title">Today</h1>
        <span className="muted">{dayLabel(today)}</span>
        <button type="button" className="primary push-right" onClick={() => navigate('/habits/new')}>
          New habit
        </button>
      </div>
      {habits.isPending && <Loading label="Loading habits…" lines={4} />}
      {habits.isError && <ErrorBox error={habits.error} retry={() => void habits.refetch()} />}
      {habits.data && habits.data.length === 0 && (
        <div className="empty">
          <p>No habits yet. Start with one small thing you want to do regularly.</p>
          <button type="button" className="primary" onClick={() => navigate('/habits/new')}>
            Create your first habit
          </button>
        </div>
      )}
      {habits.data && habits.data.length > 0 && (
        <>
          <div className="day-header" aria-hidden="true">
            {days.map((d) => (
              <span key={d}>{d === today ? 'Today' : weekdayShort(d)}</span>
            ))}
          </div>
          <ul className="habit-list">
            {habits.data.map((h) => (
              <HabitRow key={h.id} habit={h} today={today} days={days} stats={stats.data?.get(h.id)} />
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

function HabitRow({ habit, today, days, stats }: { habit: Habit; today: string; days: string[]; stats: HabitStatsSummary | undefined }) {
  const from = days[0] ?? today;
  const entries = useEntries(habit.id, from, today);
  const setEntry = useSetEntry();
  const map = byDate(entries.data ?? []);
  const todayEntry = map.get(today);
  const state = cellState(habit, todayEntry);
  const cells = useRef<(HTMLButtonElement | null)[]>([]);

  const onCellKey = (e: KeyboardEvent<HTMLButtonElement>, i: number) => {
    const to = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : e.key === 'Home' ? 0 : e.key === 'End' ? days.length - 1 : -1;
    if (to >= 0 && to < days.length) {
      e.preventDefault();
      cells.current[to]?.focus();
    }
  };

  const toggleToday = (checked: boolean) => {
    if (!checked) return setEntry.mutate({ habit, date: today, input: null });
    const note = todayEntry?.note ?? undefined;
    if (habit.kind === 'boolean') setEntry.mutate({ habit, date: today, input: { status: 'done', ...(note ? { note } : {}) } });
    else setEntry.mutate({ habit, date: today, input: { value: habit.target?.value ?? 1, ...(note ? { note } : {}) } });
  };

  return (
    <li className="habit-row" style={{ '--habit-color': habit.color } as React.CSSProperties}>
      <div className="habit-main">
        <input
          type="checkbox"
          className="check"
          aria-label={habit.name}
          checked={state === 'done'}
          disabled={entries.isPending}
          onChange={(e) => toggleToday(e.target.checked)}
        />
        <div className="habit-text">
          <Link href={`/habits/${habit.id}`} className="habit-name">
            {habit.name}
          </Link>
          <span className="muted small">
            {describeFrequency(habit.frequency)}
            {habit.kind === 'measurable' && ` · ${describeTarget(habit)}`}
            {stats && (
              <>
                {' · '}
                <span className="streak" data-testid="streak">
                  {stats.current_streak}-day streak
                </span>
                {' · '}
                <span className="score" data-testid="score">
                  score {Math.round(stats.score * 100)}%
                </span>
              </>
            )}
          </span>
        </div>
        <div className="today-actions">
          {habit.kind === 'measurable' && (
            <ValueInput habit={habit} entry={todayEntry} onSave={(value) => setEntry.mutate({ habit, date: today, input: { value, ...(todayEntry?.note ? { note: todayEntry.note } : {}) } })} />
          )}
          <button
            type="button"
            className={'small-button' + (state === 'skipped' ? ' active' : '')}
            aria-pressed={state === 'skipped'}
            aria-label={`Skip ${habit.name} today`}
            disabled={entries.isPending}
            onClick={() => setEntry.mutate({ habit, date: today, input: state === 'skipped' ? null : { status: 'skipped' } })}
          >
            Skip
          </button>
        </div>
      </div>
      <div className="week" role="group" aria-label={`${habit.name}: last 7 days`}>
        {days.map((d, i) => {
          const entry = map.get(d);
          const s = entries.isPending ? 'loading' : cellState(habit, entry);
          return (
            <button
              key={d}
              ref={(el) => {
                cells.current[i] = el;
              }}
              type="button"
              className={`cell cell-${s}`}
              aria-label={`${habit.name}, ${dayLabel(d)}${d === today ? ' (today)' : ''}: ${describeEntry(habit, entry)}`}
              title={`${dayLabel(d)}: ${describeEntry(habit, entry)}`}
              disabled={entries.isPending}
              tabIndex={i === days.length - 1 ? 0 : -1}
              onKeyDown={(e) => onCellKey(e, i)}
              onClick={() => setEntry.mutate({ habit, date: d, input: nextEntry(habit, entry) })}
            >
              <span aria-hidden="true">{cellGlyph(s, entry)}</span>
            </button>
          );
        })}
      </div>
      {setEntry.isError && (
        <p className="form-error" role="alert">
          {describeError(setEntry.error)}
        </p>
      )}
      {entries.isError && (
        <p className="form-error" role="alert">
          {describeError(entries.error)}
        </p>
      )}
    </li>
  );
}

function cellGlyph(state: string, entry: Entry | undefined): string {
  if (state === 'done') return entry?.status === 'value' ? compact(entry.value) : '✓';
  if (state === 'partial') return compact(entry?.value ?? 0);
  if (state === 'skipped') return '–';
  return '';
}

function compact(v: number | null): string {
  if (v === null) return '';
  return v >= 100 ? String(Math.round(v)) : String(Math.round(v * 10) / 10);
}

function ValueInput({ habit, entry, onSave }: { habit: Habit; entry: Entry | undefined; onSave: (value: number) => void }) {
  const current = entry?.status === 'value' && entry.value !== null ? String(entry.value) : '';
  const [draft, setDraft] = useState<string | null>(null);
  const value = draft ?? current;
  const commit = () => {
    if (draft === null) return;
    const n = Number(draft);
    setDraft(null);
    if (draft.trim() !== '' && Number.isFinite(n) && n >= 0 && draft !== current) onSave(n);
  };
  const met = entry?.value !== undefined && entry?.value !== null && meetsTarget(habit, entry.value);
  return (
    <label className={'value-input' + (met ? ' met' : '')}>
      <span className="visually-hidden">{`${habit.name} value today${habit.unit ? ` (${habit.unit})` : ''}`}</span>
      <input
        type="number"
        inputMode="decimal"
        min={0}
        step="any"
        value={value}
        placeholder={habit.target ? String(habit.target.value) : '0'}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => {
          if (e.key === 'Enter') commit();
          if (e.key === 'Escape') setDraft(null);
        }}
      />
      {habit.unit && <span className="unit">{habit.unit}</span>}
    </label>
  );
}

