// Archived habits: off Today but kept, with their history; each can come back.
import { useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { explainText } from '../lib/errors';
import { describeFrequency } from '../lib/habitForm';
import { useHabits } from '../lib/queries';
import { useTitle } from '../lib/router';
import type { Habit } from '../lib/types';
import { Link } from '../components/Link';
import { ErrorBox, Loading } from '../components/Status';
import { useToast } from '../components/Toast';

export function Archived() {
  useTitle('Archived habits');
  const qc = useQueryClient();
  const toast = useToast();
  const all = useHabits(true);
  const archived = (all.data ?? []).filter((h) => h.archived);
  const setArchived = async (habit: Habit, value: boolean) => {
    const patch = (v: boolean) => api<Habit>(`/api/habits/${habit.id}`, { method: 'PATCH', body: { archived: v } });
    const settle = async () => {
      await qc.invalidateQueries({ queryKey: ['habits'] });
      await qc.invalidateQueries({ queryKey: ['habit', habit.id] });
      void qc.invalidateQueries({ queryKey: ['stats'] });
    };
    try {
      await patch(value);
      await settle();
      toast({ message: `${habit.name} is back on Today.`, undo: async () => { await patch(!value); await settle(); } });
    } catch (e) {
      toast({ message: explainText(e, `unarchive ${habit.name}`) });
    }
  };
  return (
    <section aria-labelledby="archived-title">
      <h1 id="archived-title">Archived habits</h1>
      <p className="muted">Archived habits are off Today; their check-ins are kept. Unarchive one to track it again.</p>
      {all.isPending && <Loading lines={3} label="Loading archived habits…" />}
      {all.isError && <ErrorBox error={all.error} action="load your archived habits" retry={() => void all.refetch()} />}
      {all.data && archived.length === 0 && <p className="empty">Nothing archived. Archive a habit from its page to take it off Today without losing its history.</p>}
      <ul className="habit-list">
        {archived.map((h) => (
          <li key={h.id} className="card archived-row" style={{ '--habit-color': h.color } as React.CSSProperties}>
            <span className="color-dot" aria-hidden="true" />
            <span className="habit-text">
              <Link href={`/habits/${h.id}`} className="habit-name">
                {h.name}
              </Link>
              <span className="muted small">{describeFrequency(h.frequency)}</span>
            </span>
            <button type="button" className="push-right" onClick={() => void setArchived(h, false)}>
              Unarchive<span className="visually-hidden"> {h.name}</span>
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}
