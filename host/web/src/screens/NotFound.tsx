// Not found: a path that is none of the app's screens. The host serves this page
// with status 404 for any browser navigation it has no screen for.
import { useTitle } from '../lib/router';
import { Link } from '../components/Link';

export function NotFound({ path }: { path: string }) {
  useTitle('Page not found');
  return (
    <section aria-labelledby="notfound-title" className="not-found">
      <h1 id="notfound-title">Page not found</h1>
      <p>
        Nothing lives at <code>{path}</code>. The link may be old, or the page was moved.
      </p>
      <p>
        <Link href="/">Back to Today</Link> · <Link href="/more">More</Link>
      </p>
    </section>
  );
}
