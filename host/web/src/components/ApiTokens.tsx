// Settings -> API tokens: personal tokens for scripts and home automation. A new
// token is shown once, with a copy button; the list shows names and when each was
// last used, never a token; revoking asks first.
import { useState, type FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { explainText } from '../lib/errors';
import type { ApiToken, CreatedToken } from '../lib/types';
import { useConfirm } from './Modal';
import { ErrorBox, Loading } from './Status';

const TOKENS_KEY = ['api-tokens'] as const;

export function ApiTokens() {
  const qc = useQueryClient();
  const confirm = useConfirm();
  const tokens = useQuery({ queryKey: TOKENS_KEY, queryFn: async () => (await api<{ tokens: ApiToken[] }>('/api/me/tokens')).tokens });
  const [name, setName] = useState('');
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setCreated(null);
    setCopied(false);
    setBusy(true);
    try {
      setCreated(await api<CreatedToken>('/api/me/tokens', { method: 'POST', body: { name } }));
      setName('');
      await qc.invalidateQueries({ queryKey: TOKENS_KEY });
    } catch (err) {
      setError(explainText(err, 'create the token'));
    } finally {
      setBusy(false);
    }
  };

  const copy = async () => {
    if (!created) return;
    try {
      await navigator.clipboard.writeText(created.token);
      setCopied(true);
    } catch {
      setError('Copying was not allowed here: select the token and copy it by hand.');
    }
  };

  const revoke = async (token: ApiToken) => {
    setError(null);
    const yes = await confirm({
      title: `Revoke ${token.name}?`,
      body: `Anything using the token ${token.name} stops working at once. This cannot be undone; make a new token if you need one.`,
      confirm: 'Revoke',
      danger: true,
    });
    if (!yes) return;
    try {
      await api<null>(`/api/me/tokens/${encodeURIComponent(token.id)}`, { method: 'DELETE' });
      if (created?.id === token.id) setCreated(null);
      await qc.invalidateQueries({ queryKey: TOKENS_KEY });
    } catch (err) {
      setError(explainText(err, `revoke ${token.name}`));
    }
  };

  return (
    <>
      <p className="muted small">
        For scripts and home automation: send <code>Authorization: Bearer &lt;token&gt;</code>. A token acts as you, except for
        administration, tokens and your password.
      </p>
      <form className="inline-form" onSubmit={(e) => void create(e)}>
        <label>
          Token name
          <input value={name} maxLength={64} onChange={(e) => setName(e.target.value)} placeholder="Home Assistant" required />
        </label>
        <button type="submit" className="primary" disabled={busy}>
          Create token
        </button>
      </form>
      {created && (
        <div className="card" role="status" data-testid="new-token">
          <p>
            Your new token <strong>{created.name}</strong>. Copy it now: it is not shown again.
          </p>
          <div className="inline-form">
            <code className="token" data-testid="token-value">
              {created.token}
            </code>
            <button type="button" onClick={() => void copy()}>
              {copied ? 'Copied' : 'Copy'}
            </button>
          </div>
        </div>
      )}
      <p className="form-error" role="alert">
        {error}
      </p>
      {tokens.isPending && <Loading lines={1} />}
      {tokens.isError && <ErrorBox error={tokens.error} action="load your tokens" retry={() => void tokens.refetch()} />}
      {tokens.data && tokens.data.length === 0 && <p className="muted small">No tokens yet.</p>}
      {tokens.data && tokens.data.length > 0 && (
        <ul className="menu-list" data-testid="token-list">
          {tokens.data.map((t) => (
            <li key={t.id} className="token-row">
              <span>
                <span className="menu-title">{t.name}</span>
                <span className="muted small">
                  {' '}
                  created {t.created_at.slice(0, 10)}, {t.last_used_at ? `last used ${t.last_used_at.slice(0, 16).replace('T', ' ')} UTC` : 'never used'}
                </span>
              </span>
              <button type="button" className="danger" onClick={() => void revoke(t)}>
                Revoke<span className="visually-hidden"> {t.name}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
