import { DomainError, ErrorCode, INTERNAL_MESSAGE } from '@imagebind-llm/errors';
import { gatewayV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import {
  collectChatCompletion,
  completionMeta,
  newCompletionId,
  SSE_DONE,
  sseErrorEvent,
  streamChatCompletion,
  toOpenAiError,
  type CompletionMeta,
} from './openai-format';

const F = gatewayV1.FinishReason;
const meta: CompletionMeta = { id: 'chatcmpl-test', created: 1_700_000_000, model: 'imagebind-llm-7b' };
const usage: gatewayV1.GenerateUsage = {
  promptTokens: 40,
  completionTokens: 3,
  timeToFirstTokenMs: 120.5,
  tokensPerSecond: 25,
  seed: 7,
};

const delta = (text: string, ids: number[] = [1]): gatewayV1.GenerateResponse => ({
  text,
  tokenIds: ids,
  finishReason: F.FINISH_REASON_UNSPECIFIED,
});
const final = (
  text: string,
  reason: gatewayV1.FinishReason,
  u?: gatewayV1.GenerateUsage,
): gatewayV1.GenerateResponse => ({
  text,
  tokenIds: text === '' ? [] : [2],
  finishReason: reason,
  usage: u,
});

async function* scripted(
  messages: readonly gatewayV1.GenerateResponse[],
  failWith?: Error,
  onClose?: () => void,
): AsyncGenerator<gatewayV1.GenerateResponse> {
  try {
    for (const m of messages) {
      await Promise.resolve();
      yield m;
    }
    if (failWith !== undefined) throw failWith;
  } finally {
    onClose?.();
  }
}

async function drain(events: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of events) out.push(e);
  return out;
}

/** The JSON payload of one `data: ...\n\n` event. */
function payload(event: string): unknown {
  expect(event.startsWith('data: ')).toBe(true);
  expect(event.endsWith('\n\n')).toBe(true);
  return JSON.parse(event.slice('data: '.length, -2));
}

const chunkOf = (deltaValue: object, finish: string | null, extra: object = {}): object => ({
  id: 'chatcmpl-test',
  object: 'chat.completion.chunk',
  created: 1_700_000_000,
  model: 'imagebind-llm-7b',
  choices: [{ index: 0, delta: deltaValue, logprobs: null, finish_reason: finish }],
  ...extra,
});

describe('streamChatCompletion', () => {
  it('serialises a scripted stream into OpenAI chunks, a usage chunk and [DONE]', async () => {
    const events = await drain(
      streamChatCompletion(
        scripted([delta('Hello'), delta(' world'), final('!', F.FINISH_REASON_STOP, usage)]),
        { ...meta, includeUsage: true },
      ),
    );
    expect(events).toHaveLength(7);
    const nul = { usage: null };
    expect(events.slice(0, 6).map(payload)).toEqual([
      chunkOf({ role: 'assistant', content: '' }, null, nul),
      chunkOf({ content: 'Hello' }, null, nul),
      chunkOf({ content: ' world' }, null, nul),
      chunkOf({ content: '!' }, null, nul),
      chunkOf({}, 'stop', nul),
      {
        id: 'chatcmpl-test',
        object: 'chat.completion.chunk',
        created: 1_700_000_000,
        model: 'imagebind-llm-7b',
        choices: [],
        usage: {
          prompt_tokens: 40,
          completion_tokens: 3,
          total_tokens: 43,
          imagebind: { seed: 7, time_to_first_token_ms: 120.5, tokens_per_second: 25 },
        },
      },
    ]);
    expect(events[6]).toBe(SSE_DONE);
    expect(SSE_DONE).toBe('data: [DONE]\n\n');
  });

  it('leaves usage out entirely when not asked for, and maps a full context to "length"', async () => {
    const events = await drain(
      streamChatCompletion(scripted([delta('a'), final('', F.FINISH_REASON_CONTEXT, usage)]), {
        ...meta,
        includeUsage: false,
      }),
    );
    expect(events.slice(0, -1).map(payload)).toEqual([
      chunkOf({ role: 'assistant', content: '' }, null),
      chunkOf({ content: 'a' }, null),
      chunkOf({}, 'length'),
    ]);
    expect(events.at(-1)).toBe(SSE_DONE);
  });

  it('throws an error that comes before the first message, so the caller can still send a status', async () => {
    const error = DomainError.overloaded('decoder queue full', 2000);
    const events: string[] = [];
    await expect(async () => {
      for await (const e of streamChatCompletion(scripted([], error), { ...meta, includeUsage: false })) {
        events.push(e);
      }
    }).rejects.toBe(error);
    expect(events).toEqual([]);
  });

  it('turns a later error into an error event without [DONE], and reports it', async () => {
    const seen: unknown[] = [];
    const error = DomainError.unavailable('decoder went away');
    const events = await drain(
      streamChatCompletion(scripted([delta('Hel')], error), {
        ...meta,
        includeUsage: false,
        onError: (e) => seen.push(e),
      }),
    );
    expect(events).toHaveLength(3);
    expect(payload(events[2]!)).toEqual({
      error: {
        message: 'decoder went away',
        type: 'server_error',
        param: null,
        code: 'DEPENDENCY_UNAVAILABLE',
      },
    });
    expect(events).not.toContain(SSE_DONE);
    expect(seen).toEqual([error]);
  });

  it('reports a stream that ends without its final message as an internal error event', async () => {
    const events = await drain(
      streamChatCompletion(scripted([delta('x')]), { ...meta, includeUsage: false }),
    );
    expect(payload(events.at(-1)!)).toEqual({
      error: {
        message: 'the answer stream ended without its final message',
        type: 'server_error',
        param: null,
        code: 'INTERNAL',
      },
    });
  });

  it('hides the cause of an unexpected error behind the request id', async () => {
    const events = await drain(
      streamChatCompletion(scripted([delta('x')], new Error('socket hang up 10.0.0.7')), {
        ...meta,
        includeUsage: false,
        requestId: 'req-9',
      }),
    );
    expect(payload(events.at(-1)!)).toEqual({
      error: {
        message: `${INTERNAL_MESSAGE} (request id req-9)`,
        type: 'server_error',
        param: null,
        code: 'INTERNAL',
      },
    });
  });

  it('closes the upstream stream when the consumer stops early (client disconnect)', async () => {
    let closed = false;
    const events = streamChatCompletion(
      scripted(
        [delta('a'), delta('b'), delta('c'), final('', F.FINISH_REASON_STOP, usage)],
        undefined,
        () => {
          closed = true;
        },
      ),
      { ...meta, includeUsage: false },
    );
    let count = 0;
    for await (const _ of events) {
      count += 1;
      if (count === 2) break;
    }
    expect(closed).toBe(true);
  });
});

describe('collectChatCompletion', () => {
  it('aggregates the deltas into one chat.completion with usage', async () => {
    const completion = await collectChatCompletion(
      scripted([delta('A '), delta('cat'), final('.', F.FINISH_REASON_LENGTH, usage)]),
      meta,
    );
    expect(completion).toEqual({
      id: 'chatcmpl-test',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'imagebind-llm-7b',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'A cat.', refusal: null },
          logprobs: null,
          finish_reason: 'length',
        },
      ],
      usage: {
        prompt_tokens: 40,
        completion_tokens: 3,
        total_tokens: 43,
        imagebind: { seed: 7, time_to_first_token_ms: 120.5, tokens_per_second: 25 },
      },
    });
  });

  it('counts the token ids seen when the final message carries no usage', async () => {
    const completion = await collectChatCompletion(
      scripted([delta('a', [5, 6]), final('b', F.FINISH_REASON_STOP)]),
      meta,
    );
    expect(completion.usage).toEqual({ prompt_tokens: 0, completion_tokens: 3, total_tokens: 3 });
  });

  it('fails with INTERNAL when the stream ends without a finish reason', async () => {
    await expect(collectChatCompletion(scripted([delta('a')]), meta)).rejects.toMatchObject({
      code: ErrorCode.Internal,
    });
  });
});

describe('toOpenAiError', () => {
  it('keeps a domain error message, maps its status and names the field as param', () => {
    const e = DomainError.invalidInput('messages[0].role: bad', 'messages[0].role');
    expect(toOpenAiError(e)).toEqual({
      status: 400,
      headers: {},
      body: {
        error: {
          message: 'messages[0].role: bad',
          type: 'invalid_request_error',
          param: 'messages[0].role',
          code: 'INVALID_INPUT',
        },
      },
    });
  });

  it('sends 429 with retry-after in whole seconds for rate limits', () => {
    const e = new DomainError(ErrorCode.RateLimited, 'slow down', { retryAfterMs: 1500 });
    const r = toOpenAiError(e);
    expect(r.status).toBe(429);
    expect(r.headers).toEqual({ 'retry-after': '2' });
    expect(r.body.error.type).toBe('rate_limit_error');
  });

  it('hides the message of anything that is not a domain error', () => {
    const r = toOpenAiError(new Error('ECONNREFUSED 10.0.0.7:50051'), 'req-1');
    expect(r.status).toBe(500);
    expect(r.body.error.message).toBe(`${INTERNAL_MESSAGE} (request id req-1)`);
    expect(JSON.stringify(r)).not.toContain('10.0.0.7');
  });

  it('tells errors about the internal inputs[i] by the content part they came from', () => {
    const paths = ['messages[0].content[0]', 'messages[0].content[2]'];
    const media = new DomainError(
      ErrorCode.UnsupportedMedia,
      'inputs[1]: the image could not be decoded: truncated JPEG',
      { field: 'inputs[1].content' },
    );
    expect(toOpenAiError(media, undefined, paths).body.error).toEqual({
      message: 'messages[0].content[2]: the image could not be decoded: truncated JPEG',
      type: 'invalid_request_error',
      param: 'messages[0].content[2]',
      code: 'UNSUPPORTED_MEDIA',
    });
    const weight = DomainError.invalidInput('inputs[0].weight: must be positive, got 0', 'inputs[0].weight');
    expect(toOpenAiError(weight, undefined, paths).body.error).toMatchObject({
      message: 'messages[0].content[0].weight: must be positive, got 0',
      param: 'messages[0].content[0].weight',
    });
    const deep = DomainError.invalidInput(
      'inputs[1].embedding.vector.data: NaN',
      'inputs[1].embedding.vector.data',
    );
    expect(toOpenAiError(deep, undefined, paths).body.error.param).toBe('messages[0].content[2]');
    // Without the request's paths (or past them) the internal name stays: nothing is invented.
    expect(toOpenAiError(media).body.error.param).toBe('inputs[1].content');
    expect(toOpenAiError(media, undefined, ['input']).body.error.param).toBe('inputs[1].content');
  });

  it("tells the decoder's prompt fields as the messages they were made from", () => {
    const overflow = new DomainError(ErrorCode.ContextOverflow, 'prompt_token_ids: 600 tokens', {
      field: 'prompt_token_ids',
    });
    expect(toOpenAiError(overflow).body.error).toMatchObject({
      message: 'messages: 600 tokens',
      param: 'messages',
    });
    const tokenize = new DomainError(
      ErrorCode.PayloadTooLarge,
      'the instruction and input text hold 200001 characters; at most 100000 are accepted: shorten them',
      { field: 'text' },
    );
    const told = toOpenAiError(tokenize).body.error;
    expect(told.param).toBe('messages');
    expect(told.message).toBe(
      'messages: the instruction and input text hold 200001 characters; at most 100000 are accepted: shorten them',
    );
    expect(told.message).not.toContain('Tokenize');
  });

  it('formats the same body as an SSE event', () => {
    const event = sseErrorEvent(DomainError.notFound('no such model'));
    expect(payload(event)).toEqual({
      error: { message: 'no such model', type: 'invalid_request_error', param: null, code: 'NOT_FOUND' },
    });
  });
});

describe('completion ids', () => {
  it('look like OpenAI ids and differ per request', () => {
    expect(newCompletionId()).toMatch(/^chatcmpl-[0-9a-f]{24}$/);
    expect(newCompletionId()).not.toBe(newCompletionId());
    const m = completionMeta('m', 1_700_000_999_999);
    expect(m.created).toBe(1_700_000_999);
    expect(m.model).toBe('m');
  });
});
