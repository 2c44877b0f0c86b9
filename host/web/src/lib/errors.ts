// Every error as a sentence a person can act on: what failed, why (in plain
// words, with the server's own message when it is about what they sent), and what
// to do next. No status codes, no JSON, no server configuration names.
import { ApiError } from './api';

export type NextStep = 'retry' | 'sign-in' | 'reload' | 'fix' | 'wait' | 'admin' | 'back';

export interface Explained {
  /** The whole sentence(s) to show. */
  text: string;
  next: NextStep;
}

function sentence(s: string): string {
  const t = s.trim();
  if (!t) return '';
  const capital = t[0]!.toUpperCase() + t.slice(1);
  return /[.!?]$/.test(capital) ? capital : capital + '.';
}

/**
 * Explains `error`, thrown while trying to `action` ("load your habits", "save
 * the entry"). The server's message is shown for mistakes in what was sent
 * (400, 409, 413, 422): it names the field. Messages that name server settings
 * (environment variables) are never shown.
 */
export function explain(error: unknown, action: string): Explained {
  const failed = `Couldn't ${action}.`;
  if (error instanceof ApiError) {
    const server = /HAM_[A-Z_]+/.test(error.message) ? '' : sentence(error.message);
    switch (true) {
      case error.status === 0:
        return { text: `${failed} The server can't be reached. Check your connection, then try again.`, next: 'retry' };
      case error.status === 401:
        return { text: `${failed} You have been signed out. Sign in again to continue.`, next: 'sign-in' };
      case error.code === 'cross_origin':
        return { text: `${failed} The server refused a request that did not come from this page. Reload the page and try again.`, next: 'reload' };
      case error.status === 403:
        return { text: `${failed} ${server || 'Your account may not do this.'} Ask an administrator if you need it.`, next: 'admin' };
      case error.notAvailable:
        return { text: `${failed} This server does not offer it (the feature is not installed).`, next: 'admin' };
      case error.status === 404:
        return { text: `${failed} It no longer exists; it may have been deleted. Go back to Today.`, next: 'back' };
      case error.status === 429:
        return { text: `${failed} Too many attempts in a short time. Wait a minute, then try again.`, next: 'wait' };
      case error.code === 'not_configured' || error.status === 503:
        return { text: `${failed} It is not set up on this server yet. Ask your administrator.`, next: 'admin' };
      case error.status >= 400 && error.status < 500:
        return { text: `${failed} ${server || 'The server did not accept it.'} Check what you entered and try again.`, next: 'fix' };
      default:
        return { text: `${failed} The server ran into a problem. Try again in a moment; if it keeps happening, tell your administrator.`, next: 'retry' };
    }
  }
  if (error instanceof Error && error.message) return { text: `${failed} ${sentence(error.message)} Try again.`, next: 'retry' };
  return { text: `${failed} Try again.`, next: 'retry' };
}

/** Just the sentence. */
export function explainText(error: unknown, action: string): string {
  return explain(error, action).text;
}
