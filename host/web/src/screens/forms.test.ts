import { describe, expect, it } from 'vitest';
import { manifestName } from './Plugins';
import { ruleFromDraft, ruleToDraft } from './Strava';
import { formatDistance, formatDuration } from './Activities';

describe('manifestName', () => {
  it('reads the top-level name of a plugin.toml', () => {
    expect(manifestName('# comment\nname = "wasi-proxy"\nversion = "0.1.0"\n')).toBe('wasi-proxy');
    expect(manifestName("name='x'")).toBe('x');
    expect(manifestName('version = "1"\n[variables]\nname = "nope"\n')).toBeNull();
  });
});

describe('Strava rules', () => {
  it('turns the editor fields into a rule', () => {
    expect(ruleFromDraft({ habit_id: 'h1', sport_types: 'Run, TrailRun', min_distance_km: '3', min_moving_time_min: '', measure: 'distance_km' })).toEqual({
      habit_id: 'h1',
      sport_types: ['Run', 'TrailRun'],
      min_distance_m: 3000,
      min_moving_time_s: null,
      measure: 'distance_km',
    });
  });

  it('says what is wrong', () => {
    expect(ruleFromDraft({ habit_id: '', sport_types: 'Run', min_distance_km: '', min_moving_time_min: '', measure: 'done' })).toBe('Choose a habit.');
    expect(ruleFromDraft({ habit_id: 'h', sport_types: ' , ', min_distance_km: '', min_moving_time_min: '', measure: 'done' })).toMatch(/sport type/);
    expect(ruleFromDraft({ habit_id: 'h', sport_types: 'Run', min_distance_km: '-2', min_moving_time_min: '', measure: 'done' })).toMatch(/distance/);
  });

  it('round-trips a rule', () => {
    const rule = { id: 'r', habit_id: 'h', sport_types: ['Ride'], min_distance_m: 20000, min_moving_time_s: 1800, measure: 'moving_time_min' as const };
    expect(ruleFromDraft(ruleToDraft(rule))).toEqual({ habit_id: 'h', sport_types: ['Ride'], min_distance_m: 20000, min_moving_time_s: 1800, measure: 'moving_time_min' });
  });
});

describe('activity formatting', () => {
  it('formats distances and durations', () => {
    expect(formatDistance(850)).toBe('850 m');
    expect(formatDistance(5230)).toBe('5.23 km');
    expect(formatDistance(42195)).toBe('42.2 km');
    expect(formatDuration(59)).toBe('0:59');
    expect(formatDuration(3725)).toBe('1:02:05');
  });
});
