/** What the playground takes from each server-sent event of a streamed chat completion. */

/** The usage chunk (`stream_options.include_usage`), with the model's own timing figures. */
export interface ChatUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly seed?: number;
  readonly timeToFirstTokenMs?: number;
  readonly tokensPerSecond?: number;
}

export type ChatStreamEvent =
  | { readonly kind: 'delta'; readonly text: string }
  | { readonly kind: 'finish'; readonly reason: string }
  | { readonly kind: 'usage'; readonly usage: ChatUsage }
  | { readonly kind: 'error'; readonly message: string; readonly param: string | null }
  | { readonly kind: 'done' };

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const numberOr = (value: unknown, fallback: number): number =>
  typeof value === 'number' && Number.isFinite(value) ? value : fallback;

function readUsage(value: Json): ChatUsage {
  const extension = isObject(value['imagebind']) ? value['imagebind'] : {};
  const usage: {
    promptTokens: number;
    completionTokens: number;
    seed?: number;
    timeToFirstTokenMs?: number;
    tokensPerSecond?: number;
  } = {
    promptTokens: numberOr(value['prompt_tokens'], 0),
    completionTokens: numberOr(value['completion_tokens'], 0),
  };
  if (typeof extension['seed'] === 'number') usage.seed = extension['seed'];
  if (typeof extension['time_to_first_token_ms'] === 'number') {
    usage.timeToFirstTokenMs = extension['time_to_first_token_ms'];
  }
  if (typeof extension['tokens_per_second'] === 'number') {
    usage.tokensPerSecond = extension['tokens_per_second'];
  }
  return usage;
}

/**
 * Turns the `data` of one event into what it means. A chunk can carry a delta and a finish
 * reason at once, so a list comes back; anything unrecognisable is skipped rather than fatal,
 * except a payload that is not JSON at all, which is reported as an error.
 */
export function interpretChatEvent(data: string): ChatStreamEvent[] {
  if (data.trim() === '[DONE]') return [{ kind: 'done' }];
  let payload: unknown;
  try {
    payload = JSON.parse(data);
  } catch {
    return [
      { kind: 'error', message: `the server sent an unreadable event: ${data.slice(0, 120)}`, param: null },
    ];
  }
  if (!isObject(payload)) return [];
  const events: ChatStreamEvent[] = [];
  const error = payload['error'];
  if (error !== undefined) {
    const body = isObject(error) ? error : {};
    const message =
      typeof body['message'] === 'string' && body['message'] !== ''
        ? body['message']
        : 'the answer stream ended with an error';
    events.push({ kind: 'error', message, param: typeof body['param'] === 'string' ? body['param'] : null });
    return events;
  }
  const choices = Array.isArray(payload['choices']) ? payload['choices'] : [];
  for (const choice of choices) {
    if (!isObject(choice)) continue;
    const delta = isObject(choice['delta']) ? choice['delta'] : {};
    if (typeof delta['content'] === 'string' && delta['content'] !== '') {
      events.push({ kind: 'delta', text: delta['content'] });
    }
    if (typeof choice['finish_reason'] === 'string') {
      events.push({ kind: 'finish', reason: choice['finish_reason'] });
    }
  }
  if (isObject(payload['usage'])) events.push({ kind: 'usage', usage: readUsage(payload['usage']) });
  return events;
}
