// Activities: synced workouts, filterable by sport, with the check-ins they made.
import { useQuery } from '@tanstack/react-query';
import { api } from '../lib/api';
import { addDays, dayLabel } from '../lib/dates';
import { describeEntry } from '../lib/entries';
import { useHabits } from '../lib/queries';
import { navigate, useSearch, useTitle } from '../lib/router';
import type { Activity, Entry, Habit, User } from '../lib/types';
import { ErrorBox, Loading } from '../components/Status';

export function formatDistance(m: number | null): string {
  if (m === null) return '';
  return m >= 1000 ? `${(m / 1000).toFixed(m >= 10000 ? 1 : 2)} km` : `${Math.round(m)} m`;
}

export function formatDuration(s: number | null): string {
  if (s === null) return '';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

export function Activities({ user }: { user: User }) {
  useTitle('Activities');
  const sport = useSearch().get('sport') ?? '';
  const today = user.today ?? new Date().toISOString().slice(0, 10);
  const from = addDays(today, -365);
  const all = useQuery({
    queryKey: ['activities', 'all', from, today],
    queryFn: async () => (await api<{ activities: Activity[] }>(`/api/activities?from=${from}&to=${today}`)).activities,
  });
  const habits = useHabits();
  // Check-ins written by a sync (source other than manual), by date.
  const synced = useQuery({
    queryKey: ['synced-entries', from, today, (habits.data ?? []).map((h) => h.id).join(',')],
    enabled: !!habits.data && (all.data?.length ?? 0) > 0,
    queryFn: async () => {
      const byDate = new Map<string, { habit: Habit; entry: Entry }[]>();
      for (const habit of habits.data ?? []) {
        const { entries } = await api<{ entries: Entry[] }>(`/api/habits/${habit.id}/entries?from=${from}&to=${today}`);
        for (const entry of entries.filter((e) => e.source !== 'manual')) {
          byDate.set(entry.date, [...(byDate.get(entry.date) ?? []), { habit, entry }]);
        }
      }
      return byDate;
    },
  });
  const sports = [...new Set((all.data ?? []).map((a) => a.sport_type))].sort();
  const shown = (all.data ?? []).filter((a) => !sport || a.sport_type === sport).sort((a, b) => b.start_utc - a.start_utc);
  return (
    <section aria-labelledby="activities-title">
      <div className="page-head">
        <h1 id="activities-title">Activities</h1>
        <label className="push-right inline">
          Sport
          <select value={sport} onChange={(e) => navigate(e.target.value ? `/activities?sport=${encodeURIComponent(e.target.value)}` : '/activities', { replace: true })}>
            <option value="">All sports</option>
            {sports.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </div>
      {all.isPending && <Loading lines={4} />}
      {all.isError && <ErrorBox error={all.error} action="load your activities" retry={() => void all.refetch()} />}
      {all.data && shown.length === 0 && <p className="muted">No activities in the last year. Connect Strava to sync your workouts.</p>}
      <ul className="activity-list">
        {shown.map((a) => {
          const date = a.start_local.slice(0, 10);
          const checkins = synced.data?.get(date) ?? [];
          return (
            <li key={`${a.source}:${a.external_id}`} className="card activity">
              <div className="activity-head">
                <strong>{a.name || a.sport_type}</strong>
                <span className="badge">{a.sport_type}</span>
                <span className="muted small push-right">
                  {dayLabel(date)} {a.start_local.slice(11, 16)}
                </span>
              </div>
              <p className="activity-facts">
                {formatDistance(a.distance_m) && <span>{formatDistance(a.distance_m)}</span>}
                {a.moving_time_s !== null && <span>{formatDuration(a.moving_time_s)} moving</span>}
                {a.elevation_gain_m !== null && <span>{Math.round(a.elevation_gain_m)} m up</span>}
                {a.average_heartrate !== null && <span>{Math.round(a.average_heartrate)} bpm</span>}
              </p>
              {checkins.length > 0 && (
                <p className="small">
                  Checked in:{' '}
                  {checkins.map(({ habit, entry }) => (
                    <span key={habit.id} className="badge" style={{ borderColor: habit.color }}>
                      {habit.name}: {describeEntry(habit, entry)}
                    </span>
                  ))}
                </p>
              )}
            </li>
          );
        })}
      </ul>
    </section>
  );
}
