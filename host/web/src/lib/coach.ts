// The coach chat: POST /api/coach/chat answered as SSE (token*, then done or error).
import { errorFrom } from './api';
import { readSse } from './sse';

export interface ChatDone {
  conversation_id: string;
  usage?: { input_tokens: number; output_tokens: number };
}
export interface ChatFailure {
  code: string;
  message: string;
  conversation_id?: string;
}
export interface ChatHandlers {
  onToken: (text: string) => void;
  onDone: (done: ChatDone) => void;
  onError: (error: ChatFailure) => void;
}

/** Interprets one SSE event of the chat stream; returns true when the stream is over. */
export function handleChatEvent(event: string, data: string, handlers: ChatHandlers): boolean {
  let payload: Record<string, unknown>;
  try {
    payload = JSON.parse(data) as Record<string, unknown>;
  } catch {
    handlers.onError({ code: 'bad_stream', message: 'The server sent an unreadable event.' });
    return true;
  }
  switch (event) {
    case 'token':
      if (typeof payload.text === 'string') handlers.onToken(payload.text);
      return false;
    case 'done':
      handlers.onDone(payload as unknown as ChatDone);
      return true;
    case 'error': {
      const failure: ChatFailure = {
        code: typeof payload.code === 'string' ? payload.code : 'error',
        message: typeof payload.message === 'string' ? payload.message : 'The coach failed.',
      };
      if (typeof payload.conversation_id === 'string') failure.conversation_id = payload.conversation_id;
      handlers.onError(failure);
      return true;
    }
    default:
      return false;
  }
}

/** Sends a message and streams the reply into `handlers`. */
export async function sendChat(
  message: string,
  conversationId: string | undefined,
  handlers: ChatHandlers,
  signal?: AbortSignal,
): Promise<void> {
  const body: Record<string, string> = { message };
  if (conversationId) body.conversation_id = conversationId;
  let response: Response;
  try {
    response = await fetch('/api/coach/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
      signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') return;
    handlers.onError({ code: 'network', message: 'The server cannot be reached.' });
    return;
  }
  if (!response.ok || !response.body) {
    const error = await errorFrom(response);
    handlers.onError({ code: error.status === 404 ? 'not_available' : error.code, message: error.message });
    return;
  }
  let finished = false;
  try {
    await readSse(response.body, (e) => {
      if (!finished) finished = handleChatEvent(e.event, e.data, handlers);
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') return;
    if (!finished) handlers.onError({ code: 'network', message: 'The connection dropped mid-reply.' });
    return;
  }
  if (!finished) handlers.onError({ code: 'incomplete', message: 'The reply ended early.' });
}
