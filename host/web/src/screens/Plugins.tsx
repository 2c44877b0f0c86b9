// Plugins (admins): what is installed and active, upload a new version, versions
// and rollback. A refused upload shows the server's own words.
import { useState, type FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { explainText } from '../lib/errors';
import { useTitle } from '../lib/router';
import type { PluginVersion, PluginView, User } from '../lib/types';
import { useConfirm } from '../components/Modal';
import { ErrorBox, Loading } from '../components/Status';
import { useToast } from '../components/Toast';

/** The `name = "…"` of a plugin.toml, if it has one at the top level. */
export function manifestName(toml: string): string | null {
  for (const raw of toml.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith('[')) break;
    const m = /^name\s*=\s*(?:"([^"]*)"|'([^']*)')/.exec(line);
    if (m) return m[1] ?? m[2] ?? null;
  }
  return null;
}

export function Plugins({ user }: { user: User }) {
  useTitle('Plugins');
  const plugins = useQuery({ queryKey: ['plugins'], queryFn: () => api<PluginView[]>('/api/admin/plugins'), enabled: user.is_admin });
  if (!user.is_admin) {
    return (
      <section>
        <h1>Plugins</h1>
        <p role="alert">Only administrators manage plugins. Ask one if a plugin needs changing.</p>
      </section>
    );
  }
  const list = [...(plugins.data ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <section aria-labelledby="plugins-title">
      <h1 id="plugins-title">Plugins</h1>
      <Upload />
      <h2>Installed</h2>
      {plugins.isPending && <Loading label="Loading plugins…" lines={3} />}
      {plugins.isError && <ErrorBox error={plugins.error} action="load the plugins" retry={() => void plugins.refetch()} />}
      <ul className="plugin-list">
        {list.map((p) => (
          <PluginCard key={p.name} plugin={p} />
        ))}
      </ul>
    </section>
  );
}

function Upload() {
  const qc = useQueryClient();
  const [manifest, setManifest] = useState<File | null>(null);
  const [component, setComponent] = useState<File | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    setError(null);
    setDone(null);
    if (!manifest || !component) return setError('Choose both files: the manifest (plugin.toml) and the component (.wasm).');
    const text = await manifest.text();
    const name = manifestName(text);
    if (!name) return setError('The manifest has no name = "…" line at the top: add one, then upload again.');
    const form = new FormData();
    form.append('manifest', new Blob([text], { type: 'text/plain' }), manifest.name);
    form.append('component', component, component.name);
    setBusy(true);
    try {
      const installed = await api<PluginView>(`/api/admin/plugins/${encodeURIComponent(name)}`, { method: 'PUT', raw: form });
      setDone(`Installed ${installed.name} ${installed.version}; it serves new requests now.`);
      (e.target as HTMLFormElement).reset();
      setManifest(null);
      setComponent(null);
      await qc.invalidateQueries({ queryKey: ['plugins'] });
      await qc.invalidateQueries({ queryKey: ['plugin-versions', installed.name] });
    } catch (err) {
      setError(explainText(err, `install ${name}`));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="card upload-form" onSubmit={(e) => void submit(e)} aria-labelledby="upload-title">
      <h2 id="upload-title">Upload a version</h2>
      <div className="inline-form">
        <label>
          Manifest (plugin.toml)
          <input type="file" name="manifest" accept=".toml,text/plain" onChange={(e) => setManifest(e.target.files?.[0] ?? null)} />
        </label>
        <label>
          Component (.wasm)
          <input type="file" name="component" accept=".wasm,application/wasm" onChange={(e) => setComponent(e.target.files?.[0] ?? null)} />
        </label>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Uploading…' : 'Upload'}
        </button>
      </div>
      <p className="form-error" role="alert" data-testid="upload-error">
        {error}
      </p>
      <p className="form-ok" role="status">
        {done}
      </p>
    </form>
  );
}

function PluginCard({ plugin }: { plugin: PluginView }) {
  const qc = useQueryClient();
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const versions = useQuery({
    queryKey: ['plugin-versions', plugin.name],
    queryFn: () => api<PluginVersion[]>(`/api/admin/plugins/${encodeURIComponent(plugin.name)}/versions`),
    enabled: open,
  });
  const confirm = useConfirm();
  const toast = useToast();
  const rollback = async () => {
    setError(null);
    const yes = await confirm({
      title: `Roll back ${plugin.name}?`,
      body: `Version ${plugin.version} stops serving and the version installed before it takes over, for new requests at once. Every version stays stored: upload ${plugin.version} again to return to it.`,
      confirm: 'Roll back',
    });
    if (!yes) return;
    try {
      await api(`/api/admin/plugins/${encodeURIComponent(plugin.name)}/rollback`, { method: 'POST' });
      await qc.invalidateQueries({ queryKey: ['plugins'] });
      await qc.invalidateQueries({ queryKey: ['plugin-versions', plugin.name] });
      toast({ message: `${plugin.name} rolled back from ${plugin.version}.` });
    } catch (e) {
      setError(explainText(e, `roll back ${plugin.name}`));
    }
  };
  return (
    <li className="card plugin" aria-labelledby={`plugin-${plugin.name}`}>
      <div className="plugin-head">
        <h3 id={`plugin-${plugin.name}`}>{plugin.name}</h3>
        <span className="badge" data-testid="active-version">
          {plugin.version}
        </span>
        <span className="muted small">{plugin.exports.join(', ')}</span>
      </div>
      <dl className="facts">
        <dt>sha256</dt>
        <dd>
          <code title={plugin.sha256}>{plugin.sha256.slice(0, 16)}…</code>
        </dd>
        <dt>Uploaded</dt>
        <dd>{plugin.uploaded_at}</dd>
        <dt>Routes</dt>
        <dd>
          {plugin.routes.length === 0 && (plugin.exports.includes('http') ? <code>/plugins/{plugin.name}/…</code> : 'none')}
          {plugin.routes.map((r) => (
            <code key={r.path} className="route">
              {(r.methods ?? ['GET']).join(',')} {r.path}
            </code>
          ))}
        </dd>
        {plugin.missing_variables.length > 0 && (
          <>
            <dt>Missing settings</dt>
            <dd className="form-error">{plugin.missing_variables.join(', ')}</dd>
          </>
        )}
      </dl>
      <div className="actions">
        <button type="button" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? 'Hide versions' : 'Versions'}
          <span className="visually-hidden"> of {plugin.name}</span>
        </button>
        <button type="button" onClick={() => void rollback()}>
          Roll back<span className="visually-hidden"> {plugin.name}</span>
        </button>
      </div>
      <p className="form-error" role="alert">
        {error}
      </p>
      {open && (
        <div>
          {versions.isPending && <Loading lines={2} />}
          {versions.isError && <ErrorBox error={versions.error} action={`load the versions of ${plugin.name}`} />}
          {versions.data && (
            <div className="versions-scroll">
            <table className="versions">
              <caption className="visually-hidden">Versions of {plugin.name}</caption>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">sha256</th>
                  <th scope="col">Source</th>
                  <th scope="col">Uploaded</th>
                  <th scope="col">Active</th>
                </tr>
              </thead>
              <tbody>
                {versions.data.map((v) => (
                  <tr key={v.id} className={v.active ? 'active-row' : undefined}>
                    <td>{v.version}</td>
                    <td>
                      <code title={v.sha256}>{v.sha256.slice(0, 12)}</code>
                    </td>
                    <td>{v.source}</td>
                    <td>{v.uploaded_at}</td>
                    <td>{v.active ? 'active' : ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            </div>
          )}
        </div>
      )}
    </li>
  );
}
