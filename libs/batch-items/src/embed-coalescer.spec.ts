import {
  ImageBindError,
  text,
  type CallOptions,
  type EmbedManyResult,
  type EmbedRequest,
  type EmbedResult,
} from '@imagebind-llm/client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEADLINE_SLACK_MS, EmbedCoalescer, type EmbedCoalescingOptions } from './embed-coalescer';
import { describeError, isTransient } from './item-processor';
import type { ApiCall } from './item-processor';

/** A result whose fused vector says which text it embedded. */
function resultFor(request: EmbedRequest): EmbedResult {
  const source = request.inputs[0]?.source;
  const value = source?.$case === 'text' ? Number(source.value.replace(/\D/g, '')) : -1;
  return { embeddings: [], fused: new Float32Array([value]) };
}

interface ManyCall {
  readonly requests: readonly EmbedRequest[];
  readonly options: CallOptions;
  /** Answers the call: by default every request succeeds. */
  answer(results?: EmbedManyResult[]): void;
  fail(error: unknown): void;
}

/** A scripted client: embedMany calls wait until the test answers them; embed answers at once. */
function fakeClient(): {
  client: {
    embed: (request: EmbedRequest, options?: CallOptions) => Promise<EmbedResult>;
    embedMany: (requests: readonly EmbedRequest[], options?: CallOptions) => Promise<EmbedManyResult[]>;
  };
  many: ManyCall[];
  single: { request: EmbedRequest; options: CallOptions | undefined }[];
} {
  const many: ManyCall[] = [];
  const single: { request: EmbedRequest; options: CallOptions | undefined }[] = [];
  return {
    many,
    single,
    client: {
      embed: (request, options) => {
        single.push({ request, options });
        return Promise.resolve(resultFor(request));
      },
      embedMany: (requests, options = {}) =>
        new Promise((resolve, reject) => {
          many.push({
            requests,
            options,
            answer: (results) =>
              resolve(results ?? requests.map((r) => ({ ok: true, result: resultFor(r) }))),
            fail: reject,
          });
        }),
    },
  };
}

const call = (overrides: Partial<ApiCall> = {}): ApiCall => ({
  signal: new AbortController().signal,
  timeoutMs: 60_000,
  ...overrides,
});

const request = (i: number): EmbedRequest => ({ inputs: [text(`item ${i}`)], includeFused: true });

/** Lets setImmediate flushes (and the promise callbacks after them) run. */
async function turn(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
}

/** How a promise ended, without an unhandled rejection in between. */
async function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

function setup(
  options: EmbedCoalescingOptions = {},
): ReturnType<typeof fakeClient> & { coalescer: EmbedCoalescer } {
  const fake = fakeClient();
  return { ...fake, coalescer: new EmbedCoalescer(fake.client, options) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('EmbedCoalescer grouping', () => {
  it('sends the embeds started in one turn of the event loop as one EmbedMany call, in order', async () => {
    const { coalescer, many, single } = setup();
    const pending = Array.from({ length: 5 }, (_, i) => coalescer.embed(request(i), call()));
    expect(many).toHaveLength(0); // nothing is sent before the turn ends
    await turn();
    expect(many).toHaveLength(1);
    expect(many[0]!.requests).toEqual([0, 1, 2, 3, 4].map(request));
    many[0]!.answer();
    const results = await Promise.all(pending);
    expect(results.map((r) => r.fused?.[0])).toEqual([0, 1, 2, 3, 4]);
    expect(single).toHaveLength(0);
  });

  it('splits at maxRequests, sending a full call at once', async () => {
    const { coalescer, many } = setup({ maxRequests: 4 });
    const pending = Array.from({ length: 10 }, (_, i) => coalescer.embed(request(i), call()));
    expect(many.map((m) => m.requests.length)).toEqual([4, 4]); // full ones go without waiting
    await turn();
    expect(many.map((m) => m.requests.length)).toEqual([4, 4, 2]);
    for (const m of many) m.answer();
    expect((await Promise.all(pending)).map((r) => r.fused?.[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('with windowMs, gathers embeds that start within the window', async () => {
    vi.useFakeTimers();
    const { coalescer, many } = setup({ windowMs: 2 });
    const first = coalescer.embed(request(0), call());
    await vi.advanceTimersByTimeAsync(1);
    const second = coalescer.embed(request(1), call());
    expect(many).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(many).toHaveLength(1);
    expect(many[0]!.requests).toHaveLength(2);
    many[0]!.answer();
    expect((await first).fused?.[0]).toBe(0);
    expect((await second).fused?.[0]).toBe(1);
  });

  it('sends embeds one by one with Embed when maxRequests is 1, or alone when larger than maxBytes', async () => {
    const one = setup({ maxRequests: 1 });
    expect((await one.coalescer.embed(request(7), call())).fused?.[0]).toBe(7);
    expect(one.single).toHaveLength(1);
    expect(one.many).toHaveLength(0);

    const small = setup({ maxBytes: 100 });
    const big: EmbedRequest = { inputs: [text(`${'x'.repeat(200)} 3`)], includeFused: true };
    const trace = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
    const signal = new AbortController().signal;
    await small.coalescer.embed(big, call({ trace, signal, timeoutMs: 5_000 }));
    expect(small.single[0]!.options).toEqual({ signal, timeoutMs: 5_000, traceContext: trace });
    // Two that fit alone but not together go in two calls.
    const a = small.coalescer.embed({ inputs: [text(`${'a'.repeat(60)} 1`)] }, call());
    const b = small.coalescer.embed({ inputs: [text(`${'b'.repeat(60)} 2`)] }, call());
    await turn();
    expect(small.many.map((m) => m.requests.length)).toEqual([1, 1]);
    for (const m of small.many) m.answer();
    await Promise.all([a, b]);
  });

  it('carries the earliest deadline and the first trace context; deadlines far apart do not share a call', async () => {
    const { coalescer, many } = setup();
    const trace = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
    const t0 = Date.now();
    const pending = [
      coalescer.embed(request(0), call({ timeoutMs: 30_000, trace })),
      coalescer.embed(request(1), call({ timeoutMs: 29_800 })),
      // Further than DEADLINE_SLACK_MS from the others: the waiting call goes, this one starts the next.
      coalescer.embed(request(2), call({ timeoutMs: 30_000 + DEADLINE_SLACK_MS + 500 })),
    ];
    await turn();
    expect(many.map((m) => m.requests.length)).toEqual([2, 1]);
    const timeout = many[0]!.options.timeoutMs!;
    expect(timeout).toBeLessThanOrEqual(29_800);
    expect(timeout).toBeGreaterThan(29_800 - (Date.now() - t0) - 50);
    expect(many[0]!.options.traceContext).toEqual(trace);
    expect(many[0]!.options.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(many[1]!.options.traceContext).toBeUndefined();
    for (const m of many) m.answer();
    await Promise.all(pending);
  });
});

describe('EmbedCoalescer errors', () => {
  it("ends each caller as its own Embed would: a bad item's ImageBindError, the others' results", async () => {
    const { coalescer, many } = setup();
    const pending = [0, 1, 2].map((i) => outcome(coalescer.embed(request(i), call())));
    await turn();
    const invalid = new ImageBindError({
      code: 'INVALID_ARGUMENT',
      details: 'inputs[0].weight: must be a positive number (unset means 1), got 0',
      domainCode: 'INVALID_INPUT',
      field: 'inputs[0].weight',
      requestId: many[0]!.options.requestId,
    });
    const overloaded = new ImageBindError({
      code: 'RESOURCE_EXHAUSTED',
      details: 'the text encoder is at capacity',
      domainCode: 'OVERLOADED',
      retryAfterMs: 250,
    });
    many[0]!.answer([
      { ok: true, result: resultFor(request(0)) },
      { ok: false, error: invalid },
      { ok: false, error: overloaded },
    ]);
    const [zero, one, two] = await Promise.all(pending);
    expect(zero!.value?.fused?.[0]).toBe(0);
    expect(one!.error).toBe(invalid);
    expect(two!.error).toBe(overloaded);
    // What the queue makes of them is what it made of a single Embed's errors.
    expect(isTransient(one!.error)).toBe(false);
    expect(isTransient(two!.error)).toBe(true);
    expect(describeError(one!.error)).toEqual({ code: 'INVALID_ARGUMENT', message: invalid.message });
  });

  it("rejects every caller with the call's error when the call fails as a whole", async () => {
    const { coalescer, many } = setup();
    const pending = [0, 1].map((i) => outcome(coalescer.embed(request(i), call())));
    await turn();
    const limited = new ImageBindError({
      code: 'RESOURCE_EXHAUSTED',
      details: 'rate limit',
      domainCode: 'RATE_LIMITED',
    });
    many[0]!.fail(limited);
    for (const o of await Promise.all(pending)) expect(o.error).toBe(limited);
  });

  it('falls back to Embed for good when the gateway has no EmbedMany (UNIMPLEMENTED)', async () => {
    const { coalescer, many, single } = setup();
    const pending = [0, 1].map((i) => coalescer.embed(request(i), call()));
    await turn();
    many[0]!.fail(new ImageBindError({ code: 'UNIMPLEMENTED', details: 'unknown method EmbedMany' }));
    expect((await Promise.all(pending)).map((r) => r.fused?.[0])).toEqual([0, 1]);
    expect(single.map((s) => s.request)).toEqual([request(0), request(1)]);
    await coalescer.embed(request(2), call());
    expect(many).toHaveLength(1);
    expect(single).toHaveLength(3);
  });

  it('halves its calls when the gateway refuses their size (INVALID_ARGUMENT on requests)', async () => {
    const { coalescer, many } = setup({ maxRequests: 8 });
    const pending = Array.from({ length: 8 }, (_, i) => coalescer.embed(request(i), call()));
    expect(many).toHaveLength(1);
    many[0]!.fail(
      new ImageBindError({
        code: 'INVALID_ARGUMENT',
        details: "requests: 8 requests in one call exceed the 5 this API key's rate limit admits at once",
        domainCode: 'INVALID_INPUT',
        field: 'requests',
      }),
    );
    await turn();
    expect(many.slice(1).map((m) => m.requests.length)).toEqual([4, 4]);
    for (const m of many.slice(1)) m.answer();
    expect((await Promise.all(pending)).map((r) => r.fused?.[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // Later calls keep the smaller size.
    const later = Array.from({ length: 5 }, (_, i) => coalescer.embed(request(i), call()));
    await turn();
    expect(many.slice(3).map((m) => m.requests.length)).toEqual([4, 1]);
    for (const m of many.slice(3)) m.answer();
    await Promise.all(later);
  });
});

describe('EmbedCoalescer abort', () => {
  it('drops an embed aborted before its call is sent, rejecting it with CANCELLED', async () => {
    const { coalescer, many } = setup();
    const controller = new AbortController();
    const reason = new Error('job cancelled');
    const kept = coalescer.embed(request(0), call());
    const dropped = outcome(coalescer.embed(request(1), call({ signal: controller.signal })));
    controller.abort(reason);
    const error = (await dropped).error;
    expect(error).toBeInstanceOf(ImageBindError);
    expect(error).toMatchObject({ code: 'CANCELLED', domainCode: 'CANCELLED', cause: reason });
    await turn();
    expect(many[0]!.requests).toEqual([request(0)]);
    many[0]!.answer();
    expect((await kept).fused?.[0]).toBe(0);
  });

  it('rejects an already aborted signal at once, sending nothing', async () => {
    const { coalescer, many } = setup();
    const controller = new AbortController();
    controller.abort();
    expect(
      (await outcome(coalescer.embed(request(0), call({ signal: controller.signal })))).error,
    ).toMatchObject({
      code: 'CANCELLED',
    });
    await turn();
    expect(many).toHaveLength(0);
  });

  it('rejects an aborted embed at once after sending; the call is cancelled only when all its embeds are', async () => {
    const { coalescer, many } = setup();
    const a = new AbortController();
    const b = new AbortController();
    const first = outcome(coalescer.embed(request(0), call({ signal: a.signal })));
    const second = outcome(coalescer.embed(request(1), call({ signal: b.signal })));
    await turn();
    const sent = many[0]!;
    a.abort();
    expect((await first).error).toMatchObject({ code: 'CANCELLED', requestId: sent.options.requestId });
    expect(sent.options.signal!.aborted).toBe(false);
    b.abort();
    expect((await second).error).toMatchObject({ code: 'CANCELLED' });
    expect(sent.options.signal!.aborted).toBe(true);
    // The SDK then fails the call with CANCELLED; nobody is left to tell.
    sent.fail(new ImageBindError({ code: 'CANCELLED', details: 'aborted' }));
    await turn();
  });

  it('an embed aborted while others are answered does not change their results', async () => {
    const { coalescer, many } = setup();
    const controller = new AbortController();
    const aborted = outcome(coalescer.embed(request(0), call({ signal: controller.signal })));
    const kept = coalescer.embed(request(1), call());
    await turn();
    controller.abort();
    many[0]!.answer();
    expect((await aborted).error).toMatchObject({ code: 'CANCELLED' });
    expect((await kept).fused?.[0]).toBe(1);
    expect(many[0]!.options.signal!.aborted).toBe(false);
  });
});

describe('EmbedCoalescer options', () => {
  it('refuses settings that make no sense, naming them', () => {
    const { client } = fakeClient();
    expect(() => new EmbedCoalescer(client, { maxRequests: 0 })).toThrow(/maxRequests must be a number >= 1/);
    expect(() => new EmbedCoalescer(client, { windowMs: -1 })).toThrow(/windowMs must be a number >= 0/);
    expect(() => new EmbedCoalescer(client, { maxBytes: Number.NaN })).toThrow(/maxBytes/);
  });
});
