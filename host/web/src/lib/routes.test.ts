import { describe, expect, it } from 'vitest';
import { APP_ROUTES, isAppRoute } from './routes';
// The host's copy of the list (Vite's ?raw import: the file's text).
import rust from '../../../src/web.rs?raw';

describe('client routes', () => {
  it('are the ones the host serves index.html for (host/src/web.rs)', () => {
    const block = /const APP_ROUTES: &\[&str\] = &\[([^\]]*)\]/.exec(rust)?.[1] ?? '';
    const served = [...block.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
    expect(served).toEqual([...APP_ROUTES]);
  });

  it('never sit where a plugin can serve', () => {
    for (const route of APP_ROUTES as readonly string[]) {
      expect(route === '/plugins' || route.startsWith('/plugins/') || route.startsWith('/api/')).toBe(false);
    }
  });

  it('match one segment per star', () => {
    expect(isAppRoute('/')).toBe(true);
    expect(isAppRoute('/habits/abc')).toBe(true);
    expect(isAppRoute('/habits/abc/edit')).toBe(true);
    expect(isAppRoute('/settings/')).toBe(true);
    expect(isAppRoute('/habits/abc/nope')).toBe(false);
    expect(isAppRoute('/plugins')).toBe(false);
    expect(isAppRoute('/nothing')).toBe(false);
  });
});
