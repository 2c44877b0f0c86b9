// One toast at a time, above the tab bar: what just changed, with Undo for a few
// seconds. The live region is always in the page, so screen readers hear each one.
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from 'react';

export interface ToastOptions {
  message: string;
  /** Puts things back; the toast then says "Undone". */
  undo?: () => Promise<unknown> | void;
  /** What an undo that fails says. */
  undoFailed?: string;
}

interface Shown extends ToastOptions {
  id: number;
}

const ToastContext = createContext<(t: ToastOptions) => void>(() => {});

/** Shows a toast; a new one replaces the one on screen. */
export function useToast(): (t: ToastOptions) => void {
  return useContext(ToastContext);
}

/** How long a toast with Undo stays (the window to change one's mind). */
export const UNDO_MS = 8000;
const PLAIN_MS = 4000;

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toast, setToast] = useState<Shown | null>(null);
  const [paused, setPaused] = useState(false);
  const next = useRef(1);
  const show = useCallback((t: ToastOptions) => setToast({ ...t, id: next.current++ }), []);

  useEffect(() => {
    if (!toast || paused) return;
    const timer = window.setTimeout(() => setToast((now) => (now?.id === toast.id ? null : now)), toast.undo ? UNDO_MS : PLAIN_MS);
    return () => window.clearTimeout(timer);
  }, [toast, paused]);

  const undo = async () => {
    if (!toast?.undo) return;
    const { undo: run, undoFailed } = toast;
    setToast(null);
    setPaused(false);
    try {
      await run();
      show({ message: 'Undone' });
    } catch {
      show({ message: undoFailed ?? "Couldn't undo: the server did not answer. Check the change and fix it by hand." });
    }
  };

  return (
    <ToastContext.Provider value={show}>
      {children}
      <div className="toast-region" role="status" aria-live="polite" onMouseEnter={() => setPaused(true)} onMouseLeave={() => setPaused(false)} onFocus={() => setPaused(true)} onBlur={() => setPaused(false)}>
        {toast && (
          <div className="toast" key={toast.id} data-testid="toast">
            <span className="toast-text">{toast.message}</span>
            {toast.undo && (
              <button type="button" className="toast-undo" onClick={() => void undo()}>
                Undo
              </button>
            )}
            <button type="button" className="toast-close" aria-label="Dismiss" onClick={() => setToast(null)}>
              <span aria-hidden="true">×</span>
            </button>
          </div>
        )}
      </div>
    </ToastContext.Provider>
  );
}
