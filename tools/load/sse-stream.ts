// Pure helpers shared by the k6 scripts: no k6 module is imported here, so the same file runs under
// k6 (imported as './sse-stream.ts') and under vitest (sse-stream.spec.ts), where it is tested.

/** One server-sent event: its type (`message` unless an `event:` field says otherwise) and data. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

/**
 * Splits a complete `text/event-stream` body into events, following the WHATWG HTML "event stream
 * interpretation": lines end with CRLF, LF or CR; `data:` lines of one event are joined with "\n";
 * one space after the colon is dropped; lines starting with ":" are comments; a blank line
 * dispatches the event. An event not closed by a blank line when the body ends is discarded, as a
 * browser would: the stream was cut short.
 */
export function parseSseEvents(body: string): SseEvent[] {
  const events: SseEvent[] = [];
  let data: string[] = [];
  let event = '';
  for (const line of body.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data.length > 0) events.push({ event: event === '' ? 'message' : event, data: data.join('\n') });
      data = [];
      event = '';
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
  }
  return events;
}

/** Usage from the chunk `stream_options.include_usage` adds before `[DONE]` (gateway openai-format.ts). */
export interface ChatStreamUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** The gateway's own figure (`usage.imagebind.time_to_first_token_ms`), when it sent one. */
  readonly serverTtftMs: number | undefined;
  /** The gateway's own decode rate (`usage.imagebind.tokens_per_second`), when it sent one. */
  readonly serverTokensPerSecond: number | undefined;
}

/** What a complete `POST /v1/chat/completions` SSE answer contained. */
export interface ChatStreamSummary {
  /** The answer: every `choices[0].delta.content`, concatenated. */
  readonly text: string;
  /** Chunks that carried non-empty content (about one per token: the gateway sends a chunk per message). */
  readonly contentChunks: number;
  /** `stop` or `length` from the last choice chunk; null when none came. */
  readonly finishReason: string | null;
  readonly usage: ChatStreamUsage | null;
  /** Whether the `data: [DONE]` terminator arrived. */
  readonly done: boolean;
  /** The message of an error event (`data: {"error": ...}`), or why a chunk was unreadable. */
  readonly error: string | null;
}

type JsonRecord = Record<string, unknown>;

/** A JSON object (not null, not an array), to read fields of parsed JSON without casts. */
export function isRecord(value: unknown): value is JsonRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function readUsage(value: unknown): ChatStreamUsage | null {
  if (!isRecord(value)) return null;
  const extension = isRecord(value['imagebind']) ? value['imagebind'] : {};
  return {
    promptTokens: numberOr(value['prompt_tokens'], 0),
    completionTokens: numberOr(value['completion_tokens'], 0),
    serverTtftMs: optionalNumber(extension['time_to_first_token_ms']),
    serverTokensPerSecond: optionalNumber(extension['tokens_per_second']),
  };
}

function errorMessage(value: unknown): string {
  if (isRecord(value) && typeof value['message'] === 'string') {
    const code = typeof value['code'] === 'string' ? `${value['code']}: ` : '';
    return `${code}${value['message']}`;
  }
  return JSON.stringify(value);
}

/**
 * Reads an OpenAI-style chat completion stream: a role chunk, content chunks, a chunk with the
 * finish reason, the usage chunk when asked for, then `data: [DONE]`; an error after streaming
 * started arrives as `data: {"error": {...}}` with no `[DONE]` after it. Data after `[DONE]` or
 * after an error is ignored.
 */
export function summarizeChatStream(body: string): ChatStreamSummary {
  let text = '';
  let contentChunks = 0;
  let finishReason: string | null = null;
  let usage: ChatStreamUsage | null = null;
  let done = false;
  let error: string | null = null;
  for (const { data } of parseSseEvents(body)) {
    if (done || error !== null) break;
    if (data.trim() === '[DONE]') {
      done = true;
      continue;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      error = `unreadable SSE data: ${data.slice(0, 120)}`;
      continue;
    }
    if (!isRecord(chunk)) {
      error = `SSE data is not a JSON object: ${data.slice(0, 120)}`;
      continue;
    }
    if (chunk['error'] !== undefined) {
      error = errorMessage(chunk['error']);
      continue;
    }
    const choices = Array.isArray(chunk['choices']) ? (chunk['choices'] as unknown[]) : [];
    for (const choice of choices) {
      if (!isRecord(choice)) continue;
      const delta = isRecord(choice['delta']) ? choice['delta'] : {};
      const content = delta['content'];
      if (typeof content === 'string' && content !== '') {
        text += content;
        contentChunks += 1;
      }
      if (typeof choice['finish_reason'] === 'string') finishReason = choice['finish_reason'];
    }
    const chunkUsage = readUsage(chunk['usage']);
    if (chunkUsage !== null) usage = chunkUsage;
  }
  return { text, contentChunks, finishReason, usage, done, error };
}

/**
 * Completion tokens of an answer: the usage chunk's count when the server sent one, otherwise the
 * number of content chunks (the gateway sends one chunk per decoder message, usually one token).
 */
export function completionTokens(summary: ChatStreamSummary): number {
  return summary.usage !== null ? summary.usage.completionTokens : summary.contentChunks;
}

/**
 * Decode speed seen by the client: the first token arrives at time-to-first-token, so the other
 * `tokens - 1` arrive in `afterFirstTokenMs`. Same definition as the gateway's
 * `GenerateUsage.tokens_per_second`, so the two can be compared. Undefined when it cannot be told
 * (one token, or no time measured).
 */
export function tokensPerSecond(tokens: number, afterFirstTokenMs: number): number | undefined {
  if (!(tokens > 1) || !(afterFirstTokenMs > 0)) return undefined;
  return (tokens - 1) / (afterFirstTokenMs / 1000);
}
