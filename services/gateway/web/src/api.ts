/**
 * The playground's calls to the gateway: the same REST API and API keys as any client. A key
 * entered on the page lives in sessionStorage (gone when the tab closes) and is sent as
 * `authorization: Bearer <key>`; on loopback without configured keys none is needed.
 */
import { interpretChatEvent, type ChatStreamEvent } from './lib/chat-stream';
import { SseParser } from './lib/sse';

const KEY_STORAGE = 'ibllm.playground.apiKey';

/** An error answer of the API, with the OpenAI-shaped body's message and field path. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** The key is missing or wrong: the page asks for one and tries again. */
  get needsKey(): boolean {
    return this.status === 401;
  }
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

/** A readable message for anything a call can throw. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof TypeError) return `the gateway could not be reached (${error.message})`;
  if (error instanceof Error) return error.message;
  return String(error);
}

export function storedKey(): string {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? '';
  } catch {
    return '';
  }
}

export function storeKey(key: string): void {
  try {
    if (key === '') sessionStorage.removeItem(KEY_STORAGE);
    else sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    // Storage can be disabled; the key then lasts until the page reloads (kept by the caller).
  }
}

function headers(key: string, json: boolean): Headers {
  const h = new Headers({ accept: json ? 'application/json' : 'text/event-stream' });
  if (json) h.set('content-type', 'application/json');
  if (key !== '') h.set('authorization', `Bearer ${key}`);
  return h;
}

/** Turns a non-2xx response into an ApiError, reading the OpenAI error body when there is one. */
async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown; param?: unknown; code?: unknown } };
    const e = body.error;
    if (e !== undefined && typeof e.message === 'string' && e.message !== '') {
      return new ApiError(
        response.status,
        e.message,
        typeof e.param === 'string' ? e.param : null,
        typeof e.code === 'string' ? e.code : null,
      );
    }
  } catch {
    // Not JSON (a proxy's error page, say): fall through to the status line.
  }
  const what =
    response.status === 401
      ? 'an API key is required'
      : response.status === 413
        ? 'the request is too large for the server'
        : `the server answered ${response.status} ${response.statusText}`.trim();
  return new ApiError(response.status, what);
}

export async function getJson(path: string, key: string, signal?: AbortSignal): Promise<unknown> {
  const response = await fetch(path, { method: 'GET', headers: headers(key, true), signal: signal ?? null });
  if (!response.ok) throw await errorOf(response);
  return (await response.json()) as unknown;
}

export async function postJson(
  path: string,
  body: object,
  key: string,
  signal?: AbortSignal,
): Promise<unknown> {
  const response = await fetch(path, {
    method: 'POST',
    headers: headers(key, true),
    body: JSON.stringify(body),
    signal: signal ?? null,
  });
  if (!response.ok) throw await errorOf(response);
  return (await response.json()) as unknown;
}

/**
 * Posts a streamed chat completion and hands every event to `onEvent` as it arrives. Resolves
 * when the stream ends; rejects with an ApiError when the request is refused before streaming,
 * and with an AbortError when `signal` aborts (which closes the connection, so the server
 * cancels the generation).
 */
export async function streamChat(
  body: object,
  key: string,
  signal: AbortSignal,
  onEvent: (event: ChatStreamEvent) => void,
): Promise<void> {
  const response = await fetch('/v1/chat/completions', {
    method: 'POST',
    headers: headers(key, true),
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  if (response.body === null) throw new ApiError(response.status, 'the server sent no answer stream');
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      const text = done ? decoder.decode() : decoder.decode(value, { stream: true });
      for (const data of parser.push(text)) {
        for (const event of interpretChatEvent(data)) onEvent(event);
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
  }
}

/** The file's bytes as bare base64 (no data: prefix), read natively by the browser. */
export async function fileToBase64(blob: Blob): Promise<string> {
  const url = await new Promise<string>((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(typeof reader.result === 'string' ? reader.result : '');
    reader.onerror = () => reject(reader.error ?? new Error('the file could not be read'));
    reader.readAsDataURL(blob);
  });
  const comma = url.indexOf(',');
  return comma < 0 ? '' : url.slice(comma + 1);
}
