// Settings: time zone, reminder delivery channels, the account (password,
// deletion; local accounts only), personal API tokens, export (JSON, CSV) and
// import.
import { useMemo, useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { AccountSettings } from '../components/AccountSettings';
import { ApiTokens } from '../components/ApiTokens';
import { NotificationChannels } from '../components/NotificationChannels';
import { api } from '../lib/api';
import { explainText } from '../lib/errors';
import { keys, useAuthConfig } from '../lib/queries';
import { useTitle } from '../lib/router';
import type { ImportCounts, User } from '../lib/types';

function timeZones(current: string): string[] {
  let zones: string[] = [];
  try {
    zones = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
  } catch {
    zones = [];
  }
  if (!zones.includes('UTC')) zones = ['UTC', ...zones];
  if (!zones.includes(current)) zones = [current, ...zones];
  return zones;
}

export function Settings({ user }: { user: User }) {
  useTitle('Settings');
  const qc = useQueryClient();
  const zones = useMemo(() => timeZones(user.time_zone), [user.time_zone]);
  const [zone, setZone] = useState(user.time_zone);
  const [zoneMessage, setZoneMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [file, setFile] = useState<File | null>(null);
  const [importMessage, setImportMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const authConfig = useAuthConfig();
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

  const saveZone = async (e: FormEvent) => {
    e.preventDefault();
    setZoneMessage(null);
    try {
      const updated = await api<User>('/api/me', { method: 'PATCH', body: { time_zone: zone } });
      qc.setQueryData(keys.me, updated);
      void qc.invalidateQueries({ queryKey: ['entries'] });
      setZoneMessage({ ok: true, text: `Saved. Today is ${updated.today ?? 'updated'} in ${updated.time_zone}.` });
    } catch (err) {
      setZoneMessage({ ok: false, text: explainText(err, 'save the time zone') });
    }
  };

  const runImport = async (e: FormEvent) => {
    e.preventDefault();
    setImportMessage(null);
    if (!file) return setImportMessage({ ok: false, text: 'Choose an export file first (JSON or CSV from Export).' });
    setBusy(true);
    try {
      const csv = file.name.toLowerCase().endsWith('.csv') || file.type === 'text/csv';
      const counts = await api<ImportCounts>('/api/import', { method: 'POST', raw: await file.text(), contentType: csv ? 'text/csv' : 'application/json' });
      setImportMessage({ ok: true, text: `Imported ${counts.habits} habits, ${counts.entries} entries and ${counts.activities} activities.` });
      await qc.invalidateQueries();
    } catch (err) {
      setImportMessage({ ok: false, text: explainText(err, `import ${file.name}`) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="settings-title">
      <h1 id="settings-title">Settings</h1>
      <p className="muted">
        Signed in as <strong>{user.username}</strong>
        {user.is_admin && ' (administrator)'}.
      </p>

      <h2>Time zone</h2>
      <p className="muted small">Your days start at midnight in this time zone.</p>
      <form className="inline-form" onSubmit={(e) => void saveZone(e)}>
        <label>
          Time zone
          <select value={zone} onChange={(e) => setZone(e.target.value)}>
            {zones.map((z) => (
              <option key={z} value={z}>
                {z}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Save time zone</button>
        {browserZone && browserZone !== zone && (
          <button type="button" onClick={() => setZone(browserZone)}>
            Use this device's ({browserZone})
          </button>
        )}
      </form>
      <p className={zoneMessage?.ok ? 'form-ok' : 'form-error'} role={zoneMessage?.ok ? 'status' : 'alert'}>
        {zoneMessage?.text}
      </p>

      <h2 id="channels-title">Reminder delivery</h2>
      <p className="muted small">Where your habits' reminders are sent: an ntfy topic or a webhook.</p>
      <NotificationChannels />

      {authConfig.data?.mode === 'local' && (
        <>
          <h2 id="account-title">Account</h2>
          <AccountSettings user={user} />
        </>
      )}

      <h2 id="tokens-title">API tokens</h2>
      <ApiTokens />

      <h2>Export</h2>
      <p>Everything you own: habits, entries and activities.</p>
      <div className="actions">
        <a className="button" href="/api/export?format=json" download="ham-export.json">
          Export JSON
        </a>
        <a className="button" href="/api/export?format=csv" download="ham-export.csv">
          Export CSV
        </a>
      </div>

      <h2>Import</h2>
      <form className="inline-form" onSubmit={(e) => void runImport(e)}>
        <label>
          Export file (JSON or CSV)
          <input type="file" accept=".json,.csv,application/json,text/csv" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        </label>
        <button type="submit" disabled={busy}>
          Import
        </button>
      </form>
      <p className={importMessage?.ok ? 'form-ok' : 'form-error'} role={importMessage?.ok ? 'status' : 'alert'}>
        {importMessage?.text}
      </p>
    </section>
  );
}
