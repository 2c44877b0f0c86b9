// Sends the check-ins kept on this device (lib/offline.ts) once the server can
// be reached: on load, on `online`, and every 15 s while any wait (the service
// worker's Background Sync sends them too, where the browser has it). Says when
// the server kept another device's later check-in or replaced one, and shows how
// many wait.
import { useEffect } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { onOutcomes, sendPending, usePending } from '../lib/offline';
import { outcomeMessage } from '../lib/pending';
import type { User } from '../lib/types';
import { useToast } from './Toast';

const RETRY_MS = 15_000;

export function PendingSync({ user }: { user: User }) {
  const qc = useQueryClient();
  const toast = useToast();
  const pending = usePending();
  const waiting = [...pending.values()].filter((p) => p.user_id === user.id).length;

  useEffect(
    () =>
      onOutcomes((outcomes) => {
        if (outcomes.some((o) => o.kind !== 'unsent')) {
          void qc.invalidateQueries({ queryKey: ['entries'] });
          void qc.invalidateQueries({ queryKey: ['stats'] });
        }
        const message = outcomeMessage(outcomes);
        if (message) toast({ message });
      }),
    [qc, toast],
  );

  useEffect(() => {
    const send = () => void sendPending(user.id);
    send();
    window.addEventListener('online', send);
    return () => window.removeEventListener('online', send);
  }, [user.id]);

  useEffect(() => {
    if (waiting === 0) return;
    const timer = window.setInterval(() => void sendPending(user.id), RETRY_MS);
    return () => window.clearInterval(timer);
  }, [waiting, user.id]);

  return (
    <>
      <span id="pending-words" hidden>
        Not sent yet
      </span>
      {waiting > 0 && (
        <p className="pending-banner" role="status" data-testid="pending-banner">
          <span className="pending-mark" aria-hidden="true" /> {waiting === 1 ? '1 check-in' : `${waiting} check-ins`} not sent yet: kept on this device, sent when the connection returns.
        </p>
      )}
    </>
  );
}
