import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { GenerationRequest } from '@imagebind-llm/inference';
import { describe, expect, it } from 'vitest';
import {
  DecoderRuntime,
  kvBudgetOf,
  kvBytesPerPosition,
  type DecoderRuntimeOptions,
} from './decoder-runtime';
import { KvAdmission } from './kv-admission';
import { FAKE_SHAPE, fakeDecoderModel } from './testing/fake-decoder-model';
import { FakeGenerationEngine } from './testing/fake-generation-engine';

const shape = FAKE_SHAPE;

function setup(options: Partial<DecoderRuntimeOptions> = {}) {
  const engine = new FakeGenerationEngine();
  const model = fakeDecoderModel();
  const { visual } = model;
  const fatal: unknown[] = [];
  const runtime = DecoderRuntime.create(
    model,
    {
      maxBatch: 4,
      kvBudgetPositions: 100,
      maxWaiting: 2,
      onFatal: (e) => fatal.push(e),
      ...options,
    },
    engine,
  );
  return { runtime, engine, visual, fatal };
}

/** A request of `prompt` tokens that may generate `maxNew` more: it reserves prompt + maxNew positions. */
function request(prompt: number, maxNew: number, signal?: AbortSignal): GenerationRequest {
  return {
    promptIds: Array.from({ length: prompt }, () => 5),
    layerOffsets: new Float32Array(shape.nLayers * shape.dim),
    sampling: { temperature: 0, topP: 1, seed: 0n },
    maxNewTokens: maxNew,
    ...(signal === undefined ? {} : { signal }),
  };
}

/** Lets queued promise callbacks run (the runtime and the fake engine hop through microtasks). */
async function settle(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Records how a promise ended without awaiting it. */
function track<T>(p: Promise<T>): { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } {
  const t: { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } = { state: 'pending' };
  p.then(
    (value) => Object.assign(t, { state: 'resolved', value }),
    (error: unknown) => Object.assign(t, { state: 'rejected', error }),
  );
  return t;
}

describe('DecoderRuntime admission control', () => {
  it('runs a request at once when its KV positions fit and reports them reserved', async () => {
    const { runtime, engine } = setup();
    const a = track(runtime.generate(request(10, 30)));
    await settle();
    expect(engine.rows).toHaveLength(1);
    expect(runtime.status()).toMatchObject({ activeSequences: 1, waiting: 0, freeKvPositions: 60 });
    engine.rows[0]!.finish('length', 3);
    await settle();
    expect(a.state).toBe('resolved');
    expect(a.value?.tokenIds).toEqual([100, 101, 102]);
  });

  it('makes a request wait while the budget is full and runs it when a sequence finishes', async () => {
    const { runtime, engine } = setup();
    const a = track(runtime.generate(request(10, 50)));
    const b = track(runtime.generate(request(10, 50)));
    await settle();
    expect(engine.rows).toHaveLength(1);
    expect(runtime.status()).toMatchObject({ activeSequences: 1, waiting: 1, freeKvPositions: 40 });
    engine.rows[0]!.finish('eos');
    await settle();
    expect(a.state).toBe('resolved');
    expect(engine.rows).toHaveLength(2);
    expect(runtime.status()).toMatchObject({ activeSequences: 1, waiting: 0, freeKvPositions: 40 });
    engine.rows[1]!.finish('length');
    await settle();
    expect(b.state).toBe('resolved');
    expect(runtime.status()).toMatchObject({ activeSequences: 0, waiting: 0, freeKvPositions: 100 });
  });

  it('caps running sequences at maxBatch even when KV room is left', async () => {
    const { runtime, engine } = setup({ maxBatch: 2 });
    for (let i = 0; i < 3; i++) void runtime.generate(request(2, 3)).catch(() => undefined);
    await settle();
    expect(engine.rows).toHaveLength(2);
    expect(runtime.status()).toMatchObject({ activeSequences: 2, waiting: 1, freeKvPositions: 90 });
  });

  it('reserves no more than the context: prompt + max_new_tokens is capped at maxSeqLen', async () => {
    const { runtime, engine } = setup({ kvBudgetPositions: 0, maxBatch: 2 });
    // kvBudgetPositions 0 means maxBatch × maxSeqLen = 200
    expect(runtime.status().kvBudgetPositions).toBe(200);
    void runtime.generate(request(40, 1000));
    await settle();
    expect(engine.rows).toHaveLength(1);
    expect(runtime.status().freeKvPositions).toBe(100);
  });

  it('refuses with RESOURCE_EXHAUSTED at once, with a retry hint, when the waiting queue is full', async () => {
    const { runtime, engine } = setup({ maxWaiting: 1 });
    void runtime.generate(request(10, 80));
    void runtime.generate(request(10, 80)).catch(() => undefined);
    await settle();
    expect(runtime.status()).toMatchObject({ activeSequences: 1, waiting: 1 });
    const error = await runtime.generate(request(10, 80)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe(ErrorCode.Overloaded); // RESOURCE_EXHAUSTED on the wire
    expect((error as DomainError).details.retryAfterMs).toBeGreaterThan(0);
    expect(engine.rows).toHaveLength(1);
    expect(runtime.status().waiting).toBe(1);
  });

  it('refuses a request larger than the whole budget with INVALID_INPUT instead of queueing it', async () => {
    const { runtime, engine } = setup({ kvBudgetPositions: 50 });
    const error = await runtime.generate(request(10, 60)).catch((e: unknown) => e);
    expect((error as DomainError).code).toBe(ErrorCode.InvalidInput);
    expect((error as DomainError).details.field).toBe('stopping.max_new_tokens');
    expect((error as DomainError).message).toMatch(/70 KV-cache positions.*budget is 50/);
    await settle();
    expect(engine.rows).toHaveLength(0);
    expect(runtime.status()).toMatchObject({ activeSequences: 0, waiting: 0, freeKvPositions: 50 });
  });

  it('removes a waiting request when its signal aborts, rejecting it with the signal reason', async () => {
    const { runtime, engine } = setup();
    void runtime.generate(request(10, 80));
    const controller = new AbortController();
    const b = track(runtime.generate(request(10, 80, controller.signal)));
    await settle();
    expect(runtime.status().waiting).toBe(1);
    const reason = new DomainError(ErrorCode.DeadlineExceeded, 'deadline passed');
    controller.abort(reason);
    await settle();
    expect(b.state).toBe('rejected');
    expect(b.error).toBe(reason);
    expect(runtime.status().waiting).toBe(0);
    engine.rows[0]!.finish('eos');
    await settle();
    // the aborted request never reached the engine
    expect(engine.rows).toHaveLength(1);
  });

  it('admits the requests behind an aborted head of the queue', async () => {
    const { runtime, engine } = setup({ maxWaiting: 4 });
    void runtime.generate(request(10, 50)); // 60 held, 40 free
    const big = new AbortController();
    void runtime.generate(request(10, 80, big.signal)).catch(() => undefined);
    void runtime.generate(request(10, 20)); // fits, but waits behind the head (FIFO)
    await settle();
    expect(engine.rows).toHaveLength(1);
    expect(runtime.status().waiting).toBe(2);
    big.abort();
    await settle();
    expect(engine.rows).toHaveLength(2);
    expect(engine.rows[1]!.req.maxNewTokens).toBe(20);
  });

  it('frees a running sequence’s reservation the moment its signal aborts, before the engine drops the row', async () => {
    const { runtime, engine } = setup();
    const controller = new AbortController();
    const a = track(runtime.generate(request(10, 80, controller.signal)));
    const b = track(runtime.generate(request(10, 80)));
    await settle();
    expect(runtime.status()).toMatchObject({ activeSequences: 1, waiting: 1, freeKvPositions: 10 });
    controller.abort();
    // The engine has not stepped yet, but the room is already given to the waiting request.
    expect(engine.running).toBe(1);
    expect(runtime.status()).toMatchObject({ activeSequences: 1, waiting: 0, freeKvPositions: 10 });
    await settle();
    expect(engine.rows).toHaveLength(2);
    engine.step();
    await settle();
    expect(a.state).toBe('resolved');
    expect(a.value?.finishReason).toBe('cancelled');
    engine.rows[1]!.finish('eos');
    await settle();
    expect(b.state).toBe('resolved');
    expect(runtime.status()).toMatchObject({ activeSequences: 0, freeKvPositions: 100 });
  });

  it('rejects a request whose signal has already aborted without reserving anything', async () => {
    const { runtime, engine } = setup();
    const controller = new AbortController();
    controller.abort(new DomainError(ErrorCode.Cancelled, 'gone'));
    const error = await runtime.generate(request(10, 10, controller.signal)).catch((e: unknown) => e);
    expect((error as DomainError).code).toBe(ErrorCode.Cancelled);
    expect(engine.rows).toHaveLength(0);
    expect(runtime.status().freeKvPositions).toBe(100);
  });

  it('notifies watchers of every change', async () => {
    const { runtime, engine } = setup();
    const seen: number[] = [];
    const stop = runtime.watch((s) => seen.push(s.activeSequences));
    void runtime.generate(request(10, 10));
    await settle();
    engine.rows[0]!.finish('eos');
    await settle();
    stop();
    void runtime.generate(request(10, 10));
    await settle();
    expect(seen).toEqual([1, 0]);
  });
});

describe('DecoderRuntime lifecycle', () => {
  it('warms up with a zero visual vector and one short generation, then reports ready', async () => {
    const { runtime, engine, visual } = setup();
    expect(runtime.status().state).toBe('loading');
    const warm = runtime.warmup();
    await settle();
    expect(visual.seen).toEqual([new Float32Array(3)]);
    expect(engine.rows[0]!.req.promptIds).toEqual([1]);
    engine.rows[0]!.finish('length', 2);
    await warm;
    expect(runtime.status().state).toBe('ready');
  });

  it('computes layer offsets from the visual query and checks its length', async () => {
    const { runtime } = setup();
    const offsets = await runtime.layerOffsets(Float32Array.from([1, 2, 3]));
    expect(Array.from(offsets)).toEqual([6, 6, 6, 6, 6, 6]);
    const error = await runtime.layerOffsets(new Float32Array(4)).catch((e: unknown) => e);
    expect((error as DomainError).details.field).toBe('visual_query');
  });

  it('treats a failing session as fatal: reports failed, calls onFatal once, refuses new work', async () => {
    const { runtime, engine, fatal } = setup();
    const a = track(runtime.generate(request(10, 10)));
    await settle();
    const boom = new Error('CUDA error: device lost');
    engine.rows[0]!.explode(boom);
    await settle();
    expect(a.error).toBe(boom);
    expect(fatal).toEqual([boom]);
    expect(runtime.status()).toMatchObject({ state: 'failed', activeSequences: 0 });
    const next = await runtime.generate(request(1, 1)).catch((e: unknown) => e);
    expect((next as DomainError).code).toBe(ErrorCode.ModelNotReady);
    expect(fatal).toHaveLength(1);
  });

  it('passes request errors through without breaking the runtime', async () => {
    const { runtime, fatal } = setup();
    const error = await runtime.generate(request(0, 10)).catch((e: unknown) => e);
    expect((error as DomainError).details.field).toBe('prompt_token_ids');
    expect(fatal).toHaveLength(0);
    expect(runtime.status().state).toBe('loading');
  });

  it('close refuses waiting requests with UNAVAILABLE and releases the sessions', async () => {
    const { runtime, engine, visual, fatal } = setup();
    const a = track(runtime.generate(request(10, 80)));
    const b = track(runtime.generate(request(10, 80)));
    await settle();
    const closing = runtime.close();
    await settle();
    expect((b.error as DomainError).code).toBe(ErrorCode.DependencyUnavailable);
    // the running sequence keeps its sessions until it ends
    expect(visual.released).toBe(false);
    engine.rows[0]!.finish('eos');
    await closing;
    expect(a.state).toBe('resolved');
    expect(visual.released).toBe(true);
    expect(fatal).toHaveLength(0);
    const later = await runtime.generate(request(1, 1)).catch((e: unknown) => e);
    expect((later as DomainError).code).toBe(ErrorCode.DependencyUnavailable);
  });
});

describe('KvAdmission', () => {
  it('refuses nonsense configuration', () => {
    expect(() => new KvAdmission({ budgetPositions: 0, maxSequences: 1, maxWaiting: 0 })).toThrow(RangeError);
    expect(() => new KvAdmission({ budgetPositions: 1, maxSequences: 0, maxWaiting: 0 })).toThrow(RangeError);
    expect(() => new KvAdmission({ budgetPositions: 1, maxSequences: 1, maxWaiting: -1 })).toThrow(
      RangeError,
    );
  });

  it('with maxWaiting 0 refuses whatever does not fit at once', async () => {
    const admission = new KvAdmission({ budgetPositions: 10, maxSequences: 4, maxWaiting: 0 });
    const held = await admission.acquire(8);
    await expect(admission.acquire(3)).rejects.toMatchObject({ code: ErrorCode.Overloaded });
    held.release();
    held.release(); // idempotent: the budget does not grow past itself
    expect(admission.status()).toMatchObject({ active: 0, freePositions: 10 });
    const again = await admission.acquire(10);
    expect(again.positions).toBe(10);
  });
});

describe('kvBudgetOf (the KV budget sized from available memory)', () => {
  // LLaMA-7B: 32 layers × K,V × 32 heads × 128 × float32 = 1 MiB per position.
  const seven = {
    nLayers: 32,
    nHeads: 32,
    headDim: 128,
    dim: 4096,
    vocabSize: 32000,
    maxSeqLen: 512,
    eosId: 2,
  };
  const MiB = 2 ** 20;
  const GiB = 2 ** 30;

  it('prices a position as keys + values of every layer and head in the cache dtype', () => {
    expect(kvBytesPerPosition(seven)).toBe(MiB);
    expect(kvBytesPerPosition({ ...seven, kvDtype: 'float16' })).toBe(MiB / 2);
  });

  it('keeps maxBatch full contexts when they fit, and an explicit budget as given', () => {
    expect(kvBudgetOf(seven, { maxBatch: 16, availableMemoryBytes: 64 * GiB })).toBe(16 * 512);
    expect(kvBudgetOf(seven, { maxBatch: 16, kvBudgetPositions: 100, availableMemoryBytes: 1 })).toBe(100);
    expect(kvBudgetOf(seven, { maxBatch: 16, kvMemoryFraction: 0, availableMemoryBytes: 1 })).toBe(16 * 512);
  });

  it('cuts the budget to the share of available memory (0.6 by default)', () => {
    // 10 GiB × 0.6 = 6 GiB = 6144 positions of 1 MiB, below 16 × 512 = 8192.
    expect(kvBudgetOf(seven, { maxBatch: 16, availableMemoryBytes: 10 * GiB })).toBe(6144);
    expect(kvBudgetOf(seven, { maxBatch: 16, kvMemoryFraction: 0.5, availableMemoryBytes: 10 * GiB })).toBe(
      5120,
    );
    expect(
      kvBudgetOf({ ...seven, kvDtype: 'float16' }, { maxBatch: 16, availableMemoryBytes: 10 * GiB }),
    ).toBe(8192);
  });

  it('refuses to start when not even one full context fits, naming the fixes', () => {
    expect(() => kvBudgetOf(seven, { maxBatch: 16, availableMemoryBytes: 512 * MiB })).toThrow(
      /one 512-position context needs 0\.50 GiB.*--kv-dtype float16/,
    );
    expect(() =>
      kvBudgetOf(seven, { maxBatch: 1, kvMemoryFraction: 1.5, availableMemoryBytes: GiB }),
    ).toThrow(RangeError);
  });
});
