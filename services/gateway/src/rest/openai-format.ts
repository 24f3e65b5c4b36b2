import { randomBytes } from 'node:crypto';
import { DomainError, ErrorCode, INTERNAL_MESSAGE } from '@imagebind-llm/errors';
import { gatewayV1 } from '@imagebind-llm/proto';

/** Identity shared by every chunk of one completion, as OpenAI repeats it in each. */
export interface CompletionMeta {
  /** `chatcmpl-<random>`. */
  readonly id: string;
  /** Unix seconds when the request was accepted. */
  readonly created: number;
  readonly model: string;
}

export type OpenAiFinishReason = 'stop' | 'length';

/** OpenAI usage plus the model's own timing figures under an `imagebind` extension key. */
export interface OpenAiUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly imagebind?: {
    readonly seed: number;
    readonly time_to_first_token_ms: number;
    readonly tokens_per_second: number;
  };
}

export interface ChatCompletion {
  readonly id: string;
  readonly object: 'chat.completion';
  readonly created: number;
  readonly model: string;
  readonly choices: readonly [
    {
      readonly index: 0;
      readonly message: { readonly role: 'assistant'; readonly content: string; readonly refusal: null };
      readonly logprobs: null;
      readonly finish_reason: OpenAiFinishReason;
    },
  ];
  readonly usage: OpenAiUsage;
}

export interface ChatCompletionChunk {
  readonly id: string;
  readonly object: 'chat.completion.chunk';
  readonly created: number;
  readonly model: string;
  readonly choices: readonly {
    readonly index: 0;
    readonly delta: { readonly role?: 'assistant'; readonly content?: string };
    readonly logprobs: null;
    readonly finish_reason: OpenAiFinishReason | null;
  }[];
  /** Present (null until the last chunk) only when the client asked for usage. */
  readonly usage?: OpenAiUsage | null;
}

/** Body of every REST error response, in the shape OpenAI clients parse. */
export interface OpenAiErrorBody {
  readonly error: {
    readonly message: string;
    /** OpenAI's coarse class: invalid_request_error, authentication_error, ... */
    readonly type: string;
    /** JSON path of the offending field, when known. */
    readonly param: string | null;
    /** The stable domain code (the same string as the gRPC `ibllm-error-code` trailer). */
    readonly code: ErrorCode;
  };
}

export interface OpenAiErrorResponse {
  readonly status: number;
  /** Extra response headers, e.g. `retry-after` in seconds for rate limits and overload. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: OpenAiErrorBody;
}

export function newCompletionId(): string {
  return `chatcmpl-${randomBytes(12).toString('hex')}`;
}

/** A fresh id and the `created` stamp for a request accepted at `nowMs`. */
export function completionMeta(model: string, nowMs: number = Date.now()): CompletionMeta {
  return { id: newCompletionId(), created: Math.floor(nowMs / 1000), model };
}

/**
 * OpenAI knows only "stop" and "length"; a full 512-position context is a length limit too, so
 * FINISH_REASON_CONTEXT maps to "length". Undefined for messages that are not the last.
 */
export function toOpenAiFinishReason(reason: gatewayV1.FinishReason): OpenAiFinishReason | undefined {
  switch (reason) {
    case gatewayV1.FinishReason.FINISH_REASON_STOP:
      return 'stop';
    case gatewayV1.FinishReason.FINISH_REASON_LENGTH:
    case gatewayV1.FinishReason.FINISH_REASON_CONTEXT:
      return 'length';
    case gatewayV1.FinishReason.FINISH_REASON_UNSPECIFIED:
    case gatewayV1.FinishReason.UNRECOGNIZED:
      return undefined;
  }
}

/**
 * Usage from the final message. Should a (faulty) upstream omit it, the token ids seen are the
 * best count of the completion there is, and the prompt count is unknown (0).
 */
function toOpenAiUsage(usage: gatewayV1.GenerateUsage | undefined, tokensSeen: number): OpenAiUsage {
  if (usage === undefined) {
    return { prompt_tokens: 0, completion_tokens: tokensSeen, total_tokens: tokensSeen };
  }
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    imagebind: {
      seed: usage.seed,
      time_to_first_token_ms: usage.timeToFirstTokenMs,
      tokens_per_second: usage.tokensPerSecond,
    },
  };
}

function endedEarly(): DomainError {
  return new DomainError(ErrorCode.Internal, 'the answer stream ended without its final message');
}

/** One server-sent event carrying a JSON payload. */
export function sseEvent(payload: unknown): string {
  return `data: ${JSON.stringify(payload)}\n\n`;
}

/** The terminator OpenAI clients wait for after the last chunk. */
export const SSE_DONE = 'data: [DONE]\n\n';

/** Response headers for an SSE answer (no proxy buffering, no caching). */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};

export interface StreamChatOptions extends CompletionMeta {
  /** `stream_options.include_usage`: add `usage: null` to every chunk and a usage chunk at the end. */
  readonly includeUsage: boolean;
  /** Request id put in the message of an INTERNAL error event. */
  readonly requestId?: string;
  /** Told about an error that ended the stream after it started (to log it; the client got an event). */
  readonly onError?: (error: unknown) => void;
}

/**
 * Turns the gateway's Generate stream into SSE text, one string per event, for
 * `stream: true`: a first chunk with the assistant role, one chunk per text delta, a chunk with
 * the finish reason, the usage chunk when asked for, then `data: [DONE]`.
 *
 * The first upstream message is awaited before anything is yielded, so an error up to then
 * (validation, overload, model not ready) is THROWN and the caller can still answer with an
 * HTTP status. Once events have gone out the status is fixed at 200, so a later error becomes
 * an error event (`data: {"error": ...}`, which OpenAI clients raise) with no `[DONE]` after it.
 * Stopping the iteration (client gone) closes the upstream stream, which cancels the work.
 */
export async function* streamChatCompletion(
  stream: AsyncIterable<gatewayV1.GenerateResponse>,
  options: StreamChatOptions,
): AsyncGenerator<string, void, undefined> {
  const usageField = options.includeUsage ? { usage: null } : {};
  const chunk = (
    delta: ChatCompletionChunk['choices'][number]['delta'],
    finish: OpenAiFinishReason | null,
  ): ChatCompletionChunk => ({
    id: options.id,
    object: 'chat.completion.chunk',
    created: options.created,
    model: options.model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...usageField,
  });

  const upstream = stream[Symbol.asyncIterator]();
  let next = await upstream.next();
  if (next.done === true) throw endedEarly();

  let finish: OpenAiFinishReason | undefined;
  let usage: gatewayV1.GenerateUsage | undefined;
  let tokensSeen = 0;
  try {
    yield sseEvent(chunk({ role: 'assistant', content: '' }, null));
    while (next.done !== true) {
      const message = next.value;
      tokensSeen += message.tokenIds.length;
      if (message.text !== '') yield sseEvent(chunk({ content: message.text }, null));
      finish = toOpenAiFinishReason(message.finishReason);
      if (finish !== undefined) {
        usage = message.usage;
        break;
      }
      next = await upstream.next();
    }
    if (finish === undefined) throw endedEarly();
  } catch (error) {
    options.onError?.(error);
    yield sseErrorEvent(error, options.requestId);
    return;
  } finally {
    // Ends the upstream when we stop early (final message seen, or the consumer went away).
    await upstream.return?.();
  }

  yield sseEvent(chunk({}, finish));
  if (options.includeUsage) {
    const last: ChatCompletionChunk = {
      id: options.id,
      object: 'chat.completion.chunk',
      created: options.created,
      model: options.model,
      choices: [],
      usage: toOpenAiUsage(usage, tokensSeen),
    };
    yield sseEvent(last);
  }
  yield SSE_DONE;
}

/**
 * Collects the whole Generate stream into one `chat.completion` object, for `stream: false`.
 * Errors propagate unchanged (nothing has been sent yet).
 */
export async function collectChatCompletion(
  stream: AsyncIterable<gatewayV1.GenerateResponse>,
  meta: CompletionMeta,
): Promise<ChatCompletion> {
  let text = '';
  let tokensSeen = 0;
  for await (const message of stream) {
    text += message.text;
    tokensSeen += message.tokenIds.length;
    const finish = toOpenAiFinishReason(message.finishReason);
    if (finish !== undefined) {
      return {
        id: meta.id,
        object: 'chat.completion',
        created: meta.created,
        model: meta.model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: text, refusal: null },
            logprobs: null,
            finish_reason: finish,
          },
        ],
        usage: toOpenAiUsage(message.usage, tokensSeen),
      };
    }
  }
  throw endedEarly();
}

/** OpenAI's error `type` for each domain code; the compiler keeps it exhaustive. */
const OPENAI_ERROR_TYPE = {
  INVALID_INPUT: 'invalid_request_error',
  UNSUPPORTED_MEDIA: 'invalid_request_error',
  PAYLOAD_TOO_LARGE: 'invalid_request_error',
  CONTEXT_OVERFLOW: 'invalid_request_error',
  NOT_FOUND: 'invalid_request_error',
  ALREADY_EXISTS: 'invalid_request_error',
  FAILED_PRECONDITION: 'invalid_request_error',
  CANCELLED: 'invalid_request_error',
  UNAUTHENTICATED: 'authentication_error',
  PERMISSION_DENIED: 'permission_error',
  RATE_LIMITED: 'rate_limit_error',
  OVERLOADED: 'server_error',
  DEADLINE_EXCEEDED: 'server_error',
  DEPENDENCY_UNAVAILABLE: 'server_error',
  MODEL_NOT_READY: 'server_error',
  NOT_IMPLEMENTED: 'server_error',
  INTERNAL: 'server_error',
} as const satisfies Record<ErrorCode, string>;

/**
 * Fields of the internal RPCs that a REST client never wrote: the REST part they come from. The
 * prompt's token ids are made from `messages` (the instruction, the input text and the template);
 * so is the text the decoder's Tokenize counts.
 */
const REST_FIELD_OF: Readonly<Record<string, string>> = { prompt_token_ids: 'messages', text: 'messages' };

/** `inputs[2]`, `inputs[2].content`, `inputs[2].weight`, `inputs[2].embedding.vector.data`. */
const INPUT_FIELD = /^inputs\[(\d+)\]((?:\.[a-z_]+)*)$/;

/**
 * A DomainError about an internal field, told in the REST client's terms: `inputs[i]...` becomes
 * the content part it came from (`messages[0].content[2]`, its `.weight` kept), an RPC field
 * becomes the REST field it was made from. The message's leading field is rewritten the same way.
 */
function inRestTerms(error: DomainError, inputPaths: readonly string[] | undefined): DomainError {
  const field = error.details.field;
  if (typeof field !== 'string') return error;
  let rest = REST_FIELD_OF[field];
  const input = INPUT_FIELD.exec(field);
  if (input !== null && inputPaths !== undefined) {
    const part = inputPaths[Number(input[1])];
    if (part !== undefined) rest = input[2] === '.weight' ? `${part}.weight` : part;
  }
  if (rest === undefined) return error;
  const item = input === null ? field : `inputs[${input[1]}]`;
  // `inputs[2]: ...` or `inputs[2].content: ...`, or the RPC field's own prefix.
  const prefix = new RegExp(`^(?:${escapeRegExp(field)}|${escapeRegExp(item)}(?:\\.[a-z_]+)*): `);
  const message = error.message.replace(prefix, '');
  return new DomainError(
    error.code,
    `${rest}: ${message}`,
    { ...error.details, field: rest },
    { cause: error },
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The HTTP answer for any thrown value. A DomainError keeps its message, its status from the
 * shared HTTP mapping, its field as `param` (in REST terms: `inputPaths` maps the request's
 * inputs back to their content parts) and its retry hint as `retry-after`; anything else is a 500
 * whose message hides the cause (log it with the request id).
 */
export function toOpenAiError(
  error: unknown,
  requestId?: string,
  inputPaths?: readonly string[],
): OpenAiErrorResponse {
  if (error instanceof DomainError) error = inRestTerms(error, inputPaths);
  if (error instanceof DomainError) {
    const headers: Record<string, string> = {};
    const retryAfterMs = error.details.retryAfterMs;
    if (typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs)) {
      headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
    }
    const field = error.details.field;
    return {
      status: error.httpStatus,
      headers,
      body: {
        error: {
          message: error.message,
          type: OPENAI_ERROR_TYPE[error.code],
          param: typeof field === 'string' ? field : null,
          code: error.code,
        },
      },
    };
  }
  const suffix = requestId === undefined ? '' : ` (request id ${requestId})`;
  return {
    status: 500,
    headers: {},
    body: {
      error: {
        message: INTERNAL_MESSAGE + suffix,
        type: OPENAI_ERROR_TYPE.INTERNAL,
        param: null,
        code: ErrorCode.Internal,
      },
    },
  };
}

/** An error after streaming started, as the SSE event OpenAI clients recognise. */
export function sseErrorEvent(error: unknown, requestId?: string): string {
  return sseEvent(toOpenAiError(error, requestId).body);
}
