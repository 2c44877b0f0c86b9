// More: the destinations that are not daily (settings, archived habits), the
// administrator's screens, and signing out.
import { useQueryClient } from '@tanstack/react-query';
import { api } from '../lib/api';
import { signedOut } from '../lib/offline';
import { useTitle } from '../lib/router';
import type { User } from '../lib/types';
import { Link } from '../components/Link';

export function More({ user }: { user: User }) {
  useTitle('More');
  const qc = useQueryClient();
  const signOut = async () => {
    try {
      await api<null>('/api/auth/logout', { method: 'POST' });
    } finally {
      // A fresh start: nothing of this user stays in memory, nor in the
      // service worker's cache.
      qc.clear();
      await signedOut();
      window.location.assign('/');
    }
  };
  return (
    <section aria-labelledby="more-title">
      <h1 id="more-title">More</h1>
      <ul className="menu-list">
        <li>
          <Link href="/settings">
            <span className="menu-title">Settings</span>
            <span className="muted small">Time zone, password, API tokens, export and import</span>
          </Link>
        </li>
        <li>
          <Link href="/arrange">
            <span className="menu-title">Arrange habits</span>
            <span className="muted small">The order of your habits on Today</span>
          </Link>
        </li>
        <li>
          <Link href="/archived">
            <span className="menu-title">Archived habits</span>
            <span className="muted small">Habits taken off Today, with their history</span>
          </Link>
        </li>
      </ul>
      {user.is_admin && (
        <>
          <h2>Administration</h2>
          <ul className="menu-list">
            <li>
              <Link href="/admin/plugins">
                <span className="menu-title">Plugins</span>
                <span className="muted small">Installed plugins, uploads, versions and rollback</span>
              </Link>
            </li>
            <li>
              <Link href="/admin/users">
                <span className="menu-title">Users</span>
                <span className="muted small">Accounts: create, make admin, reset a password, delete</span>
              </Link>
            </li>
          </ul>
        </>
      )}
      <h2>Account</h2>
      <p className="muted">
        Signed in as <strong>{user.username}</strong>
        {user.is_admin && ' (administrator)'}.
      </p>
      <button type="button" onClick={() => void signOut()}>
        Sign out
      </button>
    </section>
  );
}
