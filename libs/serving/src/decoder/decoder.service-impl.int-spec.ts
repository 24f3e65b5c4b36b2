// Medium test: DecoderServiceImpl over the real tiny-a golden models (built from the official-format
// checkpoints), hosted in a real grpc-js server on loopback and called with the generated client.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { DomainError, ErrorCode, ERROR_FIELD_TRAILER, RETRY_AFTER_TRAILER } from '@imagebind-llm/errors';
import { callServerStream, callUnary, createClient, float32Tensor } from '@imagebind-llm/grpc-kit';
import { createLogger, InferenceMetrics, MemoryLog, ServiceMetrics } from '@imagebind-llm/observability';
import { commonV1, decoderV1, SERVICE_NAMES } from '@imagebind-llm/proto';
import {
  goldenDir,
  goldenModelRepository,
  maxAbsDifference,
  startGrpcTestServer,
  type GrpcTestServer,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecoderRuntime, loadDecoderModel } from './decoder-runtime';
import { DecoderServiceImpl } from './decoder.service-impl';
import { delayedSession } from './testing/delayed-session';

interface DecodeCase {
  id: string;
  fusion_case: string;
  instruction: string;
  input: string | null;
  prompt: string;
  prompt_ids: number[];
  max_gen_len: number;
  gates_zero: boolean;
  generated_ids: number[];
  text: string;
  outputs: Record<string, { file: string }>;
}
interface FusionCase {
  id: string;
  outputs: Record<string, { file: string }>;
}

const dir = goldenDir();
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
  cases: (DecodeCase | FusionCase)[];
};
const fusionCases = manifest.cases.filter((c) => c.id.startsWith('fusion/')) as FusionCase[];
const allDecodeCases = manifest.cases.filter((c) => c.id.startsWith('decode/')) as DecodeCase[];
// Gates forced to zero cannot be asked of a service (its graphs have the real gates), so those
// cases stay with the engine-level parity test.
const decodeCases = allDecodeCases.filter((c) => !c.gates_zero);
const loadFloats = (file: string): Float32Array => toFloat32(readNpy(join(dir, file)));

/** The golden visual query v of a decode case (the bind output of its fusion case). */
function visualQueryOf(c: DecodeCase): Float32Array {
  const fusion = fusionCases.find((f) => f.id === c.fusion_case);
  if (fusion === undefined) throw new Error(`no fusion case ${c.fusion_case}`);
  return loadFloats(fusion.outputs['v']!.file);
}

// The official logits were computed in float32 on CPU like ours; the differences are summation
// order, measured at ~1e-6 (same tolerance as tools/cli/test/golden-parity.int-spec.ts).
const LOGIT_ABS_TOL = 1e-4;

function greedyRequest(
  c: DecodeCase,
  extra: Partial<decoderV1.GenerateRequest> = {},
): decoderV1.GenerateRequest {
  const v = visualQueryOf(c);
  return {
    visualQuery: float32Tensor(v, [v.length]),
    promptTokenIds: c.prompt_ids,
    resumeFromTokenIds: [],
    sampling: { temperature: 0, topP: 0.75, seed: 0 },
    stopping: { maxNewTokens: c.max_gen_len, ignoreEos: false },
    returnPrefillLogits: false,
    returnLayerOffsets: false,
    ...extra,
  };
}

type DecoderClient = decoderV1.DecoderServiceClient;

/** Reads a whole stream with the raw client, keeping the status error (with its trailers) if any. */
async function collect(
  client: DecoderClient,
  req: decoderV1.GenerateRequest,
): Promise<{ messages: decoderV1.GenerateResponse[]; error: ServiceError | undefined }> {
  const messages: decoderV1.GenerateResponse[] = [];
  return new Promise((resolve) => {
    const call = client.generate(req, new Metadata());
    call.on('data', (m: decoderV1.GenerateResponse) => messages.push(m));
    call.on('error', (error: ServiceError) => resolve({ messages, error }));
    call.on('end', () => resolve({ messages, error: undefined }));
  });
}

function tokensOf(messages: readonly decoderV1.GenerateResponse[]): decoderV1.Token[] {
  return messages.flatMap((m) => m.tokens);
}

async function waitFor(check: () => Promise<boolean>, what: string, limitMs = 5_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('DecoderService on the golden tiny-a models', () => {
  let runtime: DecoderRuntime;
  let server: GrpcTestServer;
  let client: DecoderClient;
  let inference: InferenceMetrics;
  let serviceMetrics: ServiceMetrics;

  beforeAll(async () => {
    const repo = goldenModelRepository();
    runtime = await DecoderRuntime.load(repo, { maxBatch: 8, maxWaiting: 16 });
    await runtime.warmup();
    serviceMetrics = new ServiceMetrics('decoder-test');
    inference = new InferenceMetrics(serviceMetrics);
    const impl = new DecoderServiceImpl(runtime, { metrics: inference, maxNewTokensLimit: 512 });
    server = await startGrpcTestServer((s) =>
      s.addService(SERVICE_NAMES.decoder, decoderV1.DecoderServiceService, impl.handlers()),
    );
    client = createClient(decoderV1.DecoderServiceClient, server.address);
  }, 180_000);

  afterAll(async () => {
    client?.close();
    await server?.close();
    await runtime?.close();
  });

  it.each(decodeCases.map((c) => [c.id, c] as const))(
    '%s: streams the 24 golden greedy tokens one per message, then LENGTH and stats',
    async (_id, c) => {
      const { messages, error } = await collect(client, greedyRequest(c));
      expect(error).toBeUndefined();
      const body = messages.slice(0, -1);
      const last = messages.at(-1)!;
      expect(body).toHaveLength(c.generated_ids.length);
      for (const [i, m] of body.entries()) {
        expect(m.tokens).toHaveLength(1);
        expect(m.tokens[0]!.index).toBe(i);
        expect(m.tokens[0]!.logprob).toBeLessThanOrEqual(0);
        expect(m.finishReason).toBe(decoderV1.FinishReason.FINISH_REASON_UNSPECIFIED);
        expect(m.stats).toBeUndefined();
      }
      expect(body.map((m) => m.tokens[0]!.id)).toEqual(c.generated_ids);
      expect(body.map((m) => m.tokens[0]!.text).join('')).toBe(c.text);
      expect(last.tokens).toHaveLength(0);
      expect(last.finishReason).toBe(decoderV1.FinishReason.FINISH_REASON_LENGTH);
      expect(last.stats).toMatchObject({
        promptTokens: c.prompt_ids.length,
        generatedTokens: c.generated_ids.length,
        seed: 0,
      });
      expect(last.stats!.timeToFirstTokenMs).toBeGreaterThan(0);
      expect(last.stats!.tokensPerSecond).toBeGreaterThan(0);
    },
  );

  it('puts the prefill logits of the last prompt position in the first message when asked', async () => {
    const c = decodeCases[0]!;
    const { messages, error } = await collect(client, greedyRequest(c, { returnPrefillLogits: true }));
    expect(error).toBeUndefined();
    const logits = messages[0]!.prefillLogits!;
    expect(logits.shape).toEqual([32_000]);
    const values = new Float32Array(new Uint8Array(logits.data).buffer);
    expect(maxAbsDifference(values, loadFloats(c.outputs['prefill_logits']!.file))).toBeLessThanOrEqual(
      LOGIT_ABS_TOL,
    );
    expect(messages.slice(1).every((m) => m.prefillLogits === undefined)).toBe(true);
    expect(tokensOf(messages).map((t) => t.id)).toEqual(c.generated_ids);
  });

  it('resumes from the first 9 tokens: tokens 10..24 are identical, indices continue, text joins up', async () => {
    const c = decodeCases[0]!;
    const first = await collect(client, greedyRequest(c));
    const sent = tokensOf(first.messages).slice(0, 9);
    const { messages, error } = await collect(
      client,
      greedyRequest(c, { resumeFromTokenIds: sent.map((t) => t.id) }),
    );
    expect(error).toBeUndefined();
    const resumed = tokensOf(messages);
    expect(resumed.map((t) => t.index)).toEqual(Array.from({ length: 15 }, (_, i) => i + 9));
    expect(resumed.map((t) => t.id)).toEqual(c.generated_ids.slice(9));
    expect([...sent, ...resumed].map((t) => t.text).join('')).toBe(c.text);
    expect(messages.at(-1)!.stats).toMatchObject({
      promptTokens: c.prompt_ids.length + 9,
      generatedTokens: 24,
    });
  });

  it('with a seed, a resumed sampled stream continues exactly as the unbroken one', async () => {
    const c = decodeCases[1]!;
    const sampling = { temperature: 0.9, topP: 0.95, seed: 20_240_611 };
    const whole = tokensOf((await collect(client, greedyRequest(c, { sampling }))).messages);
    expect(whole).toHaveLength(24);
    const resumed = tokensOf(
      (
        await collect(
          client,
          greedyRequest(c, { sampling, resumeFromTokenIds: whole.slice(0, 9).map((t) => t.id) }),
        )
      ).messages,
    );
    // Ids and text must match exactly. Log-probs may differ in the last float32 bits: the resumed
    // stream computes the KV of the 9 sent tokens in one prefill matmul, the unbroken one step by
    // step, so the sums run in another order (seen: 1e-6 on -8.72). 1e-4 is far below any
    // difference that could change a sampled token.
    expect(resumed.map(({ id, index, text }) => ({ id, index, text }))).toEqual(
      whole.slice(9).map(({ id, index, text }) => ({ id, index, text })),
    );
    resumed.forEach((t, i) => expect(t.logprob).toBeCloseTo(whole[9 + i]!.logprob, 4));
    // and the sampler really sampled: greedy decoding gives another answer
    expect(whole.map((t) => t.id)).not.toEqual(c.generated_ids);
  });

  it('reports a random seed when none is given, and that seed reproduces the stream', async () => {
    const c = decodeCases[2]!;
    const sampling = { temperature: 1, topP: 1 };
    const a = await collect(client, greedyRequest(c, { sampling }));
    const seed = a.messages.at(-1)!.stats!.seed;
    const b = await collect(client, greedyRequest(c, { sampling: { ...sampling, seed } }));
    expect(tokensOf(b.messages)).toEqual(tokensOf(a.messages));
  });

  it('decodes 4 concurrent streams with different visual queries in one batch, each giving its own golden tokens', async () => {
    const cases = [...decodeCases, decodeCases[0]!];
    expect(new Set(cases.map((c) => c.fusion_case)).size).toBeGreaterThanOrEqual(3);
    const results = await Promise.all(cases.map(async (c) => collect(client, greedyRequest(c))));
    results.forEach((r, i) => {
      expect(r.error).toBeUndefined();
      expect(
        tokensOf(r.messages).map((t) => t.id),
        cases[i]!.id,
      ).toEqual(cases[i]!.generated_ids);
    });
  });

  it('accepts the visual query as [1, dim] too', async () => {
    const c = decodeCases[0]!;
    const v = visualQueryOf(c);
    const { messages } = await collect(
      client,
      greedyRequest(c, { visualQuery: float32Tensor(v, [1, v.length]) }),
    );
    expect(tokensOf(messages).map((t) => t.id)).toEqual(c.generated_ids);
  });

  it('stops at max_new_tokens and says LENGTH', async () => {
    const c = decodeCases[0]!;
    const { messages } = await collect(
      client,
      greedyRequest(c, { stopping: { maxNewTokens: 5, ignoreEos: false } }),
    );
    expect(tokensOf(messages).map((t) => t.id)).toEqual(c.generated_ids.slice(0, 5));
    expect(messages.at(-1)!.finishReason).toBe(decoderV1.FinishReason.FINISH_REASON_LENGTH);
  });

  it('stops at the 512-position context and says CONTEXT', async () => {
    const c = decodeCases[0]!;
    const prompt = [...c.prompt_ids, ...Array.from({ length: 505 - c.prompt_ids.length }, () => 450)];
    const { messages, error } = await collect(
      client,
      greedyRequest(c, { promptTokenIds: prompt, stopping: { maxNewTokens: 20, ignoreEos: true } }),
    );
    expect(error).toBeUndefined();
    expect(tokensOf(messages)).toHaveLength(512 - 505);
    expect(messages.at(-1)!.finishReason).toBe(decoderV1.FinishReason.FINISH_REASON_CONTEXT);
  });

  const invalid: [string, string, (c: DecodeCase) => Partial<decoderV1.GenerateRequest>][] = [
    ['no visual query', 'visual_query', () => ({ visualQuery: undefined })],
    [
      'a visual query of the wrong width',
      'visual_query',
      () => ({ visualQuery: float32Tensor(new Float32Array(65), [65]) }),
    ],
    [
      'a visual query of two rows',
      'visual_query',
      () => ({ visualQuery: float32Tensor(new Float32Array(128), [2, 64]) }),
    ],
    [
      'a visual query that is not float32',
      'visual_query',
      () => ({
        visualQuery: { dtype: commonV1.DataType.DATA_TYPE_FLOAT16, shape: [64], data: Buffer.alloc(128) },
      }),
    ],
    ['an empty prompt', 'prompt_token_ids', () => ({ promptTokenIds: [] })],
    [
      'a prompt id past the vocabulary',
      'prompt_token_ids',
      (c) => ({ promptTokenIds: [...c.prompt_ids, 32_000] }),
    ],
    [
      'a resumed id past the vocabulary',
      'resume_from_token_ids',
      () => ({ resumeFromTokenIds: [5, 99_999] }),
    ],
    [
      'resumed tokens that already fill the budget',
      'resume_from_token_ids',
      () => ({ resumeFromTokenIds: [5, 6, 7], stopping: { maxNewTokens: 3, ignoreEos: false } }),
    ],
    [
      'max_new_tokens 0',
      'stopping.max_new_tokens',
      () => ({ stopping: { maxNewTokens: 0, ignoreEos: false } }),
    ],
    [
      'max_new_tokens above the limit',
      'stopping.max_new_tokens',
      () => ({ stopping: { maxNewTokens: 513, ignoreEos: false } }),
    ],
    ['a negative temperature', 'sampling.temperature', () => ({ sampling: { temperature: -0.5 } })],
    ['a NaN temperature', 'sampling.temperature', () => ({ sampling: { temperature: Number.NaN } })],
    ['top_p above 1', 'sampling.top_p', () => ({ sampling: { topP: 1.5 } })],
    [
      'a prompt that fills the context',
      'prompt_token_ids',
      () => ({ promptTokenIds: new Array<number>(512).fill(1) }),
    ],
  ];

  it.each(invalid)('refuses %s with INVALID_ARGUMENT naming %s', async (_what, field, change) => {
    const c = decodeCases[0]!;
    const { messages, error } = await collect(client, greedyRequest(c, change(c)));
    expect(messages).toHaveLength(0);
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.metadata.get(ERROR_FIELD_TRAILER)).toEqual([field]);
    expect(error?.details).toContain(field);
  });

  it('answers NOT_FOUND for a model this replica does not serve', async () => {
    const c = decodeCases[0]!;
    const { error } = await collect(
      client,
      greedyRequest(c, { model: { name: 'llama-decoder', version: '7' } }),
    );
    expect(error?.code).toBe(status.NOT_FOUND);
    expect(error?.details).toMatch(/llama-decoder@1/);
  });

  it.each(allDecodeCases.map((c) => [c.id, c] as const))(
    'Tokenize with the Alpaca template gives the official prompt ids for %s',
    async (_id, c) => {
      const res = await callUnary(client.tokenize.bind(client), {
        text: c.instruction,
        input: c.input ?? '',
        template: decoderV1.PromptTemplate.PROMPT_TEMPLATE_ALPACA,
        addBos: true,
      });
      expect(res.tokenIds).toEqual(c.prompt_ids);
      expect(res.prompt).toBe(c.prompt);
    },
  );

  it('Tokenize treats an unset template as Alpaca and encodes raw text as is', async () => {
    const c = decodeCases[0]!;
    const unset = await callUnary(client.tokenize.bind(client), {
      text: c.instruction,
      input: '',
      template: decoderV1.PromptTemplate.PROMPT_TEMPLATE_UNSPECIFIED,
      addBos: false,
    });
    expect(unset.tokenIds).toEqual(c.prompt_ids.slice(1));
    const raw = await callUnary(client.tokenize.bind(client), {
      text: 'Hello world',
      input: '',
      template: decoderV1.PromptTemplate.PROMPT_TEMPLATE_RAW,
      addBos: true,
    });
    expect(raw.tokenIds).toEqual(runtime.tokenizer.encode('Hello world', { bos: true }));
    expect(raw.prompt).toBe('Hello world');
    const error = await callUnary(client.tokenize.bind(client), {
      text: 'Hello',
      input: 'world',
      template: decoderV1.PromptTemplate.PROMPT_TEMPLATE_RAW,
      addBos: true,
    }).catch((e: unknown) => e);
    expect((error as DomainError).code).toBe(ErrorCode.InvalidInput);
    expect((error as DomainError).details.field).toBe('input');
  });

  it('GetModelStatus reports the ready decoder, its provider, and an idle KV budget', async () => {
    const res = await callUnary(client.getModelStatus.bind(client), {});
    expect(res.models).toHaveLength(1);
    expect(res.models[0]).toMatchObject({
      model: { name: 'llama-decoder', version: '1' },
      state: commonV1.ModelState.MODEL_STATE_READY,
      executionProvider: 'cpu',
    });
    expect(res.models[0]!.sourceSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(res.activeSequences).toBe(0);
    expect(res.freeKvPositions).toBe(8 * 512);
  });

  it('records TTFT, generated tokens and outcomes in the metrics', async () => {
    const text = (await serviceMetrics.scrape()).body;
    const count = (name: string): number =>
      Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    expect(count('ibllm_time_to_first_token_seconds_count')).toBeGreaterThan(0);
    expect(count('ibllm_generated_tokens_total')).toBeGreaterThanOrEqual(24);
    expect(text).toMatch(/ibllm_inference_requests_total\{[^}]*outcome="ok"[^}]*\} [1-9]/);
    expect(text).toMatch(/ibllm_inference_requests_total\{[^}]*outcome="invalid"[^}]*\} [1-9]/);
    expect(text).toMatch(/ibllm_decoder_free_kv_positions\{[^}]*\} 4096/);
  });
});

describe('DecoderService admission and cancellation over gRPC', () => {
  // Each decode step waits 20 ms, so a 400-token stream runs for seconds: it is surely still
  // running when the test fills the replica or cancels it.
  const STEP_DELAY_MS = 20;
  let runtime: DecoderRuntime;
  let server: GrpcTestServer;
  let client: DecoderClient;
  let inference: InferenceMetrics;

  beforeAll(async () => {
    const model = await loadDecoderModel(goldenModelRepository());
    runtime = DecoderRuntime.create(
      { ...model, decoder: delayedSession(model.decoder, STEP_DELAY_MS) },
      { maxBatch: 1, maxWaiting: 0 },
    );
    inference = new InferenceMetrics(new ServiceMetrics('decoder-slow-test'));
    const impl = new DecoderServiceImpl(runtime, { metrics: inference, maxNewTokensLimit: 512 });
    server = await startGrpcTestServer((s) =>
      s.addService(SERVICE_NAMES.decoder, decoderV1.DecoderServiceService, impl.handlers()),
    );
    client = createClient(decoderV1.DecoderServiceClient, server.address);
  }, 180_000);

  afterAll(async () => {
    client?.close();
    await server?.close();
    await runtime?.close();
  });

  const status_ = async (): Promise<decoderV1.GetModelStatusResponse> =>
    callUnary(client.getModelStatus.bind(client), {});

  it('refuses a second sequence with RESOURCE_EXHAUSTED and a retry hint, and a client cancel frees the slot at once', async () => {
    const c = decodeCases[0]!;
    const long = greedyRequest(c, { stopping: { maxNewTokens: 400, ignoreEos: true } });
    const controller = new AbortController();
    const received: decoderV1.Token[] = [];
    const consume = (async () => {
      for await (const m of callServerStream(client.generate.bind(client), long, {
        signal: controller.signal,
      })) {
        received.push(...m.tokens);
        if (received.length === 3) return;
      }
    })();
    await waitFor(async () => Promise.resolve(received.length >= 1), 'the first token');
    const busy = await status_();
    expect(busy.activeSequences).toBe(1);
    expect(busy.freeKvPositions).toBe(512 - (c.prompt_ids.length + 400));

    const refused = await collect(client, greedyRequest(c));
    expect(refused.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(Number(refused.error?.metadata.get(RETRY_AFTER_TRAILER)[0])).toBeGreaterThan(0);

    // Leaving the loop cancels the call (client-side cancel).
    await consume;
    expect(received.map((t) => t.id)).toEqual(c.generated_ids.slice(0, 3));
    await waitFor(async () => {
      const s = await status_();
      return s.activeSequences === 0 && s.freeKvPositions === 512;
    }, 'the slot to be freed');
    // The engine really stopped: the cancelled request was counted and far fewer than 400 tokens made.
    // Bounds: a finished stream would be counted 'length' after 400 tokens (8 s of 20 ms steps),
    // so the 'cancelled' outcome alone proves the stop; the token bound (< 300, i.e. the cancel
    // travelled within ~6 s of steps) only rules out a stop that came near the end. Neither
    // assumes a fast machine (the old bound of 100 tokens gave the cancel only 2 s).
    await waitFor(
      async () =>
        ((await inference.requests.get()).values.find((v) => v.labels.outcome === 'cancelled')?.value ??
          0) === 1,
      'the cancelled outcome',
      10_000,
    );
    const generated = (await inference.generatedTokens.get()).values[0]?.value ?? 0;
    expect(generated).toBeLessThan(300);

    // and the freed slot serves the next request
    const next = await collect(client, greedyRequest(c, { stopping: { maxNewTokens: 4, ignoreEos: false } }));
    expect(tokensOf(next.messages).map((t) => t.id)).toEqual(c.generated_ids.slice(0, 4));
  });
});

describe('DecoderServiceImpl before its model is attached', () => {
  const log = new MemoryLog();
  const logger = createLogger({ service: 'test', level: 'silent', destination: log });

  it('answers UNAVAILABLE (MODEL_NOT_READY) to Generate and Tokenize and reports LOADING', async () => {
    const impl = new DecoderServiceImpl();
    const handlers = impl.handlers();
    const controller = new AbortController();
    const iterate = async (): Promise<void> => {
      for await (const _ of handlers.generate(decoderV1.GenerateRequest.fromPartial({}), {
        signal: controller.signal,
        logger,
      } as never)) {
        // nothing is streamed
      }
    };
    const error = await iterate().catch((e: unknown) => e);
    expect((error as DomainError).code).toBe(ErrorCode.ModelNotReady);
    await expect(
      handlers.tokenize(decoderV1.TokenizeRequest.fromPartial({ text: 'x' }), {} as never),
    ).rejects.toMatchObject({
      code: ErrorCode.ModelNotReady,
    });
    const s = await handlers.getModelStatus({}, {} as never);
    expect(s.models[0]!.state).toBe(commonV1.ModelState.MODEL_STATE_LOADING);
    expect(error).toBeInstanceOf(DomainError);
  });
});
