// Create or edit a habit: yes/no or measurable, its group, how often, color, reminders.
import { useEffect, useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../lib/api';
import { PALETTE } from '../lib/colors';
import { explainText } from '../lib/errors';
import {
  addReminder,
  applyPreset,
  MAX_GROUP_CHARS,
  MAX_REMINDERS,
  removeReminder,
  toggleReminderDay,
  WEEKDAYS,
  type ReminderRow,
  emptyHabitForm,
  presetOf,
  habitFormToInput,
  habitToForm,
  validateHabitForm,
  type FrequencyPreset,
  type HabitFormErrors,
  type HabitFormValues,
} from '../lib/habitForm';
import { keys, useHabit, useHabits } from '../lib/queries';
import { navigate, useTitle } from '../lib/router';
import type { Habit } from '../lib/types';
import { ErrorBox, Loading } from '../components/Status';

export function HabitFormScreen({ id }: { id?: string | undefined }) {
  const habit = useHabit(id ?? '');
  useTitle(id ? 'Edit habit' : 'New habit');
  if (id && habit.isPending) return <Loading label="Loading the habit…" lines={6} />;
  if (id && habit.isError) return <ErrorBox error={habit.error} action="load the habit" retry={() => void habit.refetch()} />;
  return <HabitForm habit={id ? habit.data : undefined} />;
}

function HabitForm({ habit }: { habit: Habit | undefined }) {
  const qc = useQueryClient();
  const [values, setValues] = useState<HabitFormValues>(() => (habit ? habitToForm(habit) : emptyHabitForm()));
  const [errors, setErrors] = useState<HabitFormErrors>({});
  const [serverError, setServerError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [preset, setPreset] = useState<FrequencyPreset>(() => presetOf(values, !!habit && 'weekdays' in habit.frequency));
  // The groups in use, offered as suggestions so one is not typed two ways.
  const all = useHabits(true);
  const groups = [...new Set((all.data ?? []).flatMap((h) => (h.group ? [h.group] : [])))].sort((a, b) => a.localeCompare(b));
  useEffect(() => {
    if (habit) {
      const v = habitToForm(habit);
      setValues(v);
      setPreset(presetOf(v, 'weekdays' in habit.frequency));
    }
  }, [habit]);

  const choosePreset = (p: FrequencyPreset) => {
    setPreset(p);
    setValues((v) => ({ ...v, ...applyPreset(p, v.times, v.days) }));
    setErrors((e) => ({ ...e, times: undefined, days: undefined, weekdays: undefined }));
  };

  const set = <K extends keyof HabitFormValues>(key: K, value: HabitFormValues[K]) => {
    setValues((v) => ({ ...v, [key]: value }));
    if (errors[key]) setErrors((e) => ({ ...e, [key]: undefined }));
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const found = validateHabitForm(values, preset === 'weekdays');
    setErrors(found);
    setServerError(null);
    const first = Object.keys(found)[0];
    if (first) {
      document.getElementById(`habit-${first}`)?.focus();
      return;
    }
    setBusy(true);
    try {
      const body = habitFormToInput(values, preset === 'weekdays');
      const saved = habit
        ? await api<Habit>(`/api/habits/${habit.id}`, { method: 'PATCH', body })
        : await api<Habit>('/api/habits', { body });
      qc.setQueryData(keys.habit(saved.id), saved);
      await qc.invalidateQueries({ queryKey: ['habits'] });
      navigate(habit ? `/habits/${saved.id}` : '/');
    } catch (err) {
      // The host names the field at fault: "target: …".
      if (err instanceof ApiError && err.code === 'invalid_field') {
        const field = err.message.split(':')[0] ?? '';
        const map: Record<string, keyof HabitFormValues> = { name: 'name', target: 'targetValue', unit: 'unit', 'frequency.weekdays': 'weekdays', frequency: 'times', color: 'color', reminders: 'reminders', description: 'description', group: 'group' };
        const key = Object.entries(map).find(([k]) => field.startsWith(k))?.[1];
        if (key) setErrors((x) => ({ ...x, [key]: err.message }));
      }
      setServerError(explainText(err, habit ? 'save the changes' : 'create the habit'));
    } finally {
      setBusy(false);
    }
  };

  const setReminders = (change: (rows: ReminderRow[]) => ReminderRow[]) => {
    setValues((v) => ({ ...v, reminders: change(v.reminders) }));
    if (errors.reminders) setErrors((e) => ({ ...e, reminders: undefined }));
  };
  const setRow = (index: number, row: ReminderRow) => setReminders((rows) => rows.map((r, i) => (i === index ? row : r)));

  const field = (key: keyof HabitFormValues) => ({
    id: `habit-${key}`,
    'aria-invalid': errors[key] ? true : undefined,
    'aria-describedby': errors[key] ? `habit-${key}-error` : undefined,
  });
  const error = (key: keyof HabitFormValues) =>
    errors[key] ? (
      <span className="field-error" id={`habit-${key}-error`}>
        {errors[key]}
      </span>
    ) : null;

  return (
    <section aria-labelledby="form-title">
      <h1 id="form-title">{habit ? `Edit ${habit.name}` : 'New habit'}</h1>
      <form className="stack habit-form" onSubmit={(e) => void submit(e)} noValidate>
        <div className="field">
          <label htmlFor="habit-name">
            Name
          </label>
          <input {...field('name')} value={values.name} maxLength={200} onChange={(e) => set('name', e.target.value)} autoFocus={!habit} />
          {error('name')}
        </div>
        <div className="field">
          <label htmlFor="habit-description">
            Description <span className="muted">(optional)</span>
          </label>
          <textarea {...field('description')} rows={2} value={values.description} onChange={(e) => set('description', e.target.value)} />
          {error('description')}
        </div>
        <div className="field">
          <label htmlFor="habit-group">
            Group <span className="muted">(optional: Today shows a group's habits together)</span>
          </label>
          <input {...field('group')} value={values.group} list="habit-groups" placeholder="Morning, Health…" maxLength={MAX_GROUP_CHARS + 20} onChange={(e) => set('group', e.target.value)} />
          <datalist id="habit-groups">
            {groups.map((g) => (
              <option key={g} value={g} />
            ))}
          </datalist>
          {error('group')}
        </div>
        <fieldset>
          <legend>Kind</legend>
          <label className="inline">
            <input type="radio" name="kind" value="boolean" checked={values.kind === 'boolean'} onChange={() => set('kind', 'boolean')} />
            Yes or no
          </label>
          <label className="inline">
            <input type="radio" name="kind" value="measurable" checked={values.kind === 'measurable'} onChange={() => set('kind', 'measurable')} />
            Measurable (a number)
          </label>
        </fieldset>
        {values.kind === 'measurable' && (
          <fieldset>
            <legend>Goal</legend>
            <div className="row-fields">
              <div className="field">
                <label htmlFor="habit-targetType">Target type</label>
                <select id="habit-targetType" value={values.targetType} onChange={(e) => set('targetType', e.target.value as HabitFormValues['targetType'])}>
                  <option value="at_least">At least</option>
                  <option value="at_most">At most</option>
                </select>
              </div>
              <div className="field">
                <label htmlFor="habit-targetValue">Target</label>
                <input {...field('targetValue')} type="number" inputMode="decimal" min={0} step="any" value={values.targetValue} onChange={(e) => set('targetValue', e.target.value)} />
                {error('targetValue')}
              </div>
              <div className="field">
                <label htmlFor="habit-unit">Unit</label>
                <input {...field('unit')} value={values.unit} placeholder="km, l, pages…" onChange={(e) => set('unit', e.target.value)} />
                {error('unit')}
              </div>
            </div>
            <p className="muted small hint">The target is for each period below: 2 l every day, or 10 km a week.</p>
          </fieldset>
        )}
        <fieldset className="frequency">
          <legend>How often</legend>
          <div className="preset-list">
            {(
              [
                ['daily', 'Every day'],
                ['weekly', 'Some days a week'],
                ['weekdays', 'On set weekdays'],
                ['monthly', 'Some days a month'],
                ['custom', 'Custom'],
              ] as const
            ).map(([p, label]) => (
              <label key={p} className="inline choice">
                <input type="radio" name="frequency" value={p} checked={preset === p} onChange={() => choosePreset(p)} />
                {label}
              </label>
            ))}
          </div>
          {(preset === 'weekly' || preset === 'monthly') && (
            <div className="field narrow">
              <label htmlFor="habit-times">{preset === 'weekly' ? 'Times a week' : 'Times a month'}</label>
              <input {...field('times')} type="number" inputMode="numeric" min={1} max={preset === 'weekly' ? 6 : 29} value={values.times} onChange={(e) => set('times', e.target.value)} />
              {error('times')}
            </div>
          )}
          {preset === 'custom' && (
            <div className="row-fields">
              <div className="field">
                <label htmlFor="habit-times">Times</label>
                <input {...field('times')} type="number" inputMode="numeric" min={1} value={values.times} onChange={(e) => set('times', e.target.value)} />
                {error('times')}
              </div>
              <div className="field">
                <label htmlFor="habit-days">Every … days</label>
                <input {...field('days')} type="number" inputMode="numeric" min={1} max={366} value={values.days} onChange={(e) => set('days', e.target.value)} />
                {error('days')}
              </div>
            </div>
          )}
          {preset === 'weekdays' && (
            <div className="field">
              <div className="weekdays" role="group" aria-label="Due on" id="habit-weekdays" tabIndex={-1} aria-describedby={errors.weekdays ? 'habit-weekdays-error' : undefined}>
                {WEEKDAYS.map((w) => (
                  <button
                    key={w.day}
                    type="button"
                    className="weekday"
                    aria-pressed={values.weekdays.includes(w.day)}
                    aria-label={w.long}
                    title={w.long}
                    onClick={() =>
                      set(
                        'weekdays',
                        values.weekdays.includes(w.day) ? values.weekdays.filter((d) => d !== w.day) : [...values.weekdays, w.day].sort((a, b) => a - b),
                      )
                    }
                  >
                    {w.short}
                  </button>
                ))}
              </div>
              {error('weekdays')}
              <p className="muted small hint">The other days neither build nor break a streak, and leave the score as it is.</p>
            </div>
          )}
        </fieldset>
        <fieldset>
          <legend>Color</legend>
          <div className="swatches">
            {PALETTE.map(({ color: c, name }) => (
              <button key={c} type="button" className="swatch" style={{ background: c }} aria-label={name} title={name} aria-pressed={values.color.toLowerCase() === c} onClick={() => set('color', c)} />
            ))}
            <label className="inline">
              <span className="visually-hidden">Custom color</span>
              <input {...field('color')} type="color" value={values.color} onChange={(e) => set('color', e.target.value)} />
            </label>
          </div>
          {error('color')}
        </fieldset>
        <fieldset id="habit-reminders" tabIndex={-1} aria-describedby={errors.reminders ? 'habit-reminders-error' : undefined}>
          <legend>
            Reminders <span className="muted">(optional, in your time zone)</span>
          </legend>
          {values.reminders.length === 0 && <p className="muted">No reminders.</p>}
          <ul className="reminder-rows">
            {values.reminders.map((row, i) => {
              const n = i + 1;
              return (
                <li key={i} className="reminder-row">
                  <label htmlFor={`habit-reminder-${i}-time`}>Reminder {n} time</label>
                  <input id={`habit-reminder-${i}-time`} type="time" required value={row.time} onChange={(e) => setRow(i, { ...row, time: e.target.value })} />
                  <div className="weekdays" role="group" aria-label={`Reminder ${n} days`}>
                    {WEEKDAYS.map((w) => (
                      <button key={w.day} type="button" className="weekday" aria-pressed={row.days.includes(w.day)} aria-label={`${w.long}, reminder ${n}`} title={w.long} onClick={() => setRow(i, toggleReminderDay(row, w.day))}>
                        {w.short}
                      </button>
                    ))}
                  </div>
                  <button type="button" className="link-button" aria-label={`Remove reminder ${n}`} onClick={() => setReminders((rows) => removeReminder(rows, i))}>
                    Remove
                  </button>
                </li>
              );
            })}
          </ul>
          {values.reminders.length < MAX_REMINDERS && (
            <button type="button" onClick={() => setReminders(addReminder)}>
              Add a reminder
            </button>
          )}
          {error('reminders')}
        </fieldset>
        <p className="form-error" role="alert">
          {serverError}
        </p>
        <div className="actions">
          <button type="submit" className="primary" disabled={busy}>
            {habit ? 'Save changes' : 'Create habit'}
          </button>
          <button type="button" onClick={() => history.back()}>
            Cancel
          </button>
        </div>
      </form>
    </section>
  );
}
