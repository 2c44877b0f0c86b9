// One habit: a year of check-ins as a heat-map, its score over time and streaks
// (from the habit-rules plugin), the entries with their notes, edit and archive.
import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api, describeError } from '../lib/api';
import { addDays, dayLabel, longDate } from '../lib/dates';
import { byDate, cellState, describeEntry, meetsTarget } from '../lib/entries';
import { describeFrequency, describeTarget } from '../lib/habitForm';
import { useEntries, useHabit, useHabitStats, useSetEntry } from '../lib/queries';
import { navigate, useTitle } from '../lib/router';
import type { Entry, EntryInput, Habit, User } from '../lib/types';
import { Heatmap, ScoreChart, type HeatCell } from '../components/Charts';
import { ErrorBox, isNotAvailable, Loading, NotAvailable } from '../components/Status';

export function HabitDetail({ id, user }: { id: string; user: User }) {
  const habit = useHabit(id);
  useTitle(habit.data?.name ?? 'Habit');
  if (habit.isPending) return <Loading label="Loading the habit…" lines={8} />;
  if (habit.isError) return <ErrorBox error={habit.error} retry={() => void habit.refetch()} />;
  return <Detail habit={habit.data} today={user.today ?? new Date().toISOString().slice(0, 10)} />;
}

function Detail({ habit, today }: { habit: Habit; today: string }) {
  const qc = useQueryClient();
  const from = addDays(today, -370);
  const entries = useEntries(habit.id, from, today);
  const stats = useHabitStats(habit.id, addDays(today, -89), today);
  const [actionError, setActionError] = useState<string | null>(null);
  const map = byDate(entries.data ?? []);

  const cells = new Map<string, HeatCell>();
  for (const e of entries.data ?? []) {
    const state = cellState(habit, e);
    let level: number | null = state === 'skipped' ? null : 1;
    if (e.status === 'value' && habit.target) {
      level = habit.target.type === 'at_least' ? Math.min(1, (e.value ?? 0) / (habit.target.value || 1)) : meetsTarget(habit, e.value ?? 0) ? 1 : 0.3;
    }
    cells.set(e.date, { level, label: describeEntry(habit, e) });
  }

  const setArchived = async (archived: boolean) => {
    setActionError(null);
    try {
      const saved = await api<Habit>(`/api/habits/${habit.id}`, { method: 'PATCH', body: { archived } });
      qc.setQueryData(['habit', habit.id], saved);
      await qc.invalidateQueries({ queryKey: ['habits'] });
    } catch (e) {
      setActionError(describeError(e));
    }
  };
  const remove = async () => {
    if (!confirm(`Delete ${habit.name} and all its entries? This cannot be undone.`)) return;
    try {
      await api<null>(`/api/habits/${habit.id}`, { method: 'DELETE' });
      await qc.invalidateQueries({ queryKey: ['habits'] });
      navigate('/');
    } catch (e) {
      setActionError(describeError(e));
    }
  };

  const sorted = [...(entries.data ?? [])].reverse();
  return (
    <section aria-labelledby="habit-title" style={{ '--habit-color': habit.color } as React.CSSProperties}>
      <div className="page-head">
        <span className="color-dot" aria-hidden="true" />
        <h1 id="habit-title">{habit.name}</h1>
        {habit.archived && <span className="badge">Archived</span>}
        <div className="push-right actions">
          <button type="button" onClick={() => navigate(`/habits/${habit.id}/edit`)}>
            Edit
          </button>
          <button type="button" onClick={() => void setArchived(!habit.archived)}>
            {habit.archived ? 'Unarchive' : 'Archive'}
          </button>
          <button type="button" className="danger" onClick={() => void remove()}>
            Delete
          </button>
        </div>
      </div>
      <p className="muted">
        {describeFrequency(habit.frequency)}
        {habit.kind === 'measurable' && ` · ${describeTarget(habit)}`}
        {habit.reminder && ` · reminder ${habit.reminder}`}
        {habit.description && ` · ${habit.description}`}
      </p>
      {actionError && (
        <p className="form-error" role="alert">
          {actionError}
        </p>
      )}

      <div className="cards">
        <div className="card stat">
          <span className="stat-label">Score</span>
          <span className="stat-value" data-testid="detail-score">
            {stats.data ? `${Math.round(stats.data.score * 100)}%` : '—'}
          </span>
        </div>
        <div className="card stat">
          <span className="stat-label">Current streak</span>
          <span className="stat-value" data-testid="detail-streak">
            {stats.data ? `${stats.data.current_streak} d` : '—'}
          </span>
        </div>
        <div className="card stat">
          <span className="stat-label">This period</span>
          <span className="stat-value">{stats.data ? `${stats.data.window.done} / ${stats.data.window.target}` : '—'}</span>
        </div>
      </div>

      <h2>Last year</h2>
      <div className="chart-box heatmap-box">{entries.isPending ? <Loading lines={2} /> : entries.isError ? <ErrorBox error={entries.error} /> : <Heatmap today={today} color={habit.color} cells={cells} />}</div>

      <h2>Score over time</h2>
      <div className="chart-box score-box">
        {stats.isPending ? <Loading lines={2} /> : isNotAvailable(stats.error) ? <NotAvailable what="Scores and streaks" /> : stats.isError ? <ErrorBox error={stats.error} /> : <ScoreChart points={stats.data.scores} color={habit.color} />}
      </div>
      {stats.data && stats.data.best_streaks.length > 0 && (
        <>
          <h2>Best streaks</h2>
          <ol className="streaks">
            {stats.data.best_streaks.map((s) => (
              <li key={s.start}>
                <strong>{s.length} days</strong> <span className="muted">{longDate(s.start)} – {longDate(s.end)}</span>
              </li>
            ))}
          </ol>
        </>
      )}

      <h2>Entries</h2>
      <EntryForm habit={habit} today={today} entries={map} />
      {entries.data && sorted.length === 0 && <p className="muted">No entries yet.</p>}
      <ul className="entry-list">
        {sorted.slice(0, 100).map((e) => (
          <li key={e.date}>
            <span className="entry-date">{dayLabel(e.date)}</span>
            <span className={`entry-status status-${cellState(habit, e)}`}>{describeEntry(habit, e)}</span>
            {e.source !== 'manual' && <span className="badge">{e.source}</span>}
            {e.note && <span className="entry-note">{e.note}</span>}
          </li>
        ))}
      </ul>
    </section>
  );
}

function EntryForm({ habit, today, entries }: { habit: Habit; today: string; entries: Map<string, Entry> }) {
  const setEntry = useSetEntry();
  const [date, setDate] = useState(today);
  const [status, setStatus] = useState<'done' | 'skipped' | 'value' | 'none'>(habit.kind === 'boolean' ? 'done' : 'value');
  const [value, setValue] = useState('');
  const [note, setNote] = useState('');
  const [error, setError] = useState<string | null>(null);
  const existing = entries.get(date);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (date > today) return setError('That day has not happened yet.');
    let input: EntryInput | null;
    if (status === 'none') input = null;
    else if (status === 'value') {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n) || n < 0) return setError('Enter a number of at least 0.');
      input = { value: n };
    } else input = { status };
    if (input && note.trim()) input = { ...input, note: note.trim() };
    setEntry.mutate({ habit, date, input }, { onSuccess: () => setNote('') });
  };
  return (
    <form className="entry-form" onSubmit={submit}>
      <label>
        Date
        <input type="date" value={date} max={today} onChange={(e) => setDate(e.target.value)} required />
      </label>
      <label>
        Check-in
        <select value={status} onChange={(e) => setStatus(e.target.value as typeof status)}>
          {habit.kind === 'boolean' ? <option value="done">Done</option> : <option value="value">Value</option>}
          <option value="skipped">Skipped</option>
          <option value="none">Clear</option>
        </select>
      </label>
      {status === 'value' && (
        <label>
          Value{habit.unit ? ` (${habit.unit})` : ''}
          <input type="number" min={0} step="any" inputMode="decimal" value={value} onChange={(e) => setValue(e.target.value)} />
        </label>
      )}
      <label className="grow">
        Note
        <input value={note} maxLength={2000} placeholder={existing?.note ?? ''} onChange={(e) => setNote(e.target.value)} />
      </label>
      <button type="submit" disabled={setEntry.isPending}>
        Save entry
      </button>
      <p className="form-error" role="alert">
        {error ?? (setEntry.isError ? describeError(setEntry.error) : null)}
      </p>
    </form>
  );
}
