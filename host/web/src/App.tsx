// The app shell: who is signed in decides between the sign-in screen and the
// screens, and the path picks the screen.
import { useQueryClient } from '@tanstack/react-query';
import { api } from './lib/api';
import { useMe } from './lib/queries';
import { match, usePath } from './lib/router';
import type { User } from './lib/types';
import { Link } from './components/Link';
import { ErrorBox, Loading } from './components/Status';
import { SignIn } from './screens/SignIn';
import { Today } from './screens/Today';
import { HabitDetail } from './screens/HabitDetail';
import { HabitFormScreen } from './screens/HabitForm';
import { Activities } from './screens/Activities';
import { Strava } from './screens/Strava';
import { Coach } from './screens/Coach';
import { Plugins } from './screens/Plugins';
import { Settings } from './screens/Settings';

export function App() {
  const me = useMe();
  if (me.isPending) {
    return (
      <Shell user={null}>
        <Loading label="Starting…" />
      </Shell>
    );
  }
  if (me.isError) {
    const status = (me.error as { status?: number }).status;
    if (status === 401) return <SignIn />;
    return (
      <Shell user={null}>
        <ErrorBox error={me.error} retry={() => void me.refetch()} />
      </Shell>
    );
  }
  return (
    <Shell user={me.data}>
      <Screen user={me.data} />
    </Shell>
  );
}

function Screen({ user }: { user: User }) {
  const path = usePath();
  let params: Record<string, string> | null;
  if (path === '/' || path === '/today') return <Today user={user} />;
  if (path === '/habits/new') return <HabitFormScreen />;
  if ((params = match('/habits/:id/edit', path))) return <HabitFormScreen id={params.id} />;
  if ((params = match('/habits/:id', path))) return <HabitDetail id={params.id ?? ''} user={user} />;
  if (path === '/activities') return <Activities user={user} />;
  if (path === '/strava') return <Strava user={user} />;
  if (path === '/coach') return <Coach />;
  if ((params = match('/coach/:id', path))) return <Coach id={params.id} />;
  if (path === '/plugins') return <Plugins user={user} />;
  if (path === '/settings') return <Settings user={user} />;
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        Nothing lives at <code>{path}</code>. <Link href="/">Back to today</Link>
      </p>
    </section>
  );
}

const NAV: { href: string; label: string; admin?: boolean }[] = [
  { href: '/', label: 'Today' },
  { href: '/activities', label: 'Activities' },
  { href: '/strava', label: 'Strava' },
  { href: '/coach', label: 'Coach' },
  { href: '/plugins', label: 'Plugins', admin: true },
  { href: '/settings', label: 'Settings' },
];

function Shell({ user, children }: { user: User | null; children: React.ReactNode }) {
  const qc = useQueryClient();
  const signOut = async () => {
    try {
      await api<null>('/api/auth/logout', { method: 'POST' });
    } finally {
      // A fresh start: nothing of this user stays in memory.
      qc.clear();
      window.location.assign('/');
    }
  };
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <div className="brand">
          <span className="brand-mark" aria-hidden="true" />
          HAM
        </div>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((n) => !n.admin || user?.is_admin).map((n) => (
              <li key={n.href}>
                <Link href={n.href}>{n.label}</Link>
              </li>
            ))}
          </ul>
        </nav>
        {user && (
          <button type="button" className="link-button sign-out" onClick={() => void signOut()}>
            Sign out <span className="visually-hidden">{user.username}</span>
          </button>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}
