// Settings' "Reminder delivery" section: the user's ntfy and webhook channels,
// each with its last delivery error. Tokens are write-only: a stored one shows
// as "token saved" and can be kept, replaced or removed, never read back.
import { useEffect, useState, type FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { channelToRow, channelsToInput, emptyChannelRow, MAX_CHANNELS, validateChannels, type ChannelRow } from '../lib/channels';
import { explainText } from '../lib/errors';
import type { Channel, ChannelTest } from '../lib/types';

const KEY = ['notifications'] as const;

export function NotificationChannels() {
  const qc = useQueryClient();
  const query = useQuery({ queryKey: KEY, queryFn: () => api<{ channels: Channel[] }>('/api/me/notifications') });
  const [rows, setRows] = useState<ChannelRow[]>([]);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [tests, setTests] = useState<ChannelTest[] | null>(null);
  useEffect(() => {
    if (query.data) setRows(query.data.channels.map(channelToRow));
  }, [query.data]);

  const setRow = (index: number, change: Partial<ChannelRow>) => setRows((all) => all.map((r, i) => (i === index ? { ...r, ...change } : r)));

  const save = async (e: FormEvent) => {
    e.preventDefault();
    const problem = validateChannels(rows);
    if (problem) return setMessage({ ok: false, text: problem });
    setBusy(true);
    setMessage(null);
    try {
      const saved = await api<{ channels: Channel[] }>('/api/me/notifications', { method: 'PUT', body: channelsToInput(rows) });
      qc.setQueryData(KEY, saved);
      setMessage({ ok: true, text: 'Saved.' });
    } catch (err) {
      setMessage({ ok: false, text: explainText(err, 'save the channels') });
    } finally {
      setBusy(false);
    }
  };

  // A test goes to the saved channels, through the same plugin as reminders.
  const sendTest = async () => {
    setBusy(true);
    setMessage(null);
    setTests(null);
    try {
      const answer = await api<{ results: ChannelTest[] }>('/api/me/notifications/test', { method: 'POST' });
      setTests(answer.results);
      if (answer.results.length === 0) setMessage({ ok: false, text: 'No saved channels to test: save one first.' });
      void qc.invalidateQueries({ queryKey: KEY });
    } catch (err) {
      setMessage({ ok: false, text: explainText(err, 'send a test') });
    } finally {
      setBusy(false);
    }
  };

  if (query.isError) return <p className="form-error">{explainText(query.error, 'load the reminder channels')}</p>;
  return (
    <form onSubmit={(e) => void save(e)} aria-labelledby="channels-title">
      {rows.length === 0 && <p className="muted">No channels: reminders go nowhere yet.</p>}
      {rows.map((row, i) => {
        const n = i + 1;
        return (
          <fieldset key={i} className="channel-row">
            <legend>Channel {n}</legend>
            <label>
              Kind
              <select value={row.kind} onChange={(e) => setRow(i, { kind: e.target.value === 'webhook' ? 'webhook' : 'ntfy' })}>
                <option value="ntfy">ntfy</option>
                <option value="webhook">Webhook</option>
              </select>
            </label>
            <label>
              Address
              <input type="url" value={row.url} placeholder="https://ntfy.sh/my-topic" onChange={(e) => setRow(i, { url: e.target.value })} />
            </label>
            <label>
              Token <span className="muted">{row.tokenSet && !row.clearToken ? '(saved; type to replace)' : '(optional)'}</span>
              <input type="password" autoComplete="off" value={row.token} onChange={(e) => setRow(i, { token: e.target.value })} />
            </label>
            {row.tokenSet && (
              <label className="inline">
                <input type="checkbox" checked={row.clearToken} onChange={(e) => setRow(i, { clearToken: e.target.checked })} /> Remove the saved token
              </label>
            )}
            {row.lastError && (
              <p className="form-error small">
                Last delivery failed{row.lastErrorAt ? ` on ${new Date(row.lastErrorAt).toLocaleString()}` : ''}: {row.lastError}
              </p>
            )}
            <button type="button" className="link-button" aria-label={`Remove channel ${n}`} onClick={() => setRows((all) => all.filter((_, j) => j !== i))}>
              Remove
            </button>
          </fieldset>
        );
      })}
      <div className="actions">
        {rows.length < MAX_CHANNELS && (
          <button type="button" onClick={() => setRows((all) => [...all, emptyChannelRow()])}>
            Add a channel
          </button>
        )}
        <button type="submit" className="primary" disabled={busy || query.isPending}>
          Save channels
        </button>
        {(query.data?.channels.length ?? 0) > 0 && (
          <button type="button" disabled={busy} onClick={() => void sendTest()}>
            Send a test
          </button>
        )}
      </div>
      {tests && tests.length > 0 && (
        <ul className="test-results" aria-label="Test results" data-testid="channel-tests">
          {tests.map((t) => (
            <li key={t.channel_id} className={t.ok ? 'form-ok' : 'form-error'}>
              {t.kind === 'ntfy' ? 'ntfy' : 'Webhook'} {t.url}: {t.ok ? 'sent' : `failed (${t.error ?? 'no answer'})`}
            </li>
          ))}
        </ul>
      )}
      <p className={message?.ok ? 'form-ok' : 'form-error'} role={message?.ok ? 'status' : 'alert'}>
        {message?.text}
      </p>
    </form>
  );
}
