// Rollouts and approvals on the Plugins screen: the upload's `rollout` field from
// what the admin typed (a canary share, or a shadow run of a rule set), and a
// running or decided rollout in words.
import type { InstalledVersion, Rollout, RolloutFigures, RolloutPlan, RolloutState, ShadowPlan, ShadowView } from './types';

/** Whether a rollout's plan is a shadow run's. */
export function isShadowPlan(plan: RolloutPlan | ShadowPlan): plan is ShadowPlan {
  return 'shadow' in plan && plan.shadow === true;
}

/** Whether a rollout is under way (a canary share or a shadow run), not decided. */
export function isRunning(state: RolloutState): boolean {
  return state === 'canary' || state === 'shadow';
}

/**
 * The upload's `rollout` field for a shadow run of a rule set: `{"shadow": true}`
 * with the sample typed (empty: the server's default, 10 %), or an error sentence
 * for anything but a whole number from 1 to 100.
 */
export function shadowField(sample: string): { field: string } | { error: string } {
  const text = sample.trim();
  if (text === '') return { field: JSON.stringify({ shadow: true }) };
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 100) {
    return { error: 'The shadow sample is a whole number of percent from 1 to 100, or empty for 10 %.' };
  }
  return { field: JSON.stringify({ shadow: true, sample_percent: Number(text) }) };
}

/**
 * The upload's `rollout` field from the whole form: a shadow run when asked (and
 * then no canary share), else the canary share, else none.
 */
export function uploadRolloutField(canary: string, shadow: boolean, sample: string): { field: string | null } | { error: string } {
  if (shadow) {
    if (canary.trim() !== '') return { error: 'Choose either a canary share or a shadow run, not both.' };
    return shadowField(sample);
  }
  return rolloutField(canary);
}

/** How often a shadow run's candidate disagreed, as people read it: "1 of 2 (50 %)"; "–" before any comparison. */
export function differedShare(s: ShadowView): string {
  if (s.compared === 0) return '–';
  return `${s.differed} of ${s.compared} (${Number(((s.differed / s.compared) * 100).toFixed(1))} %)`;
}

/** A score 0..1 as a shadow example shows it: a percentage with one decimal, so small differences show. */
export function shadowScore(score: number): string {
  return `${Number((score * 100).toFixed(1))} %`;
}

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
  const plan = r.plan;
  if (isShadowPlan(plan)) {
    const s = r.shadow ?? { compared: 0, differed: 0, errors: 0, examples: [] };
    const figures = `${s.compared} ${s.compared === 1 ? 'answer' : 'answers'} compared, ${s.differed} differed, ${s.errors} failed`;
    switch (r.state) {
      case 'promoted':
        return `${r.candidate_version} was promoted ${who} after a shadow run (${figures}); its answers are live.`;
      case 'shadow':
        return `${r.candidate_version} runs in shadow beside ${r.stable_version} on ${plan.sample_percent} % of evaluations; nobody sees its answers. So far: ${figures}.`;
      default:
        return `The shadow run of ${r.candidate_version} was ${r.state === 'aborted' ? 'aborted' : 'stopped'} ${who} (${figures}); ${r.stable_version} judges habits.`;
    }
  }
  switch (r.state) {
    case 'canary':
    case 'shadow': {
      const served = r.candidate_total_requests ?? r.candidate.requests;
      return `${r.candidate_version} serves ${plan.canary_percent} % beside ${r.stable_version}; judged after ${plan.min_requests} requests (${served} so far).`;
    }
    case 'promoted':
      return `${r.candidate_version} was promoted ${who}; it serves everyone.`;
    case 'rolled_back':
      return `${r.candidate_version} was rolled back ${who}: its error rate was ${errorRate(r.candidate)}, over ${Math.round(plan.max_error_rate * 1000) / 10} %. ${r.stable_version} serves everyone.`;
    case 'aborted':
      return `${r.candidate_version} was aborted ${who}; ${r.stable_version} serves everyone.`;
  }
}

/** What an upload's answer means for the admin, in one sentence. */
export function uploadOutcome(v: InstalledVersion): string {
  switch (v.activation) {
    case 'canary':
      return `Rolling out ${v.name} ${v.version}: it serves a share of requests beside the active version until the host promotes it or rolls it back.`;
    case 'shadow':
      return `${v.name} ${v.version} runs in shadow: it judges a sample of habits beside the active version, nobody sees its answers, and you promote or abort it.`;
    case 'pending_approval':
      return `Stored ${v.name} ${v.version}; it asks for more than the active version and waits for your approval.`;
    default:
      return `Installed ${v.name} ${v.version}; it serves new requests now.`;
  }
}
