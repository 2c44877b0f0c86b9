// Users (admins): every account, create one, make or unmake an administrator,
// reset a password (which signs that user out everywhere), delete an account and
// everything it owns. The last administrator stays one: the server refuses.
import { useState, type FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, api } from '../lib/api';
import { explainText } from '../lib/errors';
import { useAuthConfig } from '../lib/queries';
import { useTitle } from '../lib/router';
import type { Account, User } from '../lib/types';
import { useConfirm } from '../components/Modal';
import { ErrorBox, Loading } from '../components/Status';
import { useToast } from '../components/Toast';

const USERS_KEY = ['admin-users'] as const;

/** The server's refusal in words for this screen. */
function refusal(err: unknown, action: string): string {
  if (err instanceof ApiError && err.code === 'last_admin') {
    return `Couldn't ${action}: it is the only administrator. Make someone else an administrator first.`;
  }
  return explainText(err, action);
}

export function Users({ user }: { user: User }) {
  useTitle('Users');
  const users = useQuery({
    queryKey: USERS_KEY,
    queryFn: async () => (await api<{ users: Account[] }>('/api/admin/users')).users,
    enabled: user.is_admin,
  });
  const config = useAuthConfig();
  const local = config.data?.mode === 'local';
  if (!user.is_admin) {
    return (
      <section>
        <h1>Users</h1>
        <p role="alert">Only administrators manage accounts. Ask one if an account needs changing.</p>
      </section>
    );
  }
  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">Users</h1>
      {local && <CreateUser />}
      <h2>Accounts</h2>
      {users.isPending && <Loading label="Loading users…" lines={3} />}
      {users.isError && <ErrorBox error={users.error} action="load the users" retry={() => void users.refetch()} />}
      <ul className="plugin-list" data-testid="user-list">
        {(users.data ?? []).map((a) => (
          <UserCard key={a.id} account={a} self={a.id === user.id} local={local} />
        ))}
      </ul>
    </section>
  );
}

function CreateUser() {
  const qc = useQueryClient();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [admin, setAdmin] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setDone(null);
    setBusy(true);
    try {
      const created = await api<Account>('/api/admin/users', { method: 'POST', body: { username, password, is_admin: admin } });
      setDone(`Created ${created.username}${created.is_admin ? ', an administrator' : ''}. Tell them their password; they can change it in Settings.`);
      setUsername('');
      setPassword('');
      setAdmin(false);
      await qc.invalidateQueries({ queryKey: USERS_KEY });
    } catch (err) {
      setError(explainText(err, `create ${username || 'the account'}`));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="card upload-form" onSubmit={(e) => void submit(e)} aria-labelledby="create-user-title">
      <h2 id="create-user-title">Create an account</h2>
      <div className="inline-form">
        <label>
          Username
          <input name="username" autoComplete="off" autoCapitalize="none" spellCheck={false} value={username} onChange={(e) => setUsername(e.target.value)} required />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="new-password" minLength={8} value={password} onChange={(e) => setPassword(e.target.value)} required />
        </label>
        <label className="inline choice">
          <input type="checkbox" checked={admin} onChange={(e) => setAdmin(e.target.checked)} /> Administrator
        </label>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create'}
        </button>
      </div>
      <p className="muted small">Usernames: 3 to 32 of a-z, 0-9, '.', '_', '-'. Passwords: 8 characters or more.</p>
      <p className="form-error" role="alert">
        {error}
      </p>
      <p className="form-ok" role="status">
        {done}
      </p>
    </form>
  );
}

function UserCard({ account, self, local }: { account: Account; self: boolean; local: boolean }) {
  const qc = useQueryClient();
  const confirm = useConfirm();
  const toast = useToast();
  const [resetting, setResetting] = useState(false);
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const refresh = () => qc.invalidateQueries({ queryKey: USERS_KEY });

  const toggleAdmin = async () => {
    setError(null);
    const action = account.is_admin ? `make ${account.username} a regular user` : `make ${account.username} an administrator`;
    try {
      await api<Account>(`/api/admin/users/${encodeURIComponent(account.id)}`, { method: 'PATCH', body: { is_admin: !account.is_admin } });
      await refresh();
      if (self) await qc.invalidateQueries({ queryKey: ['me'] });
      toast({ message: account.is_admin ? `${account.username} is no longer an administrator.` : `${account.username} is an administrator now.` });
    } catch (err) {
      setError(refusal(err, action));
    }
  };

  const reset = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api<Account>(`/api/admin/users/${encodeURIComponent(account.id)}`, { method: 'PATCH', body: { password } });
      setPassword('');
      setResetting(false);
      toast({ message: `${account.username}'s password is reset; they are signed out everywhere.` });
    } catch (err) {
      setError(refusal(err, `reset ${account.username}'s password`));
    }
  };

  const remove = async () => {
    setError(null);
    const yes = await confirm({
      title: `Delete ${account.username}?`,
      body: `The account ${account.username} and everything it owns go for good: habits, check-ins, activities, reminders, coach conversations and its Strava connection.`,
      confirm: 'Delete account',
      danger: true,
    });
    if (!yes) return;
    try {
      await api<null>(`/api/admin/users/${encodeURIComponent(account.id)}`, { method: 'DELETE' });
      await refresh();
      toast({ message: `${account.username} is deleted.` });
    } catch (err) {
      setError(refusal(err, `delete ${account.username}`));
    }
  };

  const id = `user-${account.id}`;
  return (
    <li className="card plugin" aria-labelledby={id} data-testid="user-card">
      <div className="plugin-head">
        <h3 id={id}>{account.username}</h3>
        {account.is_admin && <span className="badge">administrator</span>}
        {self && <span className="muted small">you</span>}
      </div>
      <dl className="facts">
        <dt>Created</dt>
        <dd>{account.created}</dd>
      </dl>
      <div className="actions">
        <button type="button" onClick={() => void toggleAdmin()}>
          {account.is_admin ? 'Remove administrator' : 'Make administrator'}
          <span className="visually-hidden"> ({account.username})</span>
        </button>
        {local && (
          <button type="button" aria-expanded={resetting} onClick={() => setResetting(!resetting)}>
            Reset password<span className="visually-hidden"> of {account.username}</span>
          </button>
        )}
        <button type="button" className="danger" onClick={() => void remove()}>
          Delete<span className="visually-hidden"> {account.username}</span>
        </button>
      </div>
      {resetting && (
        <form className="inline-form" onSubmit={(e) => void reset(e)}>
          <label>
            New password for {account.username}
            <input type="password" autoComplete="new-password" minLength={8} value={password} onChange={(e) => setPassword(e.target.value)} required />
          </label>
          <button type="submit" className="primary">
            Set password
          </button>
        </form>
      )}
      <p className="form-error" role="alert">
        {error}
      </p>
    </li>
  );
}
