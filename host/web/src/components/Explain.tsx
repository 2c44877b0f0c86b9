// "How is this counted?": a "?" button that opens a short explanation in place.
// The words follow the bundled rules (habit-rules, which reproduce Loop Habit
// Tracker's): see crates/habit-rules-engine (score.rs, streaks.rs).
import { useId, useState, type ReactNode } from 'react';

export function Explain({ label, children, text }: { label: string; children: ReactNode; text?: string }) {
  const [open, setOpen] = useState(false);
  const id = useId();
  return (
    <div className="explain">
      <button type="button" className={text ? 'link-button explain-link' : 'explain-button'} aria-expanded={open} aria-controls={id} onClick={() => setOpen(!open)}>
        {text ?? (
          <>
            <span aria-hidden="true">?</span>
            <span className="visually-hidden">{label}</span>
          </>
        )}
      </button>
      <div id={id} className="explain-text" hidden={!open}>
        {children}
      </div>
    </div>
  );
}

/** How the score works, in three sentences. */
export const SCORE_WORDS =
  'The score is the habit’s strength: recent days weigh most. Each day done moves it up and each missed day moves it down; a daily habit closes half the gap to 100% in about two weeks, a weekly one in about five.';

/** How skips count under the bundled rules (Loop Habit Tracker’s). */
export const SKIP_WORDS =
  'A skipped day (ill, travelling, a rest day) keeps your streak going and counts as one of its days, and it leaves the score exactly where it was: it neither raises nor lowers it.';

/** How streaks work for habits that are not daily. */
export const STREAK_WORDS =
  'A streak counts days in a row. For a habit that is not daily, the days your check-ins cover count too: 3 runs within a week keep that whole week in the streak.';
