// Arrange: the order of the active habits, by drag (a pointer on the handle,
// mouse or finger) or by keyboard (arrow keys on the handle, or the Up and Down
// buttons). Each move is saved at once with PUT /api/habits/order; Today shows
// habits in this order, within their groups.
import { useEffect, useRef, useState, type KeyboardEvent, type PointerEvent as ReactPointerEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { explainText } from '../lib/errors';
import { move } from '../lib/groups';
import { keys, useHabits } from '../lib/queries';
import { useTitle } from '../lib/router';
import type { Habit } from '../lib/types';
import { Link } from '../components/Link';
import { ErrorBox, Loading } from '../components/Status';
import { useToast } from '../components/Toast';

interface Drag {
  id: string;
  pointer: number;
}

export function Arrange() {
  useTitle('Arrange habits');
  const habits = useHabits();
  const qc = useQueryClient();
  const toast = useToast();
  // The order on screen: the server's, or a move not yet confirmed.
  const [order, setOrder] = useState<string[] | null>(null);
  const [drag, setDrag] = useState<Drag | null>(null);
  const [said, setSaid] = useState('');
  const rows = useRef(new Map<string, HTMLLIElement>());
  const handles = useRef(new Map<string, HTMLButtonElement>());
  const focusAfter = useRef<string | null>(null);

  const list = habits.data ?? [];
  const byId = new Map(list.map((h) => [h.id, h]));
  const ids = order ?? list.map((h) => h.id);
  const shown = ids.map((id) => byId.get(id)).filter((h): h is Habit => !!h);

  useEffect(() => {
    const id = focusAfter.current;
    if (id) {
      focusAfter.current = null;
      handles.current.get(id)?.focus();
    }
  });

  const save = async (next: string[], moved: Habit) => {
    setOrder(next);
    setSaid(`${moved.name}: position ${next.indexOf(moved.id) + 1} of ${next.length}.`);
    try {
      const saved = await api<{ habits: Habit[] }>('/api/habits/order', { method: 'PUT', body: { ids: next } });
      qc.setQueryData(keys.habits(false), saved.habits);
      setOrder(null);
      void qc.invalidateQueries({ queryKey: ['habits'] });
    } catch (e) {
      setOrder(null);
      toast({ message: explainText(e, `move ${moved.name}`) });
    }
  };

  const moveTo = (habit: Habit, to: number) => {
    const from = ids.indexOf(habit.id);
    const next = move(ids, from, to);
    if (next.join() === ids.join()) return;
    focusAfter.current = habit.id;
    void save(next, habit);
  };

  const onKey = (habit: Habit, e: KeyboardEvent) => {
    const at = ids.indexOf(habit.id);
    const to = { ArrowUp: at - 1, ArrowDown: at + 1, Home: 0, End: ids.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    moveTo(habit, to);
  };

  // Dragging: from a press on the handle, the page's pointer moves place the
  // habit where the pointer is among the rows; letting go saves the order. The
  // listeners are on the window, not the handle: React moves the row in the
  // document as it goes, and a moved element loses its pointer capture.
  const latest = useRef({ ids, list, save });
  latest.current = { ids, list, save };
  const onPointerDown = (habit: Habit, e: ReactPointerEvent<HTMLButtonElement>) => {
    if (e.button !== 0) return;
    e.preventDefault();
    setDrag({ id: habit.id, pointer: e.pointerId });
    setOrder(ids);
  };
  useEffect(() => {
    if (!drag) return;
    const onMove = (e: PointerEvent) => {
      if (e.pointerId !== drag.pointer) return;
      const now = latest.current.ids;
      const at = now.indexOf(drag.id);
      let to = at;
      now.forEach((id, i) => {
        const box = rows.current.get(id)?.getBoundingClientRect();
        if (!box) return;
        const middle = box.top + box.height / 2;
        if (i < at && e.clientY < middle) to = Math.min(to, i);
        if (i > at && e.clientY > middle) to = Math.max(to, i);
      });
      if (to !== at) setOrder(move(now, at, to));
    };
    const onUp = (e: PointerEvent) => {
      if (e.pointerId !== drag.pointer) return;
      const { ids: now, list: stored, save: store } = latest.current;
      const habit = stored.find((h) => h.id === drag.id);
      setDrag(null);
      if (habit && now.join() !== stored.map((h) => h.id).join()) void store(now, habit);
      else setOrder(null);
    };
    window.addEventListener('pointermove', onMove);
    window.addEventListener('pointerup', onUp);
    window.addEventListener('pointercancel', onUp);
    return () => {
      window.removeEventListener('pointermove', onMove);
      window.removeEventListener('pointerup', onUp);
      window.removeEventListener('pointercancel', onUp);
    };
  }, [drag]);

  return (
    <section aria-labelledby="arrange-title">
      <h1 id="arrange-title">Arrange habits</h1>
      <p className="muted">
        Drag a habit by its handle, or focus the handle and use the arrow keys (Home and End for the ends). Today shows habits in this order, within their groups; give a habit a group from its edit page.
      </p>
      {habits.isPending && <Loading lines={4} label="Loading habits…" />}
      {habits.isError && <ErrorBox error={habits.error} action="load your habits" retry={() => void habits.refetch()} />}
      {habits.data && list.length === 0 && (
        <p className="empty">
          No habits to arrange yet. <Link href="/habits/new">Create one</Link>.
        </p>
      )}
      <p className="visually-hidden" aria-live="polite" data-testid="arrange-status">
        {said}
      </p>
      <ol className="arrange-list" data-testid="arrange-list">
        {shown.map((h, i) => (
          <li
            key={h.id}
            ref={(el) => {
              if (el) rows.current.set(h.id, el);
              else rows.current.delete(h.id);
            }}
            className={'card arrange-row' + (drag?.id === h.id ? ' is-dragging' : '')}
            style={{ '--habit-color': h.color } as React.CSSProperties}
          >
            <button
              type="button"
              className="drag-handle"
              aria-label={`Move ${h.name}, position ${i + 1} of ${shown.length}`}
              aria-describedby="arrange-title"
              ref={(el) => {
                if (el) handles.current.set(h.id, el);
                else handles.current.delete(h.id);
              }}
              onKeyDown={(e) => onKey(h, e)}
              onPointerDown={(e) => onPointerDown(h, e)}
            >
              <span aria-hidden="true" className="grip" />
            </button>
            <span className="habit-text">
              <span className="habit-name">{h.name}</span>
              {h.group && <span className="muted small">{h.group}</span>}
            </span>
            <span className="arrange-buttons">
              <button type="button" disabled={i === 0} onClick={() => moveTo(h, i - 1)}>
                Up<span className="visually-hidden"> {h.name}</span>
              </button>
              <button type="button" disabled={i === shown.length - 1} onClick={() => moveTo(h, i + 1)}>
                Down<span className="visually-hidden"> {h.name}</span>
              </button>
            </span>
          </li>
        ))}
      </ol>
    </section>
  );
}
