// One habit: score (a ring, explained), streak and this period's progress; a year
// of check-ins as a heat-map that opens at today; the score over a month, a
// quarter or a year; best streaks; and every entry, a page at a time, each one
// editable in the day editor. Archive can be undone; delete is confirmed.
import { useEffect, useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { glyphOn } from '../lib/colors';
import { addDays, browserToday, dayLabel, longDate } from '../lib/dates';
import { byDate, cellState, describeEntry, entryToInput, meetsTarget, standing } from '../lib/entries';
import { explainText } from '../lib/errors';
import { count, formatNumber, isDaily, progressText } from '../lib/format';
import { describeDays, describeFrequency, describeTarget } from '../lib/habitForm';
import { keys, useEntries, useHabit, useHabitStats, useSetEntry } from '../lib/queries';
import { isPending, offlineWords, usePending } from '../lib/offline';
import { entryOf } from '../lib/pending';
import { navigate, useTitle } from '../lib/router';
import type { Entry, EntryInput, Habit, User } from '../lib/types';
import { Heatmap, ScoreChart, ScoreRing, type HeatCell } from '../components/Charts';
import { DayEditor } from '../components/DayEditor';
import { Explain, SCORE_WORDS, SKIP_WORDS, STREAK_WORDS } from '../components/Explain';
import { useConfirm } from '../components/Modal';
import { ErrorBox, isNotAvailable, Loading, NotAvailable } from '../components/Status';
import { useToast } from '../components/Toast';
import { changeWords } from './Today';

const RANGES = [
  { key: 'month', label: 'Month', days: 30 },
  { key: 'quarter', label: 'Quarter', days: 91 },
  { key: 'year', label: 'Year', days: 365 },
] as const;

/** Entries shown per page. */
export const PAGE = 20;

export function HabitDetail({ id, user }: { id: string; user: User }) {
  const habit = useHabit(id);
  useTitle(habit.data?.name ?? 'Habit');
  if (habit.isPending) return <Loading label="Loading the habit…" lines={8} />;
  if (habit.isError) return <ErrorBox error={habit.error} action="load the habit" retry={() => void habit.refetch()} />;
  return <Detail habit={habit.data} today={user.today ?? browserToday()} />;
}

function Detail({ habit, today }: { habit: Habit; today: string }) {
  const qc = useQueryClient();
  const toast = useToast();
  const confirm = useConfirm();
  const [range, setRange] = useState<(typeof RANGES)[number]['key']>('quarter');
  const days = RANGES.find((r) => r.key === range)?.days ?? 91;
  const from = addDays(today, -370);
  const entries = useEntries(habit.id, from, today);
  const stats = useHabitStats(habit.id, addDays(today, -(days - 1)), today);
  const setEntry = useSetEntry();
  const pending = usePending();
  const [page, setPage] = useState(0);
  const [editing, setEditing] = useState<string | null>(null);
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
    const patch = (value: boolean) => api<Habit>(`/api/habits/${habit.id}`, { method: 'PATCH', body: { archived: value } });
    const settle = async (saved: Habit) => {
      qc.setQueryData(keys.habit(habit.id), saved);
      await qc.invalidateQueries({ queryKey: ['habits'] });
      void qc.invalidateQueries({ queryKey: ['stats'] });
    };
    try {
      await settle(await patch(archived));
      toast({
        message: archived ? `${habit.name} archived: it is off Today and kept under Archived habits.` : `${habit.name} is back on Today.`,
        undo: async () => settle(await patch(!archived)),
      });
    } catch (e) {
      toast({ message: explainText(e, archived ? `archive ${habit.name}` : `unarchive ${habit.name}`) });
    }
  };
  const remove = async () => {
    const yes = await confirm({
      title: `Delete ${habit.name}?`,
      body: `This deletes the habit and all ${count(entries.data?.length ?? 0, 'entry', 'entries')}, for good. To keep its history but take it off Today, archive it instead.`,
      confirm: 'Delete for good',
      danger: true,
    });
    if (!yes) return;
    try {
      await api<null>(`/api/habits/${habit.id}`, { method: 'DELETE' });
      await qc.invalidateQueries({ queryKey: ['habits'] });
      toast({ message: `${habit.name} deleted.` });
      navigate('/');
    } catch (e) {
      toast({ message: explainText(e, `delete ${habit.name}`) });
    }
  };
  const change = (date: string, input: EntryInput | null) => {
    const seen = map.get(date) ?? null;
    const undoInput = entryToInput(seen ?? undefined);
    const made = input ? entryOf(habit.id, date, input) : null;
    toast({ message: `${habit.name}: ${changeWords(habit, date, today, input)}${offlineWords()}`, undo: () => setEntry.mutateAsync({ habit, date, input: undoInput, seen: made }) });
    setEntry.mutate({ habit, date, input, seen }, { onError: (e) => toast({ message: explainText(e, `save ${habit.name} for ${dayLabel(date)}`) }) });
  };

  const sorted = [...(entries.data ?? [])].reverse();
  const pages = Math.max(1, Math.ceil(sorted.length / PAGE));
  const shownPage = Math.min(page, pages - 1);
  const pageEntries = sorted.slice(shownPage * PAGE, shownPage * PAGE + PAGE);
  const daily = isDaily(habit);
  const local = standing(habit, map, today);
  const window = stats.data?.window ?? local.window;
  const streak = stats.data?.current_streak ?? 0;
  const best = stats.data?.best_streaks[0]?.length ?? 0;

  return (
    <section aria-labelledby="habit-title" className="habit-detail" style={{ '--habit-color': habit.color, '--habit-glyph': glyphOn(habit.color) } as React.CSSProperties}>
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
        {habit.kind === 'measurable' && ` · goal ${describeTarget(habit)}${daily ? ' a day' : ''}`}
        {habit.reminders.length > 0 && ` · reminders ${habit.reminders.map((r) => `${r.time} (${describeDays(r.days)})`).join(', ')}`}
        {habit.description && ` · ${habit.description}`}
      </p>

      <div className="cards">
        <div className="card stat score-card">
          <span className="stat-label">Score</span>
          <div className="score-line">
            {stats.data ? <ScoreRing score={stats.data.score} color={habit.color} /> : <span className="stat-value">—</span>}
            <span className="visually-hidden" data-testid="detail-score">
              {stats.data ? `${Math.round(stats.data.score * 100)}%` : 'not available'}
            </span>
          </div>
          <Explain label="How the score works">
            <p>{SCORE_WORDS}</p>
            <p>{SKIP_WORDS}</p>
          </Explain>
        </div>
        <div className="card stat">
          <span className="stat-label">Current streak</span>
          <span className={'stat-value' + (streak > 0 ? '' : ' stat-text')} data-testid="detail-streak">
            {stats.data ? (streak > 0 ? count(streak, 'day') : 'No streak yet') : '—'}
          </span>
          <Explain label="How streaks are counted">
            <p>{STREAK_WORDS}</p>
            <p>{SKIP_WORDS}</p>
          </Explain>
        </div>
        {daily && habit.kind === 'boolean' ? (
          <div className="card stat">
            <span className="stat-label">Best streak</span>
            <span className={'stat-value' + (best > 0 ? '' : ' stat-text')}>{stats.data ? (best > 0 ? count(best, 'day') : 'None yet') : '—'}</span>
          </div>
        ) : (
          <div className="card stat">
            <span className="stat-label">Progress</span>
            <span className="stat-value stat-text" data-testid="detail-progress">
              {progressText(habit, window)}
            </span>
          </div>
        )}
      </div>
      <p className="muted small skip-note">
        <strong>Skipped days</strong> keep a streak going and count as one of its days; they leave the score where it was.
      </p>

      <h2>Last year</h2>
      <div className="chart-box heatmap-box">{entries.isPending ? <Loading lines={2} /> : entries.isError ? <ErrorBox error={entries.error} action="load the check-ins" retry={() => void entries.refetch()} /> : <Heatmap today={today} color={habit.color} cells={cells} />}</div>

      <div className="section-head">
        <h2 id="score-title">Score over time</h2>
        <div className="segmented" role="group" aria-label="Score range">
          {RANGES.map((r) => (
            <button key={r.key} type="button" aria-pressed={range === r.key} onClick={() => setRange(r.key)}>
              {r.label}
            </button>
          ))}
        </div>
      </div>
      <div className="chart-box score-box">
        {stats.isPending ? <Loading lines={2} /> : isNotAvailable(stats.error) ? <NotAvailable what="Scores and streaks" /> : stats.isError ? <ErrorBox error={stats.error} action="load the score" retry={() => void stats.refetch()} /> : <ScoreChart points={stats.data.scores} color={habit.color} />}
      </div>
      {stats.data && stats.data.best_streaks.length > 0 && (
        <>
          <h2>Best streaks</h2>
          <ol className="streaks">
            {stats.data.best_streaks.map((s) => (
              <li key={s.start}>
                <strong>{count(s.length, 'day')}</strong> <span className="muted">{longDate(s.start)} – {longDate(s.end)}</span>
              </li>
            ))}
          </ol>
        </>
      )}

      <h2 id="entries-title">Entries</h2>
      <EntryForm habit={habit} today={today} entries={map} onSave={change} />
      {entries.data && sorted.length === 0 && <p className="muted">No entries yet.</p>}
      <ul className="entry-list" aria-labelledby="entries-title">
        {pageEntries.map((e) => (
          <li key={e.date}>
            <span className="entry-date">{dayLabel(e.date)}</span>
            <span className={`entry-status status-${cellState(habit, e)}`}>{describeEntry(habit, e)}</span>
            {e.source !== 'manual' && <span className="badge">{e.source}</span>}
            <button type="button" className="small-button push-right" aria-haspopup="dialog" aria-label={`Edit ${dayLabel(e.date)}`} onClick={() => setEditing(e.date)}>
              Edit
            </button>
            {e.note && <span className="entry-note">{e.note}</span>}
          </li>
        ))}
      </ul>
      {pages > 1 && (
        <nav className="pager" aria-label="Entry pages">
          <button type="button" disabled={shownPage === 0} onClick={() => setPage(shownPage - 1)}>
            Newer
          </button>
          <span className="muted" aria-live="polite">
            Page {shownPage + 1} of {pages}
          </span>
          <button type="button" disabled={shownPage >= pages - 1} onClick={() => setPage(shownPage + 1)}>
            Older
          </button>
        </nav>
      )}
      {editing && (
        <DayEditor
          habit={habit}
          date={editing}
          today={today}
          entry={map.get(editing)}
          pending={isPending(pending, habit.id, editing)}
          onClose={() => setEditing(null)}
          onSave={(input) => {
            const date = editing;
            setEditing(null);
            change(date, input);
          }}
        />
      )}
    </section>
  );
}

function EntryForm({ habit, today, entries, onSave }: { habit: Habit; today: string; entries: Map<string, Entry>; onSave: (date: string, input: EntryInput | null) => void }) {
  const [date, setDate] = useState(today);
  const existing = entries.get(date);
  const [status, setStatus] = useState<'done' | 'skipped' | 'value' | 'none'>(habit.kind === 'boolean' ? 'done' : 'value');
  const [value, setValue] = useState('');
  const [note, setNote] = useState('');
  const [error, setError] = useState<string | null>(null);
  // The form starts from what the chosen day holds; nothing changes until saved.
  const existingKey = existing ? `${existing.date}|${existing.status}|${existing.value}|${existing.note}` : date;
  useEffect(() => {
    if (existing?.status === 'skipped') setStatus('skipped');
    else setStatus(habit.kind === 'boolean' ? 'done' : 'value');
    setValue(existing?.status === 'value' && existing.value !== null ? formatNumber(existing.value) : '');
    setNote(existing?.note ?? '');
  }, [existingKey]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (!date) return setError('Choose a day.');
    if (date > today) return setError('That day has not happened yet: choose today or an earlier day.');
    let input: EntryInput | null;
    if (status === 'none') input = null;
    else if (status === 'value') {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n) || n < 0) return setError('Enter a number of at least 0, such as 1.25.');
      input = { value: n };
    } else input = { status };
    if (input && note.trim()) input = { ...input, note: note.trim() };
    onSave(date, input);
  };
  return (
    <form className="entry-form" onSubmit={submit} aria-label="Add or change a day">
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
        <input value={note} maxLength={2000} onChange={(e) => setNote(e.target.value)} />
      </label>
      <button type="submit">Save entry</button>
      <p className="form-error" role="alert">
        {error}
      </p>
    </form>
  );
}
