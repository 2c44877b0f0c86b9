// Settings: time zone, reminder delivery channels, the account (password,
// deletion; local accounts only), personal API tokens, export (JSON, CSV) and
// import (HAM's own export, or a Loop Habit Tracker backup).
import { useMemo, useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { AccountSettings } from '../components/AccountSettings';
import { ApiTokens } from '../components/ApiTokens';
import { NotificationChannels } from '../components/NotificationChannels';
import { api } from '../lib/api';
import { explainText } from '../lib/errors';
import { importedWords, isSqlite } from '../lib/imports';
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
    if (!file) return setImportMessage({ ok: false, text: 'Choose a file first: JSON or CSV from Export, or a Loop Habit Tracker backup (.db).' });
    setBusy(true);
    try {
      const loop = isSqlite(new Uint8Array(await file.slice(0, 16).arrayBuffer()));
      const csv = file.name.toLowerCase().endsWith('.csv') || file.type === 'text/csv';
      const counts = loop
        ? await api<ImportCounts>('/api/import?format=loop', { method: 'POST', raw: file, contentType: 'application/octet-stream' })
        : await api<ImportCounts>('/api/import', { method: 'POST', raw: await file.text(), contentType: csv ? 'text/csv' : 'application/json' });
      setImportMessage({ ok: true, text: importedWords(counts, loop) });
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
      <p className="muted small">
        Leaving Loop Habit Tracker? In Loop, Settings, Export full backup, then import the .db file here: habits, check-ins, skips, amounts and notes come across.
      </p>
      <form className="inline-form" onSubmit={(e) => void runImport(e)}>
        <label>
          Export file (JSON or CSV), or a Loop Habit Tracker backup (.db)
          <input type="file" accept=".json,.csv,.db,application/json,text/csv,application/vnd.sqlite3,application/x-sqlite3" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
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
