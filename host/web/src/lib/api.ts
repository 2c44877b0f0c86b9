// The one way the app talks to the host: JSON over fetch, errors in the host's
// shape `{"error": {"code", "message"}}` turned into ApiError.

/** An error answered by the host (or a network failure, status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
  /**
   * The route is not on this server (a plugin or feature not installed yet): the
   * host's fallback answers "no route for …". A 404 for a missing record is not this.
   */
  get notAvailable(): boolean {
    return this.status === 404 && (this.code === 'not_available' || this.code === 'http_404' || this.message.startsWith('no route for'));
  }
  get unauthorized(): boolean {
    return this.status === 401;
  }
}

/** Reads the host's error body, falling back to the status text. */
export async function errorFrom(response: Response): Promise<ApiError> {
  let code = 'http_' + response.status;
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
      if (body.error?.message) message = body.error.message;
      if (body.error?.code) code = body.error.code;
    } catch {
      if (text.trim()) message = text.trim().slice(0, 500);
    }
  } catch {
    // keep the status text
  }
  return new ApiError(response.status, code, message);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** Sent as-is (FormData, a File, text) with no JSON encoding. */
  raw?: BodyInit;
  contentType?: string;
  signal?: AbortSignal;
}

/** Calls the host; resolves to the parsed JSON (or null for 204). */
export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  let body: BodyInit | undefined;
  if (options.raw !== undefined) {
    body = options.raw;
    if (options.contentType) headers['content-type'] = options.contentType;
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  let response: Response;
  try {
    response = await fetch(path, {
      method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      headers,
      body,
      credentials: 'same-origin',
      signal: options.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'The server cannot be reached. Check that ham is running.');
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null as T;
  const type = response.headers.get('content-type') ?? '';
  if (!type.includes('json')) return (await response.text()) as T;
  return (await response.json()) as T;
}

/** Human words for any error a query or mutation throws. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
