// The day editor: one habit, one day. Nothing changes until Save; Escape, Cancel
// or a tap outside leave the day as it was. A measurable day gets a number with −
// and + steppers and quick amounts; any day can be skipped, noted or cleared.
import { useState, type FormEvent } from 'react';
import { dayLabel } from '../lib/dates';
import { amountStep, quickAmounts } from '../lib/entries';
import { formatNumber, withUnit } from '../lib/format';
import { describeTarget } from '../lib/habitForm';
import type { Entry, EntryInput, Habit } from '../lib/types';
import { Modal } from './Modal';

type Choice = 'done' | 'skipped' | 'none' | 'value';

export function DayEditor({ habit, date, today, entry, pending = false, onSave, onClose }: { habit: Habit; date: string; today: string; entry: Entry | undefined; pending?: boolean; onSave: (input: EntryInput | null) => void; onClose: () => void }) {
  const measurable = habit.kind === 'measurable';
  const [choice, setChoice] = useState<Choice>(entry?.status === 'skipped' ? 'skipped' : measurable ? 'value' : entry ? 'done' : 'none');
  const [value, setValue] = useState(entry?.status === 'value' && entry.value !== null ? formatNumber(entry.value) : '');
  const [note, setNote] = useState(entry?.note ?? '');
  const [error, setError] = useState<string | null>(null);
  const step = amountStep(habit);
  const unit = habit.unit ? ` ${habit.unit}` : '';
  const current = Number(value);
  const nudge = (by: number) => {
    const base = value.trim() === '' || !Number.isFinite(current) ? 0 : current;
    setValue(formatNumber(Math.max(0, Number((base + by).toPrecision(12)))));
    setChoice('value');
    setError(null);
  };

  const save = (e: FormEvent) => {
    e.preventDefault();
    const withNote = <T extends object>(body: T): T => (note.trim() ? { ...body, note: note.trim() } : body);
    let input: EntryInput | null;
    if (choice === 'skipped') input = withNote({ status: 'skipped' as const });
    else if (choice === 'done') input = withNote({ status: 'done' as const });
    else if (choice === 'none') input = null;
    else {
      if (value.trim() === '' && !entry) return onClose();
      if (value.trim() === '') return setError('Enter an amount, or use Clear day to remove this day.');
      if (!Number.isFinite(current) || current < 0) return setError('Enter a number of at least 0, such as 1.25.');
      input = withNote({ value: current });
    }
    onSave(input);
  };

  const when = date === today ? `Today, ${dayLabel(date)}` : dayLabel(date);
  return (
    <Modal title={habit.name} subtitle={when + (measurable && habit.target ? ` · goal ${describeTarget(habit)}` : '')} onClose={onClose} className="day-editor">
      <form onSubmit={save} className="stack" noValidate>
        {pending && (
          <p className="notice pending-note" data-testid="pending-note">
            <span className="pending-mark" aria-hidden="true" /> Not sent yet: this day's check-in is kept on this device and sent when the connection returns.
          </p>
        )}
        {measurable ? (
          <>
            <div className="field">
              <label htmlFor="day-amount">Amount{habit.unit ? ` (${habit.unit})` : ''}</label>
              <div className="stepper">
                <button type="button" className="step" aria-label={`Less (−${formatNumber(step)}${unit})`} onClick={() => nudge(-step)} disabled={choice === 'skipped'}>
                  <span aria-hidden="true">−</span>
                </button>
                <input
                  id="day-amount"
                  data-autofocus
                  type="number"
                  inputMode="decimal"
                  min={0}
                  step="any"
                  value={value}
                  placeholder="0"
                  aria-invalid={error ? true : undefined}
                  aria-describedby={error ? 'day-error' : undefined}
                  disabled={choice === 'skipped'}
                  onChange={(e) => {
                    setValue(e.target.value);
                    setError(null);
                  }}
                />
                <button type="button" className="step" aria-label={`More (+${formatNumber(step)}${unit})`} onClick={() => nudge(step)} disabled={choice === 'skipped'}>
                  <span aria-hidden="true">+</span>
                </button>
              </div>
            </div>
            <div className="quick-amounts" role="group" aria-label="Add an amount">
              {quickAmounts(habit).map((a) => (
                <button key={a} type="button" onClick={() => nudge(a)} disabled={choice === 'skipped'}>
                  +{withUnit(a, habit.unit)}
                </button>
              ))}
            </div>
            <label className="inline check-line">
              <input type="checkbox" checked={choice === 'skipped'} onChange={(e) => setChoice(e.target.checked ? 'skipped' : 'value')} />
              Skip this day
            </label>
          </>
        ) : (
          <fieldset className="choices">
            <legend>This day</legend>
            {(['done', 'none', 'skipped'] as const).map((c) => (
              <label key={c} className="inline choice">
                <input type="radio" name="day-choice" value={c} checked={choice === c} data-autofocus={choice === c ? true : undefined} onChange={() => setChoice(c)} />
                {c === 'done' ? 'Done' : c === 'none' ? 'Not done' : 'Skipped'}
              </label>
            ))}
          </fieldset>
        )}
        <p className="muted small">A skipped day keeps your streak going and leaves the score as it was.</p>
        <div className="field">
          <label htmlFor="day-note">Note</label>
          <textarea id="day-note" rows={2} maxLength={2000} value={note} onChange={(e) => setNote(e.target.value)} />
        </div>
        <p className="form-error" id="day-error" role="alert">
          {error}
        </p>
        <div className="actions modal-actions">
          <button type="submit" className="primary">
            Save
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          {entry && (
            <button type="button" className="danger push-right" onClick={() => onSave(null)}>
              Clear day
            </button>
          )}
        </div>
      </form>
    </Modal>
  );
}
