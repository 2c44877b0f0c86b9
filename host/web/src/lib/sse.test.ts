import { describe, expect, it } from 'vitest';
import { readSse, SseParser, type SseEvent } from './sse';

function parse(chunks: string[]): SseEvent[] {
  const events: SseEvent[] = [];
  const p = new SseParser((e) => events.push(e));
  for (const c of chunks) p.feed(c);
  p.end();
  return events;
}

describe('SseParser', () => {
  it('reads named events with JSON data', () => {
    const events = parse(['event: token\ndata: {"text":"Hi"}\n\nevent: done\ndata: {"conversation_id":"c1"}\n\n']);
    expect(events).toEqual([
      { event: 'token', data: '{"text":"Hi"}' },
      { event: 'done', data: '{"conversation_id":"c1"}' },
    ]);
  });

  it('joins events split at every possible byte', () => {
    const text = 'event: token\r\ndata: {"text":"a b"}\r\n\r\nevent: token\rdata: x\r\r';
    const whole = parse([text]);
    expect(whole).toHaveLength(2);
    for (let i = 1; i < text.length; i++) {
      expect(parse([text.slice(0, i), text.slice(i)])).toEqual(whole);
    }
    expect(parse(text.split(''))).toEqual(whole);
  });

  it('treats CRLF split across chunks as one line end', () => {
    expect(parse(['data: a\r', '\n\r', '\n'])).toEqual([{ event: 'message', data: 'a' }]);
  });

  it('joins multi-line data, ignores comments and unknown fields, strips one space', () => {
    const events = parse([': keep-alive\ndata:  two spaces\ndata:line2\nretry: 10\nfoo: bar\n\n']);
    expect(events).toEqual([{ event: 'message', data: ' two spaces\nline2' }]);
  });

  it('does not dispatch an event without data, nor one cut off by the end', () => {
    expect(parse(['event: ping\n\n', 'event: token\ndata: {"text":"lost"}\n'])).toEqual([]);
  });

  it('keeps the last event id', () => {
    expect(parse(['id: 7\ndata: x\n\n'])).toEqual([{ event: 'message', data: 'x', id: '7' }]);
  });
});

describe('readSse', () => {
  it('decodes UTF-8 split inside a character', async () => {
    const bytes = new TextEncoder().encode('event: token\ndata: {"text":"Grüße 🏃"}\n\n');
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 3) controller.enqueue(bytes.slice(i, i + 3));
        controller.close();
      },
    });
    const events: SseEvent[] = [];
    await readSse(stream, (e) => events.push(e));
    expect(events).toEqual([{ event: 'token', data: '{"text":"Grüße 🏃"}' }]);
  });
});
