// Settings -> Account (HAM_AUTH=local): change the password (other devices are
// signed out, this one stays), and delete the account, confirmed by the password
// and then once more in a dialog.
import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { ApiError, api } from '../lib/api';
import { explainText } from '../lib/errors';
import { signedOut } from '../lib/offline';
import type { User } from '../lib/types';
import { useConfirm } from './Modal';

type Message = { ok: boolean; text: string } | null;

function Said({ message, testId }: { message: Message; testId: string }) {
  return (
    <p className={message?.ok ? 'form-ok' : 'form-error'} role={message?.ok ? 'status' : 'alert'} data-testid={testId}>
      {message?.text}
    </p>
  );
}

export function AccountSettings({ user }: { user: User }) {
  return (
    <>
      <ChangePassword />
      <DeleteAccount user={user} />
    </>
  );
}

function ChangePassword() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [message, setMessage] = useState<Message>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setMessage(null);
    if (next.length < 8) return setMessage({ ok: false, text: 'The new password needs at least 8 characters.' });
    if (next !== again) return setMessage({ ok: false, text: 'The two new passwords differ: type the same one twice.' });
    setBusy(true);
    try {
      await api<null>('/api/me/password', { method: 'POST', body: { current_password: current, new_password: next } });
      setCurrent('');
      setNext('');
      setAgain('');
      setMessage({ ok: true, text: 'Password changed. Your other devices are signed out; this one stays signed in.' });
    } catch (err) {
      const wrong = err instanceof ApiError && err.code === 'wrong_password';
      setMessage({ ok: false, text: wrong ? 'The current password is not right. Try again.' : explainText(err, 'change the password') });
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
    <h3 id="password-title" className="subhead">Change password</h3>
    <form className="inline-form" onSubmit={(e) => void submit(e)} aria-labelledby="password-title">
      <label>
        Current password
        <input type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} required />
      </label>
      <label>
        New password
        <input type="password" autoComplete="new-password" minLength={8} value={next} onChange={(e) => setNext(e.target.value)} required />
      </label>
      <label>
        New password again
        <input type="password" autoComplete="new-password" minLength={8} value={again} onChange={(e) => setAgain(e.target.value)} required />
      </label>
      <button type="submit" className="primary" disabled={busy}>
        {busy ? 'Changing…' : 'Change password'}
      </button>
    </form>
    <Said message={message} testId="password-message" />
    </>
  );
}

function DeleteAccount({ user }: { user: User }) {
  const qc = useQueryClient();
  const confirm = useConfirm();
  const [password, setPassword] = useState('');
  const [message, setMessage] = useState<Message>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setMessage(null);
    const yes = await confirm({
      title: 'Delete your account?',
      body: `The account ${user.username} and everything in it go for good: habits, check-ins, activities, reminders, coach conversations and the Strava connection. Export first if you want to keep a copy.`,
      confirm: 'Delete my account',
      danger: true,
    });
    if (!yes) return;
    setBusy(true);
    try {
      await api<null>('/api/me/delete', { method: 'POST', body: { password } });
      qc.clear();
      await signedOut();
      window.location.assign('/');
    } catch (err) {
      const code = err instanceof ApiError ? err.code : '';
      const text =
        code === 'wrong_password'
          ? 'The password is not right; nothing was deleted.'
          : code === 'last_admin'
            ? 'You are the only administrator: make someone else an administrator first (More, Users).'
            : explainText(err, 'delete the account');
      setMessage({ ok: false, text });
      setBusy(false);
    }
  };
  return (
    <>
    <h3 id="delete-title" className="subhead">Delete account</h3>
    <p className="muted small">Deletes the account and everything it owns. This cannot be undone.</p>
    <form className="inline-form" onSubmit={(e) => void submit(e)} aria-labelledby="delete-title">
      <label>
        Password
        <input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
      </label>
      <button type="submit" className="danger" disabled={busy}>
        Delete my account
      </button>
    </form>
    <Said message={message} testId="delete-message" />
    </>
  );
}
