// Loading, error and "not on this server" states, shaped like the content they
// stand in for so nothing jumps when data arrives. Errors are sentences with a
// next step (lib/errors.ts), never a status code or JSON.
import { ApiError } from '../lib/api';
import { explain } from '../lib/errors';
import { Link } from './Link';

export function Loading({ label = 'Loading…', lines = 3 }: { label?: string; lines?: number }) {
  return (
    <div className="skeleton-block" role="status" aria-live="polite">
      <span className="visually-hidden">{label}</span>
      {Array.from({ length: lines }, (_, i) => (
        <div key={i} className="skeleton" aria-hidden="true" />
      ))}
    </div>
  );
}

/** An error while trying to `action` ("load your habits"), with the way out. */
export function ErrorBox({ error, retry, action = 'load this' }: { error: unknown; retry?: () => void; action?: string }) {
  if (error instanceof ApiError && error.notAvailable) return <NotAvailable />;
  const { text, next } = explain(error, action);
  return (
    <div className="error-box" role="alert">
      <p>{text}</p>
      <div className="actions">
        {retry && next !== 'sign-in' && next !== 'back' && (
          <button type="button" onClick={retry}>
            Try again
          </button>
        )}
        {next === 'sign-in' && (
          <button type="button" onClick={() => window.location.assign('/')}>
            Sign in
          </button>
        )}
        {next === 'reload' && (
          <button type="button" onClick={() => window.location.reload()}>
            Reload the page
          </button>
        )}
        {next === 'back' && <Link href="/">Back to Today</Link>}
      </div>
    </div>
  );
}

export function NotAvailable({ what = 'This feature' }: { what?: string }) {
  return (
    <div className="notice" role="status">
      <p>
        <strong>{what} is not available on this server.</strong> The server does not offer it (the plugin that
        provides it is not installed). Ask your administrator if you need it.
      </p>
    </div>
  );
}

export function isNotAvailable(error: unknown): boolean {
  return error instanceof ApiError && error.notAvailable;
}
