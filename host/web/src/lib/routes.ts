// The app's own screens, by path. The host serves index.html for exactly these
// (host/src/web.rs keeps the same list, checked by routes.test.ts); any other
// path a browser opens gets index.html with 404 and the not-found screen.
//
// None of them is under a prefix a plugin can take: plugins serve `/plugins/{name}/…`
// and the `/api/…` routes their manifests claim. That is why the admin screen for
// plugins lives at `/admin/plugins`, not `/plugins`.

/** `*` is one path segment. */
export const APP_ROUTES = [
  '/',
  '/today',
  '/habits/new',
  '/habits/*',
  '/habits/*/edit',
  '/archived',
  '/arrange',
  '/activities',
  '/strava',
  '/coach',
  '/coach/*',
  '/settings',
  '/more',
  '/admin/plugins',
  '/admin/users',
] as const;

/** Whether `path` is one of the app's screens (a trailing slash is ignored). */
export function isAppRoute(path: string): boolean {
  const segments = path.split('/').filter(Boolean);
  return APP_ROUTES.some((route) => {
    const parts = route.split('/').filter(Boolean);
    return parts.length === segments.length && parts.every((p, i) => p === '*' || p === segments[i]);
  });
}

/** Paths that used to be screens, and where they went. */
export const MOVED: Record<string, string> = { '/plugins': '/admin/plugins' };
