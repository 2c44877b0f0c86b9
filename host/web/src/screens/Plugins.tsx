// Plugins (admins): what is installed and active, upload a new version (at once,
// rolled out to a share first, or, a rule set, in shadow), a running rollout with
// both versions' figures (a shadow run: its comparisons and latest differences)
// and Promote/Abort, versions awaiting approval with what they ask for, versions
// and rollback. A refused upload shows the server's own words.
import { useState, type FormEvent } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { explainText } from '../lib/errors';
import { useTitle } from '../lib/router';
import { differedShare, errorRate, isRunning, isShadowPlan, rolloutSummary, shadowScore, uploadOutcome, uploadRolloutField } from '../lib/rollouts';
import type { InstalledVersion, PendingVersion, PluginVersion, PluginView, Rollout, ShadowView, User } from '../lib/types';
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
  const plugins = useQuery({
    queryKey: ['plugins'],
    queryFn: () => api<PluginView[]>('/api/admin/plugins'),
    enabled: user.is_admin,
    // A running rollout's figures move: follow them until it is decided.
    refetchInterval: (q) => (q.state.data?.some((p) => p.rollout && isRunning(p.rollout.state)) ? 2000 : false),
  });
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
  const [canary, setCanary] = useState('');
  const [shadow, setShadow] = useState(false);
  const [sample, setSample] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<InstalledVersion | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    setError(null);
    setDone(null);
    if (!manifest || !component) return setError('Choose both files: the manifest (plugin.toml) and the component (.wasm).');
    const rollout = uploadRolloutField(canary, shadow, sample);
    if ('error' in rollout) return setError(rollout.error);
    const text = await manifest.text();
    const name = manifestName(text);
    if (!name) return setError('The manifest has no name = "…" line at the top: add one, then upload again.');
    const form = new FormData();
    form.append('manifest', new Blob([text], { type: 'text/plain' }), manifest.name);
    form.append('component', component, component.name);
    if (rollout.field) form.append('rollout', rollout.field);
    setBusy(true);
    try {
      const installed = await api<InstalledVersion>(`/api/admin/plugins/${encodeURIComponent(name)}`, { method: 'PUT', raw: form });
      setDone(installed);
      setCanary('');
      setShadow(false);
      setSample('');
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
        <label>
          Canary % <span className="muted small">(optional)</span>
          <input
            type="text"
            name="canary"
            inputMode="numeric"
            size={4}
            value={canary}
            aria-describedby="canary-help"
            onChange={(e) => setCanary(e.target.value)}
          />
        </label>
        <label>
          <input type="checkbox" name="shadow" checked={shadow} aria-describedby="canary-help" onChange={(e) => setShadow(e.target.checked)} />
          In shadow <span className="muted small">(a rule set)</span>
        </label>
        {shadow && (
          <label>
            Sample % <span className="muted small">(default 10)</span>
            <input type="text" name="sample" inputMode="numeric" size={4} value={sample} onChange={(e) => setSample(e.target.value)} />
          </label>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Uploading…' : 'Upload'}
        </button>
      </div>
      <p id="canary-help" className="muted small">
        With a canary share the new version first serves that percentage of requests beside the active one; the host promotes it, or rolls it back if it fails more.
        A rule set (habit-rules) in shadow judges a sample of habits beside the active one without anyone seeing its answers; you see how often they differ, then
        promote or abort it.
      </p>
      <p className="form-error" role="alert" data-testid="upload-error">
        {error}
      </p>
      <div role="status" data-testid="upload-outcome">
        {done && <p className="form-ok">{uploadOutcome(done)}</p>}
        {done && done.added_capabilities.length > 0 && <AddedCapabilities added={done.added_capabilities} />}
        {done?.activation === 'pending_approval' && <ApproveButton name={done.name} version={done.version} onApproved={() => setDone(null)} />}
      </div>
    </form>
  );
}

/** What a version asks for beyond the active one, one line each. */
function AddedCapabilities({ added }: { added: string[] }) {
  return (
    <div className="added-capabilities">
      <p className="small">It asks for more than the active version:</p>
      <ul className="small">
        {added.map((a) => (
          <li key={a}>
            <code>{a}</code>
          </li>
        ))}
      </ul>
    </div>
  );
}

function ApproveButton({ name, version, onApproved }: { name: string; version: string; onApproved?: () => void }) {
  const qc = useQueryClient();
  const toast = useToast();
  const [error, setError] = useState<string | null>(null);
  const approve = async () => {
    setError(null);
    try {
      const v = await api<InstalledVersion>(`/api/admin/plugins/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}/approve`, { method: 'POST' });
      await qc.invalidateQueries({ queryKey: ['plugins'] });
      await qc.invalidateQueries({ queryKey: ['plugin-versions', name] });
      toast({ message: v.activation === 'canary' ? `${name} ${version} approved; its rollout has begun.` : `${name} ${version} approved; it serves new requests now.` });
      onApproved?.();
    } catch (e) {
      setError(explainText(e, `approve ${name} ${version}`));
    }
  };
  return (
    <>
      <button type="button" onClick={() => void approve()}>
        Approve {version}
        <span className="visually-hidden"> of {name}</span>
      </button>
      <p className="form-error" role="alert">
        {error}
      </p>
    </>
  );
}

/** Versions stored awaiting approval, with what each asks for. */
function PendingApprovals({ name, pending }: { name: string; pending: PendingVersion[] }) {
  return (
    <div className="pending-approval" data-testid="pending-approval">
      <h4>Awaiting approval</h4>
      {pending.map((p) => (
        <div key={p.id}>
          <p className="small">
            {p.version}, uploaded {p.uploaded_at}
          </p>
          <AddedCapabilities added={p.added_capabilities} />
          <ApproveButton name={name} version={p.version} />
        </div>
      ))}
    </div>
  );
}

/** A shadow run's comparisons and its latest differences (habit ids and figures only). */
function ShadowFigures({ name, shadow }: { name: string; shadow: ShadowView }) {
  return (
    <>
      <dl className="facts" data-testid="shadow-figures">
        <dt>Compared</dt>
        <dd>{shadow.compared}</dd>
        <dt>Differed</dt>
        <dd>{differedShare(shadow)}</dd>
        <dt>Candidate failed</dt>
        <dd>{shadow.errors}</dd>
      </dl>
      {shadow.examples.length > 0 && (
        <div className="versions-scroll">
          <table className="versions" data-testid="shadow-examples">
            <caption className="small">Latest differences of {name}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Habit</th>
                <th scope="col">Day</th>
                <th scope="col">Score (stable → candidate)</th>
                <th scope="col">Streak (stable → candidate)</th>
              </tr>
            </thead>
            <tbody>
              {shadow.examples.map((e, i) => (
                <tr key={`${e.habit_id}-${e.day}-${i}`}>
                  <td>
                    <code>{e.habit_id}</code>
                  </td>
                  <td>{e.day}</td>
                  <td>
                    {shadowScore(e.stable_score)} → {shadowScore(e.candidate_score)}
                  </td>
                  <td>
                    {e.stable_streak} → {e.candidate_streak}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

/** A plugin's latest rollout: running (both versions' figures, or a shadow run's comparisons; Promote, Abort) or decided. */
function RolloutPanel({ name, rollout }: { name: string; rollout: Rollout }) {
  const qc = useQueryClient();
  const confirm = useConfirm();
  const toast = useToast();
  const [error, setError] = useState<string | null>(null);
  const inShadow = isShadowPlan(rollout.plan);
  const decide = async (action: 'promote' | 'abort') => {
    setError(null);
    const yes = await confirm(
      action === 'promote'
        ? {
            title: `Promote ${name} ${rollout.candidate_version}?`,
            body: inShadow
              ? `Its answers go live for everyone at once, on every replica, instead of ${rollout.stable_version}'s.`
              : `It serves everyone at once, on every replica, instead of ${rollout.stable_version}.`,
            confirm: 'Promote',
          }
        : {
            title: `Abort the ${inShadow ? 'shadow run' : 'rollout'} of ${name} ${rollout.candidate_version}?`,
            body: inShadow
              ? `${rollout.stable_version} keeps judging habits and the comparisons stop, on every replica. The version stays stored.`
              : `${rollout.stable_version} serves everyone again, on every replica. The version stays stored.`,
            confirm: 'Abort',
          },
    );
    if (!yes) return;
    try {
      await api(`/api/admin/plugins/${encodeURIComponent(name)}/rollout/${action}`, { method: 'POST' });
      await qc.invalidateQueries({ queryKey: ['plugins'] });
      await qc.invalidateQueries({ queryKey: ['plugin-versions', name] });
      toast({
        message:
          action === 'promote'
            ? `${name} ${rollout.candidate_version} promoted.`
            : `${inShadow ? 'Shadow run' : 'Rollout'} of ${name} ${rollout.candidate_version} aborted.`,
      });
    } catch (e) {
      setError(explainText(e, `${action} the rollout of ${name}`));
    }
  };
  const running = isRunning(rollout.state);
  const plan = rollout.plan;
  return (
    <div className="rollout" data-testid="rollout" data-state={rollout.state}>
      <h4>{running ? (inShadow ? 'Shadow run under way' : 'Rollout under way') : inShadow ? 'Latest shadow run' : 'Latest rollout'}</h4>
      <p className={running ? undefined : 'muted small'}>{rolloutSummary(rollout)}</p>
      {running && rollout.shadow && <ShadowFigures name={name} shadow={rollout.shadow} />}
      {running && !isShadowPlan(plan) && (
        <>
          <div className="versions-scroll">
            <table className="versions">
              <caption className="visually-hidden">
                Requests and errors of {name} over the last {plan.window_s} s
              </caption>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Share</th>
                  <th scope="col">Requests</th>
                  <th scope="col">Errors</th>
                  <th scope="col">Error rate</th>
                </tr>
              </thead>
              <tbody>
                <tr>
                  <th scope="row">{rollout.stable_version} (stable)</th>
                  <td>{100 - plan.canary_percent} %</td>
                  <td>{rollout.stable.requests}</td>
                  <td>{rollout.stable.errors}</td>
                  <td>{errorRate(rollout.stable)}</td>
                </tr>
                <tr>
                  <th scope="row">{rollout.candidate_version} (candidate)</th>
                  <td>{plan.canary_percent} %</td>
                  <td>{rollout.candidate.requests}</td>
                  <td>{rollout.candidate.errors}</td>
                  <td>{errorRate(rollout.candidate)}</td>
                </tr>
              </tbody>
            </table>
          </div>
        </>
      )}
      {running && (
        <div className="actions">
          <button type="button" className="primary" onClick={() => void decide('promote')}>
            Promote<span className="visually-hidden"> {name} {rollout.candidate_version}</span>
          </button>
          <button type="button" onClick={() => void decide('abort')}>
            Abort<span className="visually-hidden"> the {inShadow ? 'shadow run' : 'rollout'} of {name} {rollout.candidate_version}</span>
          </button>
        </div>
      )}
      <p className="form-error" role="alert">
        {error}
      </p>
    </div>
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
      {plugin.rollout && <RolloutPanel name={plugin.name} rollout={plugin.rollout} />}
      {(plugin.pending_approval?.length ?? 0) > 0 && <PendingApprovals name={plugin.name} pending={plugin.pending_approval ?? []} />}
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
                    <td>
                      {v.active
                        ? 'active'
                        : plugin.rollout?.state === 'canary' && v.version === plugin.rollout.candidate_version
                          ? 'on trial'
                          : plugin.rollout?.state === 'shadow' && v.version === plugin.rollout.candidate_version
                            ? 'in shadow'
                          : v.approval === 'pending'
                            ? 'awaiting approval'
                            : ''}
                    </td>
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
