import { describe, expect, it } from 'vitest';
import { channelToRow, channelsToInput, emptyChannelRow, validateChannels } from './channels';

const row = (over: Partial<ReturnType<typeof emptyChannelRow>>) => ({ ...emptyChannelRow(), url: 'https://ntfy.sh/topic', ...over });

describe('channels', () => {
  it('needs a web address and no repeats', () => {
    expect(validateChannels([row({})])).toBeUndefined();
    expect(validateChannels([row({ url: 'ftp://x/y' })])).toMatch(/^Channel 1: a web address/);
    expect(validateChannels([row({}), row({ kind: 'webhook' }), row({})])).toMatch(/^Channel 3: the same address/);
    expect(validateChannels(Array.from({ length: 11 }, (_, i) => row({ url: `https://h/${i}` })))).toBe('At most 10 channels.');
  });

  it('keeps a stored token with null, clears it with "", replaces it with a new one', () => {
    const stored = channelToRow({ id: 'c', kind: 'ntfy', url: 'https://ntfy.sh/t', token_set: true, last_error: 'HTTP 401', last_error_at: 1, last_success_at: null });
    expect(stored.tokenSet).toBe(true);
    expect(stored.token).toBe('');
    const body = channelsToInput([stored, { ...stored, clearToken: true }, { ...stored, token: 'tk_new' }]);
    expect(body.channels.map((c) => c.token)).toEqual([null, '', 'tk_new']);
  });
});
