import { describe, expect, it } from 'vitest';
import {
  differedShare,
  errorRate,
  isRunning,
  isShadowPlan,
  rolloutField,
  rolloutSummary,
  shadowField,
  shadowScore,
  uploadOutcome,
  uploadRolloutField,
} from './rollouts';
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

  it('turns a shadow run into the upload field, or says what is wrong', () => {
    expect(shadowField('')).toEqual({ field: '{"shadow":true}' });
    expect(shadowField(' 100 ')).toEqual({ field: '{"shadow":true,"sample_percent":100}' });
    for (const bad of ['0', '101', '2.5', 'ten']) {
      expect(shadowField(bad)).toHaveProperty('error');
    }
    expect(uploadRolloutField('', true, '25')).toEqual({ field: '{"shadow":true,"sample_percent":25}' });
    expect(uploadRolloutField('20', true, '')).toEqual({ error: 'Choose either a canary share or a shadow run, not both.' });
    expect(uploadRolloutField('20', false, '50')).toEqual({ field: '{"canary_percent":20}' });
    expect(uploadRolloutField('', false, '')).toEqual({ field: null });
  });

  it('says where a shadow run stands', () => {
    const shadow = rollout({
      state: 'shadow',
      stable_version: '0.2.0',
      candidate_version: '0.2.0-strict',
      plan: { shadow: true, sample_percent: 10 },
      shadow: {
        compared: 2,
        differed: 1,
        errors: 0,
        examples: [{ habit_id: 'h1', day: '2026-12-01', stable_score: 0.8123, candidate_score: 0.5, stable_streak: 21, candidate_streak: 2 }],
      },
    });
    expect(isShadowPlan(shadow.plan)).toBe(true);
    expect(isShadowPlan(rollout({}).plan)).toBe(false);
    expect(isRunning('shadow') && isRunning('canary')).toBe(true);
    expect(isRunning('aborted')).toBe(false);
    expect(rolloutSummary(shadow)).toBe(
      '0.2.0-strict runs in shadow beside 0.2.0 on 10 % of evaluations; nobody sees its answers. So far: 2 answers compared, 1 differed, 0 failed.',
    );
    expect(rolloutSummary({ ...shadow, state: 'promoted', decided_by: 'admin' })).toBe(
      '0.2.0-strict was promoted by an admin after a shadow run (2 answers compared, 1 differed, 0 failed); its answers are live.',
    );
    expect(rolloutSummary({ ...shadow, state: 'aborted', decided_by: 'admin' })).toBe(
      'The shadow run of 0.2.0-strict was aborted by an admin (2 answers compared, 1 differed, 0 failed); 0.2.0 judges habits.',
    );
    expect(differedShare(shadow.shadow!)).toBe('1 of 2 (50 %)');
    expect(differedShare({ compared: 0, differed: 0, errors: 3, examples: [] })).toBe('–');
    expect(shadowScore(0.8123)).toBe('81.2 %');
    expect(shadowScore(1)).toBe('100 %');
    const v = { name: 'habit-rules', version: '0.2.0-strict', activation: 'shadow', added_capabilities: [] } as unknown as InstalledVersion;
    expect(uploadOutcome(v)).toMatch(/^habit-rules 0.2.0-strict runs in shadow/);
  });
});
