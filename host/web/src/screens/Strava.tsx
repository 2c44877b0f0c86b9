// Strava: connect or disconnect, sync status, the rules that turn workouts into
// check-ins, and a backfill of past workouts.
import { useState, type FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { explainText } from '../lib/errors';
import { addDays, relativeTime } from '../lib/dates';
import { useHabits } from '../lib/queries';
import { useTitle } from '../lib/router';
import type { Habit, RuleMeasure, StravaRule, StravaStatus, User } from '../lib/types';
import { useConfirm } from '../components/Modal';
import { ErrorBox, isNotAvailable, Loading, NotAvailable } from '../components/Status';

export interface RuleDraft {
  habit_id: string;
  sport_types: string;
  min_distance_km: string;
  min_moving_time_min: string;
  measure: RuleMeasure;
}

/** The rule body from the editor's text fields; an error message for a bad field. */
export function ruleFromDraft(d: RuleDraft): Omit<StravaRule, 'id'> | string {
  if (!d.habit_id) return 'Choose a habit.';
  const sport_types = d.sport_types.split(',').map((s) => s.trim()).filter(Boolean);
  if (sport_types.length === 0) return 'Name at least one sport type, such as Run.';
  const num = (s: string, what: string): number | null | string => {
    if (s.trim() === '') return null;
    const n = Number(s);
    return Number.isFinite(n) && n >= 0 ? n : `${what} must be a number of at least 0.`;
  };
  const km = num(d.min_distance_km, 'Minimum distance');
  if (typeof km === 'string') return km;
  const min = num(d.min_moving_time_min, 'Minimum moving time');
  if (typeof min === 'string') return min;
  return {
    habit_id: d.habit_id,
    sport_types,
    min_distance_m: km === null ? null : Math.round(km * 1000),
    min_moving_time_s: min === null ? null : Math.round(min * 60),
    measure: d.measure,
  };
}

export function ruleToDraft(r: StravaRule): RuleDraft {
  return {
    habit_id: r.habit_id,
    sport_types: r.sport_types.join(', '),
    min_distance_km: r.min_distance_m === null ? '' : String(r.min_distance_m / 1000),
    min_moving_time_min: r.min_moving_time_s === null ? '' : String(r.min_moving_time_s / 60),
    measure: r.measure,
  };
}

export function Strava({ user }: { user: User }) {
  useTitle('Strava');
  const qc = useQueryClient();
  const [polling, setPolling] = useState(0);
  const status = useQuery({
    queryKey: ['strava-status'],
    queryFn: () => api<StravaStatus>('/api/strava/status'),
    retry: false,
    refetchInterval: polling > Date.now() ? 2000 : false,
  });
  const [error, setError] = useState<string | null>(null);
  const [since, setSince] = useState(addDays(user.today ?? new Date().toISOString().slice(0, 10), -30));
  const [backfillMessage, setBackfillMessage] = useState<string | null>(null);

  const confirm = useConfirm();
  if (status.isPending) return <Loading lines={4} label="Loading Strava…" />;
  if (isNotAvailable(status.error)) {
    return (
      <section>
        <h1>Strava</h1>
        <NotAvailable what="Strava sync" />
      </section>
    );
  }
  if (status.isError) return <ErrorBox error={status.error} action="load your Strava status" retry={() => void status.refetch()} />;
  const s = status.data;
  if (s.configured === false) return <NotSetUp user={user} />;

  const disconnect = async () => {
    const yes = await confirm({
      title: 'Disconnect Strava?',
      body: 'Synced activities and the check-ins they made stay. New workouts stop arriving until you connect again.',
      confirm: 'Disconnect',
      danger: true,
    });
    if (!yes) return;
    setError(null);
    try {
      await api<null>('/api/strava/connection', { method: 'DELETE' });
      await qc.invalidateQueries({ queryKey: ['strava-status'] });
    } catch (e) {
      setError(explainText(e, 'disconnect Strava'));
    }
  };
  const backfill = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBackfillMessage(null);
    try {
      await api('/api/strava/backfill', { body: { since } });
      setBackfillMessage(`Backfill since ${since} started; this page follows its progress.`);
      setPolling(Date.now() + 60_000);
    } catch (err) {
      setError(explainText(err, 'start the backfill'));
    }
  };
  const athlete = s.athlete as { firstname?: string; lastname?: string; username?: string } | null;
  return (
    <section aria-labelledby="strava-title">
      <h1 id="strava-title">Strava</h1>
      <div className="card">
        <dl className="facts">
          <dt>Status</dt>
          <dd data-testid="strava-status">{s.connected ? 'Connected' : 'Not connected'}</dd>
          {athlete && (
            <>
              <dt>Athlete</dt>
              <dd>{[athlete.firstname, athlete.lastname].filter(Boolean).join(' ') || athlete.username}</dd>
            </>
          )}
          <dt>Last sync</dt>
          <dd title={s.last_sync ? new Date(typeof s.last_sync === 'number' || /^\d+$/.test(s.last_sync) ? Number(s.last_sync) : s.last_sync).toLocaleString() : undefined}>{s.last_sync ? relativeTime(s.last_sync) : 'never'}</dd>
          <dt>Last problem</dt>
          <dd className={s.last_error ? 'form-error' : undefined}>{s.last_error ? `${s.last_error}${s.needs_reconnect ? ' Connect again to resume syncing.' : ''}` : 'none'}</dd>
        </dl>
        <div className="actions">
          {s.connected ? (
            <button type="button" onClick={() => void disconnect()}>
              Disconnect
            </button>
          ) : (
            <a className="button primary" href="/api/strava/connect">
              Connect Strava
            </a>
          )}
        </div>
        {s.connected && (
          <form className="inline-form" onSubmit={(e) => void backfill(e)}>
            <label>
              Import workouts since
              <input type="date" value={since} onChange={(e) => setSince(e.target.value)} required />
            </label>
            <button type="submit">Backfill</button>
            {polling > Date.now() && status.isFetching && <span className="muted small">checking progress…</span>}
          </form>
        )}
        <p className="form-ok" role="status">
          {backfillMessage}
        </p>
        <p className="form-error" role="alert">
          {error}
        </p>
      </div>
      <Rules />
    </section>
  );
}

/** Strava on a server without a Strava application: said plainly, nothing to click. */
function NotSetUp({ user }: { user: User }) {
  return (
    <section aria-labelledby="strava-title">
      <h1 id="strava-title">Strava</h1>
      <div className="card">
        <p data-testid="strava-not-set-up">
          <strong>Strava is not set up on this server.</strong> Workouts cannot sync until an administrator connects HAM
          to a Strava application. Your habits and check-ins work without it.
        </p>
        {user.is_admin && (
          <p className="muted small">
            As an administrator: create an application at strava.com/settings/api and give HAM its client id, client
            secret and a verify token; the Strava guide in HAM’s documentation (docs/strava.md) has the steps.
          </p>
        )}
        <div className="actions">
          <button type="button" className="primary" disabled aria-describedby="strava-title">
            Connect Strava
          </button>
          <span className="muted small">Available once Strava is set up.</span>
        </div>
      </div>
    </section>
  );
}

const EMPTY: RuleDraft = { habit_id: '', sport_types: 'Run', min_distance_km: '', min_moving_time_min: '', measure: 'done' };

function Rules() {
  const habits = useHabits();
  const rules = useQuery({
    queryKey: ['strava-rules'],
    queryFn: async () => {
      const body = await api<{ rules: StravaRule[] } | StravaRule[]>('/api/strava/rules');
      return Array.isArray(body) ? body : body.rules;
    },
    retry: false,
  });
  return (
    <>
      <h2>Rules: workouts that check in a habit</h2>
      {rules.isPending && <Loading lines={2} />}
      {rules.isError && (isNotAvailable(rules.error) ? <NotAvailable what="Mapping rules" /> : <ErrorBox error={rules.error} action="load your rules" retry={() => void rules.refetch()} />)}
      {rules.data && habits.data && (
        <ul className="rule-list">
          {rules.data.map((r) => (
            <RuleEditor key={r.id} rule={r} habits={habits.data} />
          ))}
          <RuleEditor habits={habits.data} />
        </ul>
      )}
    </>
  );
}

function RuleEditor({ rule, habits }: { rule?: StravaRule; habits: Habit[] }) {
  const qc = useQueryClient();
  const [draft, setDraft] = useState<RuleDraft>(rule ? ruleToDraft(rule) : { ...EMPTY, habit_id: habits[0]?.id ?? '' });
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const set = <K extends keyof RuleDraft>(k: K, v: RuleDraft[K]) => {
    setDraft((d) => ({ ...d, [k]: v }));
    setSaved(false);
  };
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const body = ruleFromDraft(draft);
    if (typeof body === 'string') return setError(body);
    try {
      if (rule) await api(`/api/strava/rules/${encodeURIComponent(rule.id)}`, { method: 'PATCH', body });
      else {
        await api('/api/strava/rules', { body });
        setDraft({ ...EMPTY, habit_id: habits[0]?.id ?? '' });
      }
      setSaved(true);
      await qc.invalidateQueries({ queryKey: ['strava-rules'] });
    } catch (err) {
      setError(explainText(err, 'save the rule'));
    }
  };
  const remove = async () => {
    if (!rule) return;
    try {
      await api<null>(`/api/strava/rules/${encodeURIComponent(rule.id)}`, { method: 'DELETE' });
      await qc.invalidateQueries({ queryKey: ['strava-rules'] });
    } catch (err) {
      setError(explainText(err, 'delete the rule'));
    }
  };
  const label = rule ? `Rule for ${habits.find((h) => h.id === rule.habit_id)?.name ?? 'a habit'}` : 'New rule';
  return (
    <li className="card">
      <form className="rule-form" onSubmit={(e) => void save(e)} aria-label={label}>
        <label>
          Habit
          <select value={draft.habit_id} onChange={(e) => set('habit_id', e.target.value)}>
            {habits.length === 0 && <option value="">No habits yet</option>}
            {habits.map((h) => (
              <option key={h.id} value={h.id}>
                {h.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Sport types
          <input value={draft.sport_types} placeholder="Run, TrailRun" onChange={(e) => set('sport_types', e.target.value)} />
        </label>
        <label>
          Min distance (km)
          <input type="number" min={0} step="any" value={draft.min_distance_km} onChange={(e) => set('min_distance_km', e.target.value)} />
        </label>
        <label>
          Min moving time (min)
          <input type="number" min={0} step="any" value={draft.min_moving_time_min} onChange={(e) => set('min_moving_time_min', e.target.value)} />
        </label>
        <label>
          Records
          <select value={draft.measure} onChange={(e) => set('measure', e.target.value as RuleMeasure)}>
            <option value="done">Done</option>
            <option value="distance_km">Distance (km)</option>
            <option value="moving_time_min">Moving time (min)</option>
          </select>
        </label>
        <div className="actions">
          <button type="submit" className={rule ? undefined : 'primary'}>
            {rule ? 'Save rule' : 'Add rule'}
          </button>
          {rule && (
            <button type="button" className="danger" onClick={() => void remove()}>
              Delete
            </button>
          )}
          {saved && <span className="form-ok">Saved</span>}
        </div>
        <p className="form-error" role="alert">
          {error}
        </p>
      </form>
    </li>
  );
}
