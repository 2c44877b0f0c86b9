// A modal dialog on the native <dialog>: focus moves in and back, Escape and a tap
// outside close it without doing anything, and the page behind is inert.
import { createContext, useCallback, useContext, useEffect, useId, useRef, useState, type ReactNode } from 'react';

export function Modal({ title, subtitle, onClose, children, className }: { title: string; subtitle?: string; onClose: () => void; children: ReactNode; className?: string }) {
  const ref = useRef<HTMLDialogElement | null>(null);
  const titleId = useId();
  const close = useRef(onClose);
  close.current = onClose;
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const opener = document.activeElement as HTMLElement | null;
    if (!dialog.open) dialog.showModal();
    // The field marked data-autofocus takes focus, except on touch screens, where
    // a keyboard popping up would cover the dialog's buttons: there the dialog
    // itself is focused (Escape and Tab work from it).
    const wanted = dialog.querySelector<HTMLElement>('[data-autofocus]');
    const touch = window.matchMedia?.('(pointer: coarse)').matches ?? false;
    if (wanted && !touch) wanted.focus();
    else dialog.focus();
    return () => {
      if (dialog.open) dialog.close();
      opener?.focus?.();
    };
  }, []);
  return (
    <dialog
      ref={ref}
      className={'modal' + (className ? ' ' + className : '')}
      tabIndex={-1}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        close.current();
      }}
      onClick={(e) => {
        // A tap on the backdrop (the dialog itself, outside its content) closes.
        if (e.target === ref.current) close.current();
      }}
    >
      <div className="modal-body">
        <h2 id={titleId} className="modal-title">
          {title}
        </h2>
        {subtitle && <p className="muted modal-subtitle">{subtitle}</p>}
        {children}
      </div>
    </dialog>
  );
}

export interface ConfirmOptions {
  title: string;
  body: string;
  confirm: string;
  danger?: boolean;
}

const ConfirmContext = createContext<(o: ConfirmOptions) => Promise<boolean>>(async () => false);

/** Asks before something that cannot be undone; resolves to the answer. */
export function useConfirm(): (o: ConfirmOptions) => Promise<boolean> {
  return useContext(ConfirmContext);
}

export function ConfirmProvider({ children }: { children: ReactNode }) {
  const [asking, setAsking] = useState<(ConfirmOptions & { answer: (yes: boolean) => void }) | null>(null);
  const ask = useCallback((o: ConfirmOptions) => new Promise<boolean>((resolve) => setAsking({ ...o, answer: resolve })), []);
  const answer = (yes: boolean) => {
    asking?.answer(yes);
    setAsking(null);
  };
  return (
    <ConfirmContext.Provider value={ask}>
      {children}
      {asking && (
        <Modal title={asking.title} onClose={() => answer(false)} className="confirm">
          <p>{asking.body}</p>
          <div className="actions modal-actions">
            {/* Cancel first: the dialog focuses it, so Enter never confirms by accident. */}
            <button type="button" data-autofocus onClick={() => answer(false)}>
              Cancel
            </button>
            <button type="button" className={asking.danger ? 'danger-solid' : 'primary'} onClick={() => answer(true)}>
              {asking.confirm}
            </button>
          </div>
        </Modal>
      )}
    </ConfirmContext.Provider>
  );
}
