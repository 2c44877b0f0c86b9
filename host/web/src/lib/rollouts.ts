// Rollouts and approvals on the Plugins screen: the upload's `rollout` field from
// what the admin typed, and a running or decided rollout in words.
import type { InstalledVersion, Rollout, RolloutFigures } from './types';

/**
 * The upload's `rollout` field for a canary share typed by the admin: null for an
 * empty field (everyone at once), an error sentence for anything but a whole
 * number from 1 to 99.
 */
export function rolloutField(percent: string): { field: string | null } | { error: string } {
  const text = percent.trim();
  if (text === '') return { field: null };
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 99) {
    return { error: 'The canary share is a whole number of percent from 1 to 99, or empty to go live for everyone.' };
  }
  return { field: JSON.stringify({ canary_percent: Number(text) }) };
}

/** An error rate as people read it: "0 %", "2.5 %", "100 %"; "–" without requests. */
export function errorRate(f: RolloutFigures): string {
  if (f.requests === 0) return '–';
  return `${Number(((f.errors / f.requests) * 100).toFixed(1))} %`;
}

/** One line saying where a rollout stands. */
export function rolloutSummary(r: Rollout): string {
  const who = r.decided_by === 'admin' ? 'by an admin' : 'by the host';
  switch (r.state) {
    case 'canary': {
      const served = r.candidate_total_requests ?? r.candidate.requests;
      return `${r.candidate_version} serves ${r.plan.canary_percent} % beside ${r.stable_version}; judged after ${r.plan.min_requests} requests (${served} so far).`;
    }
    case 'promoted':
      return `${r.candidate_version} was promoted ${who}; it serves everyone.`;
    case 'rolled_back':
      return `${r.candidate_version} was rolled back ${who}: its error rate was ${errorRate(r.candidate)}, over ${Math.round(r.plan.max_error_rate * 1000) / 10} %. ${r.stable_version} serves everyone.`;
    case 'aborted':
      return `${r.candidate_version} was aborted ${who}; ${r.stable_version} serves everyone.`;
  }
}

/** What an upload's answer means for the admin, in one sentence. */
export function uploadOutcome(v: InstalledVersion): string {
  switch (v.activation) {
    case 'canary':
      return `Rolling out ${v.name} ${v.version}: it serves a share of requests beside the active version until the host promotes it or rolls it back.`;
    case 'pending_approval':
      return `Stored ${v.name} ${v.version}; it asks for more than the active version and waits for your approval.`;
    default:
      return `Installed ${v.name} ${v.version}; it serves new requests now.`;
  }
}
