// Sign in, or create the first account (local mode). In forward-auth and oidc
// modes a proxy or identity provider signs users in: there is no form.
import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api, ApiError } from '../lib/api';
import { explainText } from '../lib/errors';
import { keys, useAuthConfig } from '../lib/queries';
import { useTitle } from '../lib/router';
import type { User } from '../lib/types';
import { Loading } from '../components/Status';

export function SignIn() {
  const config = useAuthConfig();
  const qc = useQueryClient();
  const [mode, setMode] = useState<'login' | 'register' | null>(null);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const firstRun = config.data?.first_run ?? false;
  const effective = mode ?? (firstRun ? 'register' : 'login');
  useTitle(effective === 'register' ? 'Create account' : 'Sign in');

  if (config.isPending) {
    return (
      <main className="auth-page">
        <Loading label="Loading…" />
      </main>
    );
  }
  // A server without /api/auth/config (or failing it): local sign-in, the default.
  const authMode = config.data?.mode ?? 'local';
  if (authMode !== 'local') {
    return (
      <main className="auth-page">
        <h1>HAM</h1>
        <p role="alert">
          You are not signed in. This server signs users in through {authMode === 'oidc' ? 'an OpenID Connect provider' : 'a proxy (forward-auth)'};
          open HAM through that sign-in page.
        </p>
      </main>
    );
  }

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const name = username.trim().toLowerCase();
    if (effective === 'register') {
      if (!/^[a-z0-9._-]{3,32}$/.test(name)) return setError('Username: 3 to 32 of a-z, 0-9, ".", "_", "-".');
      if (password.length < 8) return setError('Password: at least 8 characters.');
    }
    setBusy(true);
    try {
      const path = effective === 'register' ? '/api/auth/register' : '/api/auth/login';
      let user = await api<User>(path, { body: { username: name, password } });
      // A new account takes this device's time zone, so its days start at the
      // user's midnight (the server's default is UTC). Settings can change it.
      const zone = deviceZone();
      if (effective === 'register' && zone && zone !== user.time_zone) {
        try {
          user = await api<User>('/api/me', { method: 'PATCH', body: { time_zone: zone } });
        } catch {
          // The server does not know this zone: Today offers it again, Settings too.
        }
      }
      qc.setQueryData(keys.me, user);
      await qc.invalidateQueries({ queryKey: keys.me });
      void qc.invalidateQueries({ queryKey: keys.authConfig });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && effective === 'login') setError('Wrong username or password. Check both and try again.');
      else if (err instanceof ApiError && err.code === 'username_taken') setError('That username is taken: choose another one.');
      else setError(explainText(err, effective === 'register' ? 'create the account' : 'sign in'));
    } finally {
      setBusy(false);
    }
  };

  const canRegister = firstRun || config.data?.open_registration === true;
  return (
    <main className="auth-page" id="main">
      <div className="brand auth-brand">
        <span className="brand-mark" aria-hidden="true" />
        HAM
      </div>
      <h1>{effective === 'register' ? (firstRun ? 'Welcome: create the first account' : 'Create an account') : 'Sign in'}</h1>
      {firstRun && effective === 'register' && <p className="muted">The first account is the administrator.</p>}
      <form onSubmit={(e) => void submit(e)} className="stack" noValidate>
        <label>
          Username
          <input name="username" autoComplete="username" autoCapitalize="none" spellCheck={false} required value={username} onChange={(e) => setUsername(e.target.value)} />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete={effective === 'register' ? 'new-password' : 'current-password'} required value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <p className="form-error" role="alert">
          {error}
        </p>
        <button type="submit" className="primary" disabled={busy}>
          {effective === 'register' ? 'Create account' : 'Sign in'}
        </button>
      </form>
      {canRegister && !firstRun && (
        <p>
          <button type="button" className="link-button" onClick={() => setMode(effective === 'register' ? 'login' : 'register')}>
            {effective === 'register' ? 'I have an account: sign in' : 'Create an account'}
          </button>
        </p>
      )}
    </main>
  );
}

function deviceZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone ?? '';
  } catch {
    return '';
  }
}
