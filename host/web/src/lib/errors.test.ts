import { describe, expect, it } from 'vitest';
import { ApiError } from './api';
import { explain } from './errors';

describe('explain: errors as sentences with a next step', () => {
  it('names the action and the next step', () => {
    expect(explain(new ApiError(0, 'network', 'x'), 'load your habits')).toEqual({
      text: "Couldn't load your habits. The server can't be reached. Check your connection, then try again.",
      next: 'retry',
    });
    expect(explain(new ApiError(401, 'unauthorized', 'sign in first'), 'save the entry').next).toBe('sign-in');
    expect(explain(new ApiError(500, 'internal', 'db exploded'), 'save the entry').text).not.toMatch(/db exploded/);
  });

  it("shows the server's words for what was sent", () => {
    const e = explain(new ApiError(422, 'invalid_field', 'target: must be at least 0'), 'save the habit');
    expect(e.text).toBe("Couldn't save the habit. Target: must be at least 0. Check what you entered and try again.");
  });

  it('never shows server settings to users', () => {
    const e = explain(new ApiError(503, 'not_configured', 'the Strava sync is not configured: set HAM_PLUGIN_STRAVA_SYNC_CLIENT_ID'), 'load the rules');
    expect(e.text).not.toMatch(/HAM_/);
    expect(e.text).toMatch(/not set up on this server/);
  });

  it('tells a missing feature from a missing record', () => {
    expect(explain(new ApiError(404, 'not_found', 'no route for /api/x'), 'load it').text).toMatch(/does not offer it/);
    expect(explain(new ApiError(404, 'not_found', 'habit not found'), 'load the habit').text).toMatch(/no longer exists/);
  });
});
