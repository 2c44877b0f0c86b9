// The app shell: who is signed in decides between the sign-in screen and the
// screens, and the path picks the screen (the paths are lib/routes.ts). Five
// destinations in a tab bar (at the bottom of a phone, in the header on a wider
// screen); the rest, admin screens included, under More.
import { useEffect } from 'react';
import { useMe } from './lib/queries';
import { match, navigate, usePath } from './lib/router';
import { isAppRoute, MOVED } from './lib/routes';
import type { User } from './lib/types';
import { Icon } from './components/Icons';
import { Link } from './components/Link';
import { ConfirmProvider } from './components/Modal';
import { ErrorBox, Loading } from './components/Status';
import { PendingSync } from './components/PendingSync';
import { ToastProvider } from './components/Toast';
import { SignIn } from './screens/SignIn';
import { Today } from './screens/Today';
import { HabitDetail } from './screens/HabitDetail';
import { HabitFormScreen } from './screens/HabitForm';
import { Activities } from './screens/Activities';
import { Strava } from './screens/Strava';
import { Coach } from './screens/Coach';
import { Plugins } from './screens/Plugins';
import { Users } from './screens/Users';
import { Settings } from './screens/Settings';
import { More } from './screens/More';
import { Archived } from './screens/Archived';
import { Arrange } from './screens/Arrange';
import { NotFound } from './screens/NotFound';

export function App() {
  return (
    <ToastProvider>
      <ConfirmProvider>
        <Signed />
      </ConfirmProvider>
    </ToastProvider>
  );
}

function Signed() {
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
        <ErrorBox error={me.error} action="start HAM" retry={() => void me.refetch()} />
      </Shell>
    );
  }
  return (
    <Shell user={me.data}>
      <PendingSync user={me.data} />
      <Screen user={me.data} />
    </Shell>
  );
}

function Screen({ user }: { user: User }) {
  const path = usePath();
  const moved = MOVED[path.replace(/\/+$/, '')];
  useEffect(() => {
    if (moved) navigate(moved, { replace: true });
  }, [moved]);
  let params: Record<string, string> | null;
  if (path === '/' || path === '/today') return <Today user={user} />;
  if (path === '/habits/new') return <HabitFormScreen />;
  if ((params = match('/habits/:id/edit', path))) return <HabitFormScreen id={params.id} />;
  if ((params = match('/habits/:id', path))) return <HabitDetail id={params.id ?? ''} user={user} />;
  if (match('/archived', path)) return <Archived />;
  if (match('/arrange', path)) return <Arrange />;
  if (match('/activities', path)) return <Activities user={user} />;
  if (match('/strava', path)) return <Strava user={user} />;
  if (match('/coach', path)) return <Coach />;
  if ((params = match('/coach/:id', path))) return <Coach id={params.id} />;
  if (match('/settings', path)) return <Settings user={user} />;
  if (match('/more', path)) return <More user={user} />;
  if (match('/admin/plugins', path)) return <Plugins user={user} />;
  if (match('/admin/users', path)) return <Users user={user} />;
  if (moved) return <Loading label="Opening…" />;
  return <NotFound path={path} />;
}

interface Tab {
  href: string;
  label: string;
  icon: string;
  /** Paths that belong to this tab besides its own. */
  owns: (path: string) => boolean;
}

const TABS: Tab[] = [
  { href: '/', label: 'Today', icon: 'today', owns: (p) => p === '/' || p === '/today' || (p.startsWith('/habits/') && isAppRoute(p)) },
  { href: '/activities', label: 'Activities', icon: 'activities', owns: (p) => p.startsWith('/activities') },
  { href: '/strava', label: 'Strava', icon: 'strava', owns: (p) => p.startsWith('/strava') },
  { href: '/coach', label: 'Coach', icon: 'coach', owns: (p) => p === '/coach' || p.startsWith('/coach/') },
  { href: '/more', label: 'More', icon: 'more', owns: (p) => ['/more', '/settings', '/archived', '/arrange', '/admin/plugins', '/admin/users'].includes(p.replace(/\/+$/, '')) },
];

function Shell({ user, children }: { user: User | null; children: React.ReactNode }) {
  const path = usePath();
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <Link href="/" className="brand">
          <span className="brand-mark" aria-hidden="true" />
          HAM
        </Link>
        {user && (
          <nav aria-label="Main" className="tabs">
            <ul>
              {TABS.map((t) => (
                <li key={t.href}>
                  <Link href={t.href} aria-current={t.owns(path) ? 'page' : undefined} data-testid="nav-link">
                    <Icon name={t.icon} />
                    <span className="tab-label">{t.label}</span>
                  </Link>
                </li>
              ))}
            </ul>
          </nav>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}
