// Delivery channels as edited in Settings: the rows, the checks the host makes
// (reminders/channels.rs), and the PUT body. Tokens are write-only: a row shows
// whether one is stored, and sends null (keep), "" (clear) or a new one.
import type { Channel, ChannelInput, ChannelKind } from './types';

/** The most channels a user may have (the host's limit). */
export const MAX_CHANNELS = 10;

export interface ChannelRow {
  kind: ChannelKind;
  url: string;
  /** A new token typed in; empty: none typed. */
  token: string;
  /** A token is stored for this kind and url. */
  tokenSet: boolean;
  /** Clear the stored token on save. */
  clearToken: boolean;
  lastError: string | null;
  lastErrorAt: number | null;
}

export function channelToRow(c: Channel): ChannelRow {
  return { kind: c.kind, url: c.url, token: '', tokenSet: c.token_set, clearToken: false, lastError: c.last_error, lastErrorAt: c.last_error_at };
}

export function emptyChannelRow(): ChannelRow {
  return { kind: 'ntfy', url: '', token: '', tokenSet: false, clearToken: false, lastError: null, lastErrorAt: null };
}

/** What is wrong with the rows, first problem first; undefined when nothing. */
export function validateChannels(rows: ChannelRow[]): string | undefined {
  if (rows.length > MAX_CHANNELS) return `At most ${MAX_CHANNELS} channels.`;
  for (const [i, row] of rows.entries()) {
    const n = i + 1;
    let url: URL | null = null;
    try {
      url = new URL(row.url.trim());
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) return `Channel ${n}: a web address like https://ntfy.sh/my-topic.`;
    if (rows.slice(0, i).some((o) => o.kind === row.kind && o.url.trim() === row.url.trim())) return `Channel ${n}: the same address is listed twice.`;
  }
  return undefined;
}

/** The body of PUT /api/me/notifications. */
export function channelsToInput(rows: ChannelRow[]): { channels: ChannelInput[] } {
  return {
    channels: rows.map((r) => ({
      kind: r.kind,
      url: r.url.trim(),
      token: r.token !== '' ? r.token : r.clearToken ? '' : null,
    })),
  };
}
