import { describe, expect, it } from 'vitest';
import { errorRate, rolloutField, rolloutSummary, uploadOutcome } from './rollouts';
import type { InstalledVersion, Rollout } from './types';

const rollout = (over: Partial<Rollout>): Rollout => ({
  id: 1,
  state: 'canary',
  stable_version: '0.1.0',
  candidate_version: '0.2.0',
  plan: { canary_percent: 20, min_requests: 50, max_error_rate: 0.05, window_s: 60 },
  stable: { requests: 200, errors: 0 },
  candidate: { requests: 40, errors: 2 },
  candidate_total_requests: 40,
  started_at: '2026-12-01T10:00:00.000Z',
  decided_at: null,
  decided_by: null,
  reason: null,
  ...over,
});

describe('rollouts', () => {
  it('turns the canary share into the upload field, or says what is wrong', () => {
    expect(rolloutField('')).toEqual({ field: null });
    expect(rolloutField(' 20 ')).toEqual({ field: '{"canary_percent":20}' });
    for (const bad of ['0', '100', '2.5', 'ten', '-5']) {
      expect(rolloutField(bad)).toHaveProperty('error');
    }
  });

  it('shows error rates as percentages', () => {
    expect(errorRate({ requests: 0, errors: 0 })).toBe('–');
    expect(errorRate({ requests: 40, errors: 1 })).toBe('2.5 %');
    expect(errorRate({ requests: 3, errors: 3 })).toBe('100 %');
  });

  it('says where a rollout stands', () => {
    expect(rolloutSummary(rollout({}))).toBe('0.2.0 serves 20 % beside 0.1.0; judged after 50 requests (40 so far).');
    expect(rolloutSummary(rollout({ state: 'rolled_back', decided_by: 'host', candidate: { requests: 50, errors: 50 } }))).toBe(
      '0.2.0 was rolled back by the host: its error rate was 100 %, over 5 %. 0.1.0 serves everyone.',
    );
    expect(rolloutSummary(rollout({ state: 'promoted', decided_by: 'admin' }))).toBe('0.2.0 was promoted by an admin; it serves everyone.');
    expect(rolloutSummary(rollout({ state: 'aborted', decided_by: 'admin' }))).toBe('0.2.0 was aborted by an admin; 0.1.0 serves everyone.');
  });

  it('says what an upload did', () => {
    const v = { name: 'p', version: '0.2.0', activation: 'pending_approval', added_capabilities: ['llm'] } as InstalledVersion;
    expect(uploadOutcome(v)).toMatch(/waits for your approval/);
    expect(uploadOutcome({ ...v, activation: 'canary' })).toMatch(/^Rolling out p 0.2.0/);
    expect(uploadOutcome({ ...v, activation: 'active' })).toBe('Installed p 0.2.0; it serves new requests now.');
  });
});
