// Loading, error and "not on this server" states, shaped like the content they
// stand in for so nothing jumps when data arrives.
import { ApiError, describeError } from '../lib/api';

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

export function ErrorBox({ error, retry }: { error: unknown; retry?: () => void }) {
  if (error instanceof ApiError && error.notAvailable) return <NotAvailable />;
  return (
    <div className="error-box" role="alert">
      <p>{describeError(error)}</p>
      {retry && (
        <button type="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function NotAvailable({ what = 'This feature' }: { what?: string }) {
  return (
    <div className="notice" role="status">
      <p>
        <strong>{what} is not available on this server.</strong> The server does not offer it yet (the plugin or
        route is not installed).
      </p>
    </div>
  );
}

export function isNotAvailable(error: unknown): boolean {
  return error instanceof ApiError && error.notAvailable;
}
