import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { createLogger, InferenceMetrics, MemoryLog, ServiceMetrics } from '@imagebind-llm/observability';
import { decoderV1 } from '@imagebind-llm/proto';
import { goldenPath } from '@imagebind-llm/testing';
import { LlamaTokenizer } from '@imagebind-llm/tokenizer';
import { describe, expect, it } from 'vitest';
import { float32Tensor } from '@imagebind-llm/grpc-kit';
import { DecoderRuntime } from './decoder-runtime';
import { DecoderServiceImpl } from './decoder.service-impl';
import { FAKE_SHAPE, fakeDecoderModel } from './testing/fake-decoder-model';
import { FakeGenerationEngine } from './testing/fake-generation-engine';

// The real LLaMA tokenizer (a local file), so text deltas are the real ones.
const tokenizer = LlamaTokenizer.fromFile(goldenPath('llama', 'tokenizer.model'));
const byteId = (b: number): number => {
  for (let id = 0; id < tokenizer.vocabSize; id++) if (tokenizer.byteValue(id) === b) return id;
  throw new Error(`no byte piece for ${b}`);
};
const logger = createLogger({ service: 'test', level: 'silent', destination: new MemoryLog() });

function setup(options: { maxBatch?: number; maxWaiting?: number } = {}) {
  const engine = new FakeGenerationEngine();
  const model = fakeDecoderModel({ tokenizer });
  const runtime = DecoderRuntime.create(
    model,
    { maxBatch: options.maxBatch ?? 4, maxWaiting: options.maxWaiting ?? 4, kvBudgetPositions: 200 },
    engine,
  );
  const serviceMetrics = new ServiceMetrics('decoder-spec');
  const metrics = new InferenceMetrics(serviceMetrics);
  const impl = new DecoderServiceImpl(runtime, { metrics, maxNewTokensLimit: 64 });
  return { engine, runtime, impl, metrics, model };
}

function request(extra: Partial<decoderV1.GenerateRequest> = {}): decoderV1.GenerateRequest {
  return {
    visualQuery: float32Tensor(Float32Array.from([1, 2, 3]), [3]),
    promptTokenIds: [1, 450, 4996],
    resumeFromTokenIds: [],
    sampling: { temperature: 0, seed: 7 },
    stopping: { maxNewTokens: 8, ignoreEos: false },
    returnPrefillLogits: false,
    returnLayerOffsets: false,
    ...extra,
  };
}

async function settle(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Starts reading a stream in the background, keeping what arrived and how it ended. */
function consume(stream: AsyncIterable<decoderV1.GenerateResponse>) {
  const out: { messages: decoderV1.GenerateResponse[]; error?: unknown; done: boolean } = {
    messages: [],
    done: false,
  };
  const run = (async () => {
    try {
      for await (const m of stream) out.messages.push(m);
    } catch (error) {
      out.error = error;
    } finally {
      out.done = true;
    }
  })();
  return Object.assign(out, { finished: run });
}

async function outcomes(metrics: InferenceMetrics): Promise<Record<string, number>> {
  const values = (await metrics.requests.get()).values;
  return Object.fromEntries(values.map((v) => [String(v.labels.outcome), v.value]));
}

describe('DecoderServiceImpl.generate', () => {
  it('streams one message per token with its text, then the finish reason and stats', async () => {
    const { engine, impl, metrics, model } = setup();
    const ids = tokenizer.encode('Hello there');
    const s = consume(
      impl.generate(request({ stopping: { maxNewTokens: ids.length, ignoreEos: false } }), {
        signal: new AbortController().signal,
        logger,
      }),
    );
    await settle();
    // the visual query went through the visual session and its offsets to the engine
    expect(model.visual.seen).toEqual([Float32Array.from([1, 2, 3])]);
    expect(Array.from(engine.rows[0]!.req.layerOffsets)).toEqual([6, 6, 6, 6, 6, 6]);
    expect(engine.rows[0]!.req.sampling).toEqual({ temperature: 0, topP: 0.75, seed: 7n });
    engine.rows[0]!.finish('length', ids);
    await s.finished;
    expect(s.error).toBeUndefined();
    const tokens = s.messages.slice(0, -1).map((m) => m.tokens[0]!);
    expect(tokens.map((t) => t.id)).toEqual(ids);
    expect(tokens.map((t) => t.index)).toEqual(ids.map((_, i) => i));
    expect(tokens.map((t) => t.text).join('')).toBe('Hello there');
    expect(tokens.every((t) => t.logprob === -0.5)).toBe(true);
    const last = s.messages.at(-1)!;
    expect(last.finishReason).toBe(decoderV1.FinishReason.FINISH_REASON_LENGTH);
    expect(last.stats).toMatchObject({ promptTokens: 3, generatedTokens: ids.length, seed: 7 });
    expect(await outcomes(metrics)).toEqual({ ok: 1 });
    expect((await metrics.generatedTokens.get()).values[0]!.value).toBe(ids.length);
  });

  it('counts a stream as ok when its reader stops right after the final message', async () => {
    const { engine, impl, metrics } = setup();
    const ids = tokenizer.encode('Hi');
    const stream = impl.generate(request({ stopping: { maxNewTokens: ids.length, ignoreEos: false } }), {
      signal: new AbortController().signal,
      logger,
    });
    const reading = (async () => {
      // The gateway's in-process path: leave the loop on the final message (returns the generator).
      for await (const m of stream) {
        if (m.finishReason !== decoderV1.FinishReason.FINISH_REASON_UNSPECIFIED) break;
      }
    })();
    await settle();
    engine.rows[0]!.finish('length', ids);
    await reading;
    expect(await outcomes(metrics)).toEqual({ ok: 1 });
  });

  it('counts a stream its reader abandons before the end as cancelled', async () => {
    const { engine, impl, metrics } = setup();
    const stream = impl.generate(request(), { signal: new AbortController().signal, logger });
    const first = stream.next();
    await settle();
    engine.rows[0]!.finish('length', 3);
    expect((await first).value?.tokens).toHaveLength(1);
    // Two tokens and the final message are still unread.
    await stream.return(undefined);
    expect(await outcomes(metrics)).toEqual({ cancelled: 1 });
  });

  it('holds an incomplete UTF-8 character back and flushes it with the last token', async () => {
    const { engine, impl } = setup();
    const s = consume(
      impl.generate(request({ stopping: { maxNewTokens: 3, ignoreEos: false } }), {
        signal: new AbortController().signal,
        logger,
      }),
    );
    await settle();
    // é is C3 A9; then a lone E2 that the sequence never completes
    engine.rows[0]!.finish('length', [byteId(0xc3), byteId(0xa9), byteId(0xe2)]);
    await s.finished;
    expect(s.messages.slice(0, -1).map((m) => m.tokens[0]!.text)).toEqual(['', 'é', '\uFFFD']);
  });

  it('gives the EOS token no text and reports EOS', async () => {
    const { engine, impl } = setup();
    const s = consume(impl.generate(request(), { signal: new AbortController().signal, logger }));
    await settle();
    engine.rows[0]!.finish('eos', [tokenizer.encode('Hi')[0]!, FAKE_SHAPE.eosId]);
    await s.finished;
    expect(s.messages.slice(0, -1).map((m) => m.tokens[0]!.text)).toEqual(['Hi', '']);
    expect(s.messages.at(-1)!.finishReason).toBe(decoderV1.FinishReason.FINISH_REASON_EOS);
  });

  it('primes the detokenizer with resumed tokens, so the first new delta completes their character', async () => {
    const { engine, impl } = setup();
    const s = consume(
      impl.generate(request({ resumeFromTokenIds: [byteId(0xc3)] }), {
        signal: new AbortController().signal,
        logger,
      }),
    );
    await settle();
    expect(engine.rows[0]!.req.resumeIds).toEqual([byteId(0xc3)]);
    engine.rows[0]!.finish('eos', [byteId(0xa9), FAKE_SHAPE.eosId]);
    await s.finished;
    const tokens = s.messages.slice(0, -1).map((m) => m.tokens[0]!);
    expect(tokens.map((t) => [t.index, t.text])).toEqual([
      [1, 'é'],
      [2, ''],
    ]);
    expect(s.messages.at(-1)!.stats).toMatchObject({ promptTokens: 4, generatedTokens: 3 });
  });

  it('when the call is cancelled: fails with CANCELLED, frees the KV room at once, and the engine drops the row', async () => {
    const { engine, impl, runtime, metrics } = setup();
    const controller = new AbortController();
    const s = consume(impl.generate(request(), { signal: controller.signal, logger }));
    await settle();
    expect(runtime.status().activeSequences).toBe(1);
    controller.abort(new DomainError(ErrorCode.Cancelled, 'the client went away'));
    await s.finished;
    expect((s.error as DomainError).code).toBe(ErrorCode.Cancelled);
    expect(runtime.status()).toMatchObject({ activeSequences: 0, freeKvPositions: 200 });
    expect(engine.rows[0]!.req.signal?.aborted).toBe(true);
    engine.step();
    await settle();
    expect(engine.running).toBe(0);
    expect(await outcomes(metrics)).toEqual({ cancelled: 1 });
  });

  it('when an in-process consumer stops reading: the engine row is aborted and its room freed', async () => {
    const { engine, impl, runtime } = setup();
    const stream = impl.generate(request(), { signal: new AbortController().signal, logger });
    const first = stream.next();
    await settle();
    engine.rows[0]!.req.onToken?.({ id: 450, index: 0, logprob: -1 });
    expect((await first).value).toMatchObject({ tokens: [{ id: 450, index: 0 }] });
    await stream.return(undefined);
    expect(engine.rows[0]!.req.signal?.aborted).toBe(true);
    expect(runtime.status()).toMatchObject({ activeSequences: 0, freeKvPositions: 200 });
  });

  it('fails with DEADLINE_EXCEEDED when the deadline passes while the request waits for room', async () => {
    const { engine, impl, runtime, metrics } = setup({ maxBatch: 1 });
    const first = consume(impl.generate(request(), { signal: new AbortController().signal, logger }));
    const controller = new AbortController();
    const second = consume(impl.generate(request(), { signal: controller.signal, logger }));
    await settle();
    expect(runtime.status()).toMatchObject({ activeSequences: 1, waiting: 1 });
    controller.abort(new DomainError(ErrorCode.DeadlineExceeded, 'the call deadline passed'));
    await second.finished;
    expect((second.error as DomainError).code).toBe(ErrorCode.DeadlineExceeded);
    expect(runtime.status().waiting).toBe(0);
    expect(engine.rows).toHaveLength(1);
    engine.rows[0]!.finish('eos', [FAKE_SHAPE.eosId]);
    await first.finished;
    expect(await outcomes(metrics)).toEqual({ ok: 1, expired: 1 });
  });

  it('answers RESOURCE_EXHAUSTED at once when the replica and its queue are full', async () => {
    const { impl, metrics } = setup({ maxBatch: 1, maxWaiting: 0 });
    consume(impl.generate(request(), { signal: new AbortController().signal, logger }));
    await settle();
    const refused = consume(impl.generate(request(), { signal: new AbortController().signal, logger }));
    await refused.finished;
    expect((refused.error as DomainError).code).toBe(ErrorCode.Overloaded);
    expect((refused.error as DomainError).details.retryAfterMs).toBeGreaterThan(0);
    expect((await outcomes(metrics))['overloaded']).toBe(1);
  });

  it('uses the official sampling defaults and max_new_tokens 256 (capped by the limit) when unset', async () => {
    const { engine, impl } = setup();
    consume(
      impl.generate(request({ sampling: undefined, stopping: undefined }), {
        signal: new AbortController().signal,
        logger,
      }),
    );
    await settle();
    const req = engine.rows[0]!.req;
    expect(req.sampling.temperature).toBeCloseTo(0.1);
    expect(req.sampling.topP).toBeCloseTo(0.75);
    expect(req.maxNewTokens).toBe(64); // min(256, maxNewTokensLimit 64)
    expect(req.sampling.seed).toBeGreaterThanOrEqual(0n);
  });

  it('takes a prompt of max_seq_len − 1 tokens and refuses max_seq_len with CONTEXT_OVERFLOW (MODEL_SPEC B16)', async () => {
    const { engine, impl } = setup();
    const ids = (n: number): number[] => [1, ...Array.from({ length: n - 1 }, () => 450)];
    const call = { signal: new AbortController().signal, logger };
    const fits = consume(impl.generate(request({ promptTokenIds: ids(FAKE_SHAPE.maxSeqLen - 1) }), call));
    await settle();
    // One token of room: the answer is cut to it, not refused.
    expect(engine.rows[0]!.req.promptIds).toHaveLength(FAKE_SHAPE.maxSeqLen - 1);
    engine.rows[0]!.finish('context', 1);
    await fits.finished;
    expect(fits.error).toBeUndefined();
    const full = consume(impl.generate(request({ promptTokenIds: ids(FAKE_SHAPE.maxSeqLen) }), call));
    await full.finished;
    expect(full.error).toBeInstanceOf(DomainError);
    expect(full.error).toMatchObject({
      code: ErrorCode.ContextOverflow,
      message: `prompt_token_ids: ${FAKE_SHAPE.maxSeqLen} tokens; the prompt must be shorter than the ${FAKE_SHAPE.maxSeqLen}-token context so an answer fits`,
    });
    expect(engine.rows).toHaveLength(1);
  });
});

describe('DecoderServiceImpl status and metrics gauges', () => {
  it('publishes active sequences, free KV positions and waiting requests as they change', async () => {
    const { engine, impl, metrics } = setup({ maxBatch: 1 });
    const gauge = async (g: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> =>
      (await g.get()).values[0]!.value;
    expect(await gauge(metrics.freeKvPositions)).toBe(200);
    consume(impl.generate(request(), { signal: new AbortController().signal, logger }));
    consume(impl.generate(request(), { signal: new AbortController().signal, logger }));
    await settle();
    expect(await gauge(metrics.activeSequences)).toBe(1);
    expect(await gauge(metrics.freeKvPositions)).toBe(200 - 11);
    expect(await gauge(metrics.queueDepth)).toBe(1);
    const status = impl.modelStatus();
    expect(status).toMatchObject({ activeSequences: 1, freeKvPositions: 189 });
    expect(status.models[0]!.message).toMatch(/1 requests waiting/);
    engine.rows[0]!.finish('eos', [FAKE_SHAPE.eosId]);
    await settle();
    expect(await gauge(metrics.queueDepth)).toBe(0);
  });
});
