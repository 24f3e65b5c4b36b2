import { randomBytes } from 'node:crypto';
import { blendWithNeighbours, CACHE_DEFAULTS, GENERATION_DEFAULTS } from '@imagebind-llm/domain';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { float32Tensor, fromGrpcError, readFloat32Tensor } from '@imagebind-llm/grpc-kit';
import { decoderV1, gatewayV1, type retrieverV1 } from '@imagebind-llm/proto';
import type { HopContext, PlatformBackends } from './backends.port';

/** One visual-cache neighbour: its row id in the cache and its inner product with q. */
export interface CacheNeighbour {
  readonly id: number;
  readonly score: number;
}

/**
 * The steps of one answer, for debugging dumps (`ibllm generate --dump`): each field is set when
 * its step has run. Asking for them makes the decoder hold its tokens until the prefill logits
 * are known, so an answer that fills this object streams in one piece at the end.
 */
export interface AnswerIntermediates {
  /** The prompt's token ids, BOS first (Alpaca template, MODEL_SPEC §5.9). */
  promptIds?: number[];
  /** The cache's neighbours of q, best first (cache on only). */
  neighbours?: CacheNeighbour[];
  /** q′, the fused query pulled toward its neighbours (cache on only). */
  cached?: Float32Array;
  /** v, the bind network's output. */
  visualQuery?: Float32Array;
  /** c, the per-layer visual offsets [n_layers · dim] (MODEL_SPEC §7). */
  layerOffsets?: Float32Array;
  /** Logits of the last prompt position [vocab]. */
  prefillLogits?: Float32Array;
}

/** What one answer needs besides the inputs: the gateway's GenerateRequest less its inputs, plus q. */
export interface AnswerRequest extends Pick<
  gatewayV1.GenerateRequest,
  'instruction' | 'input' | 'cache' | 'sampling' | 'stopping'
> {
  /** The fused query q, or its promise: the prompt is tokenized while the inputs are encoded. */
  readonly query: Float32Array | Promise<Float32Array>;
}

export interface AnswerOptions {
  /**
   * How often a broken decoder stream is resumed on another replica before the error reaches
   * the caller (ARCHITECTURE §8). 0 where there is one decoder (standalone, the CLI).
   */
  readonly resumeAttempts: number;
  /** Filled with every step's result as it runs (debugging dumps). */
  readonly intermediates?: AnswerIntermediates;
}

/** Errors after which a decoder stream is resumed on another replica (ARCHITECTURE §8). */
const RESUMABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.DependencyUnavailable,
  ErrorCode.ModelNotReady,
  ErrorCode.Overloaded,
]);

function randomSeed(): number {
  // 52 bits: exact as a JS number and as uint64 on the wire.
  return Number(randomBytes(8).readBigUInt64LE() & ((1n << 52n) - 1n));
}

/** Whether a request's cache settings turn the visual cache on (it is on unless switched off). */
export function cacheEnabled(cache: gatewayV1.CacheOptions | undefined): boolean {
  return cache?.enabled ?? true;
}

/**
 * The visual cache (MODEL_SPEC §1.4): the retriever's exact top-k of q with their vectors, then
 * the blend. A missing or empty cache collection is the deployment's fault, not the request's.
 */
export async function blendThroughCache(
  backends: Pick<PlatformBackends, 'retriever'>,
  q: Float32Array,
  cache: gatewayV1.CacheOptions | undefined,
  ctx: HopContext,
): Promise<{ blended: Float32Array; neighbours: CacheNeighbour[] }> {
  // 503, saying how the client can still get an answer (without the cache) while the operator fixes it.
  const cacheDown = (why: string, cause?: unknown): DomainError =>
    new DomainError(
      ErrorCode.DependencyUnavailable,
      `the visual cache is not available on this deployment (${why}); retry later, or ask without ` +
        'it (cache.enabled false; REST imagebind.cache.enabled: false)',
      {},
      cause === undefined ? undefined : { cause },
    );
  let response: retrieverV1.SearchResponse;
  try {
    response = await backends.retriever.search(
      {
        collection: '',
        queries: float32Tensor(q, [1, q.length]),
        k: cache?.size ?? CACHE_DEFAULTS.size,
        includeVectors: true,
        includePayloads: false,
      },
      ctx,
    );
  } catch (error) {
    const domain = error instanceof DomainError ? error : undefined;
    if (domain?.code === ErrorCode.NotFound || domain?.code === ErrorCode.FailedPrecondition) {
      throw cacheDown(domain.message, error);
    }
    throw error;
  }
  const hits = response.results[0]?.hits ?? [];
  if (hits.length === 0) throw cacheDown('its collection is empty: import knn.index into the retriever');
  const blended = blendWithNeighbours(
    q,
    hits.map((h) => ({ score: h.score, vector: h.vector })),
    {
      temperature: cache?.temperature ?? CACHE_DEFAULTS.temperature,
      weight: cache?.weight ?? CACHE_DEFAULTS.weight,
    },
  );
  return { blended, neighbours: hits.map((h) => ({ id: h.id, score: h.score })) };
}

/**
 * One answer (ARCHITECTURE §2), after the inputs: tokenize the prompt → visual cache → bind →
 * decoder stream, as gateway messages (text and ids per message, then the finish reason and usage).
 * The gateway (both modes) and `ibllm generate` run this over their PlatformBackends.
 *
 * The seed is fixed here, not by the decoder, so a stream resumed on another replica draws the
 * numbers the first one would have (sampling is keyed by seed and step). Its logits come from one
 * re-prefill of prompt + sent tokens instead of step-by-step decoding: equal to rounding, so greedy
 * answers continue identically and sampled ones nearly always do (decoder.proto).
 */
export async function* answer(
  backends: PlatformBackends,
  request: AnswerRequest,
  ctx: HopContext,
  options: AnswerOptions,
): AsyncGenerator<gatewayV1.GenerateResponse, void, undefined> {
  const started = Date.now();
  const inspect = options.intermediates;
  const [q, tokenized] = await Promise.all([
    request.query,
    backends.decoder.tokenize(
      {
        text: request.instruction,
        input: request.input,
        template: decoderV1.PromptTemplate.PROMPT_TEMPLATE_ALPACA,
        addBos: true,
      },
      ctx,
    ),
  ]);
  if (inspect !== undefined) inspect.promptIds = tokenized.tokenIds;
  let query = q;
  if (cacheEnabled(request.cache)) {
    const { blended, neighbours } = await blendThroughCache(backends, q, request.cache, ctx);
    query = blended;
    if (inspect !== undefined) Object.assign(inspect, { cached: blended, neighbours });
  }
  const projected = await backends.bind.project({ queries: float32Tensor(query, [1, query.length]) }, ctx);
  const v = readFloat32Tensor(projected.visualQueries, 'visual_queries').data;
  if (inspect !== undefined) inspect.visualQuery = v;

  const seed = request.sampling?.seed ?? randomSeed();
  const sent: number[] = [];
  let firstTokenAt: number | undefined;
  let promptTokens = tokenized.tokenIds.length;
  for (let attempt = 0; ; attempt++) {
    try {
      const stream = backends.decoder.generate(
        {
          visualQuery: float32Tensor(v, [v.length]),
          promptTokenIds: tokenized.tokenIds,
          resumeFromTokenIds: [...sent],
          sampling: {
            temperature: request.sampling?.temperature ?? GENERATION_DEFAULTS.temperature,
            topP: request.sampling?.topP ?? GENERATION_DEFAULTS.topP,
            seed,
          },
          stopping: {
            maxNewTokens: request.stopping?.maxNewTokens ?? GENERATION_DEFAULTS.maxNewTokens,
            ignoreEos: false,
          },
          returnPrefillLogits: inspect !== undefined && sent.length === 0,
          returnLayerOffsets: inspect !== undefined && sent.length === 0,
        },
        ctx,
      );
      for await (const message of stream) {
        if (inspect !== undefined) {
          if (message.prefillLogits !== undefined)
            inspect.prefillLogits = readFloat32Tensor(message.prefillLogits, 'prefill_logits').data;
          if (message.layerOffsets !== undefined)
            inspect.layerOffsets = readFloat32Tensor(message.layerOffsets, 'layer_offsets').data;
        }
        const ids = message.tokens.map((t) => t.id);
        if (ids.length > 0) firstTokenAt ??= Date.now();
        if (message.stats !== undefined) promptTokens = message.stats.promptTokens;
        const finished = message.finishReason !== decoderV1.FinishReason.FINISH_REASON_UNSPECIFIED;
        const elapsed = (Date.now() - (firstTokenAt ?? Date.now())) / 1000;
        yield {
          text: message.tokens.map((t) => t.text).join(''),
          tokenIds: ids,
          finishReason: finished
            ? toGatewayFinish(message.finishReason)
            : gatewayV1.FinishReason.FINISH_REASON_UNSPECIFIED,
          ...(finished
            ? {
                usage: {
                  promptTokens,
                  completionTokens: sent.length + ids.length,
                  timeToFirstTokenMs: (firstTokenAt ?? Date.now()) - started,
                  tokensPerSecond: elapsed > 0 ? (sent.length + ids.length - 1) / elapsed : 0,
                  seed,
                },
              }
            : {}),
        };
        sent.push(...ids);
        if (finished) return;
      }
      throw DomainError.unavailable('the decoder stream ended without a finish reason');
    } catch (error) {
      const domain = fromGrpcError(error);
      if (ctx.signal.aborted || !RESUMABLE.has(domain.code) || attempt >= options.resumeAttempts)
        throw domain;
      ctx.logger.warn(
        { event: 'decoder.resume', attempt: attempt + 1, sentTokens: sent.length, reason: domain.message },
        'decoder stream broke; resuming on another replica',
      );
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** attempt)));
    }
  }
}

function toGatewayFinish(reason: decoderV1.FinishReason): gatewayV1.FinishReason {
  switch (reason) {
    case decoderV1.FinishReason.FINISH_REASON_EOS:
      return gatewayV1.FinishReason.FINISH_REASON_STOP;
    case decoderV1.FinishReason.FINISH_REASON_LENGTH:
      return gatewayV1.FinishReason.FINISH_REASON_LENGTH;
    case decoderV1.FinishReason.FINISH_REASON_CONTEXT:
      return gatewayV1.FinishReason.FINISH_REASON_CONTEXT;
    case decoderV1.FinishReason.FINISH_REASON_UNSPECIFIED:
    case decoderV1.FinishReason.UNRECOGNIZED:
      return gatewayV1.FinishReason.FINISH_REASON_UNSPECIFIED;
  }
}
