import { afterEach, describe, expect, it, vi } from 'vitest';
import { api, ApiError } from './api';

afterEach(() => vi.unstubAllGlobals());

describe('api', () => {
  it('sends JSON and reads JSON', async () => {
    const fetchMock = vi.fn(async () => new Response('{"id":"h1"}', { status: 201, headers: { 'content-type': 'application/json' } }));
    vi.stubGlobal('fetch', fetchMock);
    expect(await api('/api/habits', { body: { name: 'Run' } })).toEqual({ id: 'h1' });
    const [, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(init.method).toBe('POST');
    expect((init.headers as Record<string, string>)['content-type']).toBe('application/json');
  });

  it("turns the host's error shape into an ApiError", async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('{"error":{"code":"invalid_field","message":"name: required"}}', { status: 422 })));
    const error = await api('/api/habits', { body: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 422, code: 'invalid_field', message: 'name: required' });
  });

  it('tells a route missing from this server from a missing record', async () => {
    const missingRoute = new ApiError(404, 'not_found', 'no route for /api/strava/status');
    const missingHabit = new ApiError(404, 'not_found', 'no such habit');
    expect(missingRoute.notAvailable).toBe(true);
    expect(missingHabit.notAvailable).toBe(false);
  });

  it('answers null for 204 and says when the server is unreachable', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response(null, { status: 204 })));
    expect(await api('/api/auth/logout', { method: 'POST' })).toBeNull();
    vi.stubGlobal('fetch', vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))));
    await expect(api('/api/me')).rejects.toMatchObject({ status: 0, code: 'network' });
  });
});
