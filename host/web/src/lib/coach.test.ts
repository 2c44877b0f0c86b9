import { afterEach, describe, expect, it, vi } from 'vitest';
import { handleChatEvent, sendChat, type ChatDone, type ChatFailure } from './coach';

function recorder() {
  const tokens: string[] = [];
  const done: ChatDone[] = [];
  const errors: ChatFailure[] = [];
  return { tokens, done, errors, handlers: { onToken: (t: string) => tokens.push(t), onDone: (d: ChatDone) => done.push(d), onError: (e: ChatFailure) => errors.push(e) } };
}

describe('handleChatEvent', () => {
  it('streams tokens until done', () => {
    const r = recorder();
    expect(handleChatEvent('token', '{"text":"Hel"}', r.handlers)).toBe(false);
    expect(handleChatEvent('token', '{"text":"lo"}', r.handlers)).toBe(false);
    expect(handleChatEvent('done', '{"conversation_id":"c1","usage":{"input_tokens":3,"output_tokens":2}}', r.handlers)).toBe(true);
    expect(r.tokens.join('')).toBe('Hello');
    expect(r.done[0]?.conversation_id).toBe('c1');
  });

  it('reports not_configured errors with their code', () => {
    const r = recorder();
    expect(handleChatEvent('error', '{"code":"not_configured","message":"no provider","conversation_id":"c2"}', r.handlers)).toBe(true);
    expect(r.errors).toEqual([{ code: 'not_configured', message: 'no provider', conversation_id: 'c2' }]);
  });

  it('treats unreadable data as the end of the stream', () => {
    const r = recorder();
    expect(handleChatEvent('token', 'not json', r.handlers)).toBe(true);
    expect(r.errors[0]?.code).toBe('bad_stream');
  });
});

describe('sendChat', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('posts the message and streams the reply', async () => {
    const body = 'event: token\ndata: {"text":"Keep "}\n\nevent: token\ndata: {"text":"going"}\n\nevent: done\ndata: {"conversation_id":"c9"}\n\n';
    const fetchMock = vi.fn(async () => new Response(body, { headers: { 'content-type': 'text/event-stream' } }));
    vi.stubGlobal('fetch', fetchMock);
    const r = recorder();
    await sendChat('How am I doing?', 'c9', r.handlers);
    expect(r.tokens).toEqual(['Keep ', 'going']);
    expect(r.done).toHaveLength(1);
    const init = (fetchMock.mock.calls[0] as unknown as [string, RequestInit])[1];
    expect(JSON.parse(init.body as string)).toEqual({ message: 'How am I doing?', conversation_id: 'c9' });
  });

  it('says the coach is not available on a 404', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('{"error":{"code":"not_found","message":"no route"}}', { status: 404 })));
    const r = recorder();
    await sendChat('hi', undefined, r.handlers);
    expect(r.errors[0]?.code).toBe('not_available');
  });

  it('reports a stream that ends without done', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => new Response('event: token\ndata: {"text":"par"}\n\n')));
    const r = recorder();
    await sendChat('hi', undefined, r.handlers);
    expect(r.tokens).toEqual(['par']);
    expect(r.errors[0]?.code).toBe('incomplete');
  });
});
