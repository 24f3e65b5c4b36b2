import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { blendWithNeighbours, CACHE_DEFAULTS, GENERATION_DEFAULTS } from '@imagebind-llm/domain';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { float32Tensor, fromGrpcError, readFloat32Tensor } from '@imagebind-llm/grpc-kit';
import { commonV1, decoderV1, gatewayV1, type retrieverV1 } from '@imagebind-llm/proto';
import {
  embedInputs,
  type EmbeddedInputs,
  type HopContext,
  type PlatformBackends,
  type PlatformInput,
} from '@imagebind-llm/serving/platform';
import type { GatewayEnv } from './env.schema';
import { MediaFetcher } from './media-fetcher';
import {
  readPrecomputedEmbedding,
  validateCache,
  validateGenerateRequest,
  validateInputs,
  type RequestLimits,
} from './request-validation';

import { BACKENDS, GATEWAY_ENV } from './tokens';

/** The served model's public name (`GET /v1/models`, ListModels). */
export const SERVED_MODEL_ID = 'imagebind-llm';

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

/**
 * The gateway's orchestration (ARCHITECTURE §2): encoders → fusion → retriever + cache blend →
 * bind → decoder, over whichever backends this process has (gRPC clients or in-process
 * implementations). Every hop gets the client's deadline, request id and cancellation.
 */
@Injectable()
export class GatewayService {
  private readonly limits: RequestLimits;
  private readonly fetcher: MediaFetcher;
  private readonly resumeAttempts: number;

  constructor(
    @Inject(GATEWAY_ENV) env: GatewayEnv,
    @Inject(BACKENDS) private readonly backends: PlatformBackends,
  ) {
    this.limits = { maxInputs: env.GATEWAY_MAX_INPUTS, maxInputBytes: env.GATEWAY_MAX_INPUT_BYTES };
    this.fetcher = new MediaFetcher(
      env.GATEWAY_FETCH_ALLOWED_HOSTS,
      env.GATEWAY_MAX_INPUT_BYTES,
      env.GATEWAY_FETCH_TIMEOUT_MS,
    );
    // Standalone mode has one decoder, in this process: "resuming on another replica" would only
    // send the same request back to the decoder that just refused it (an overloaded one, usually),
    // multiplying its load and the warnings. The client gets the error (with its retry hint) at once.
    this.resumeAttempts = backends.mode === 'standalone' ? 0 : env.GATEWAY_DECODER_RESUME_ATTEMPTS;
  }

  get mode(): PlatformBackends['mode'] {
    return this.backends.mode;
  }

  /**
   * Encodes every input on its modality's encoder (one call per modality) and fuses them (§1.2).
   * A precomputed embedding skips the encoder and enters the fusion as an encoder's output would;
   * a fused one (the only input, by validation) is q itself.
   */
  async embedInputs(inputs: readonly gatewayV1.MultimodalInput[], ctx: HopContext): Promise<EmbeddedInputs> {
    const resolved = await Promise.all(
      inputs.map(async (input, index): Promise<PlatformInput> => {
        const source = input.source!;
        const weight = input.weight ?? 1;
        if (source.$case === 'embedding') {
          const embedding = readPrecomputedEmbedding(source.value, `inputs[${index}].embedding`);
          return {
            modality: input.modality,
            weight,
            source: { kind: 'embedding', embedding, fused: source.value.fused },
          };
        }
        if (source.$case === 'text') {
          return {
            modality: input.modality,
            weight,
            source: {
              kind: 'encode',
              input: { source: { $case: 'text', value: source.value }, mediaType: input.mediaType },
            },
          };
        }
        const bytes =
          source.$case === 'content'
            ? source.value
            : await this.fetcher.fetch(source.value, `inputs[${index}].uri`, ctx.signal);
        return {
          modality: input.modality,
          weight,
          source: {
            kind: 'encode',
            input: { source: { $case: 'content', value: Buffer.from(bytes) }, mediaType: input.mediaType },
          },
        };
      }),
    );
    return embedInputs(this.backends, resolved, ctx);
  }

  /** The visual cache (MODEL_SPEC §1.4): exact top-k from the retriever, then the blend. */
  async cacheBlend(
    q: Float32Array,
    cache: gatewayV1.CacheOptions | undefined,
    ctx: HopContext,
  ): Promise<Float32Array> {
    const size = cache?.size ?? CACHE_DEFAULTS.size;
    // A missing or empty visual cache is the deployment's fault, not the request's: 503, saying
    // how the client can still get an answer (without the cache) while the operator fixes it.
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
      response = await this.backends.retriever.search(
        {
          collection: '',
          queries: float32Tensor(q, [1, q.length]),
          k: size,
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
    if (hits.length === 0) {
      throw cacheDown('its collection is empty: import knn.index into the retriever');
    }
    return blendWithNeighbours(
      q,
      hits.map((h) => ({ score: h.score, vector: h.vector })),
      {
        temperature: cache?.temperature ?? CACHE_DEFAULTS.temperature,
        weight: cache?.weight ?? CACHE_DEFAULTS.weight,
      },
    );
  }

  private cacheEnabled(cache: gatewayV1.CacheOptions | undefined): boolean {
    return cache?.enabled ?? true;
  }

  async *generate(
    request: gatewayV1.GenerateRequest,
    ctx: HopContext,
  ): AsyncGenerator<gatewayV1.GenerateResponse> {
    validateGenerateRequest(request, this.limits);
    const started = Date.now();
    const [embedded, tokenized] = await Promise.all([
      this.embedInputs(request.inputs, ctx),
      this.backends.decoder.tokenize(
        {
          text: request.instruction,
          input: request.input,
          template: decoderV1.PromptTemplate.PROMPT_TEMPLATE_ALPACA,
          addBos: true,
        },
        ctx,
      ),
    ]);
    const q = this.cacheEnabled(request.cache)
      ? await this.cacheBlend(embedded.fused, request.cache, ctx)
      : embedded.fused;
    const projected = await this.backends.bind.project({ queries: float32Tensor(q, [1, q.length]) }, ctx);
    const v = readFloat32Tensor(projected.visualQueries, 'visual_queries').data;
    // The seed is fixed here, not by the decoder, so a stream resumed on another replica draws the
    // numbers the first one would have (sampling is keyed by seed and step). Its logits come from
    // one re-prefill of prompt + sent tokens instead of step-by-step decoding: equal to rounding,
    // so greedy answers continue identically and sampled ones nearly always do (decoder.proto).
    const seed = request.sampling?.seed ?? randomSeed();
    const sent: number[] = [];
    let firstTokenAt: number | undefined;
    let promptTokens = tokenized.tokenIds.length;
    for (let attempt = 0; ; attempt++) {
      try {
        const stream = this.backends.decoder.generate(
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
            returnPrefillLogits: false,
          },
          ctx,
        );
        for await (const message of stream) {
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
        if (ctx.signal.aborted || !RESUMABLE.has(domain.code) || attempt >= this.resumeAttempts) throw domain;
        ctx.logger.warn(
          { event: 'decoder.resume', attempt: attempt + 1, sentTokens: sent.length, reason: domain.message },
          'decoder stream broke; resuming on another replica',
        );
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** attempt)));
      }
    }
  }

  async embed(request: gatewayV1.EmbedRequest, ctx: HopContext): Promise<gatewayV1.EmbedResponse> {
    validateInputs(request.inputs, this.limits);
    validateCache(request.cache);
    const embedded = await this.embedInputs(request.inputs, ctx);
    const wantCache = request.cache !== undefined && this.cacheEnabled(request.cache);
    const cached = wantCache ? await this.cacheBlend(embedded.fused, request.cache, ctx) : undefined;
    return {
      embeddings: embedded.perInput.map((e) => ({
        modality: e.modality,
        embedding: float32Tensor(e.embedding, [e.embedding.length]),
      })),
      ...(request.includeFused ? { fused: float32Tensor(embedded.fused, [embedded.fused.length]) } : {}),
      ...(cached === undefined ? {} : { cached: float32Tensor(cached, [cached.length]) }),
    };
  }

  async search(request: gatewayV1.SearchRequest, ctx: HopContext): Promise<gatewayV1.SearchResponse> {
    validateInputs(request.inputs, this.limits);
    if (request.k !== undefined && (request.k < 1 || request.k > 1000)) {
      throw DomainError.invalidInput(`k: must be in [1, 1000], got ${request.k}`, 'k');
    }
    const { fused } = await this.embedInputs(request.inputs, ctx);
    const response = await this.backends.retriever.search(
      {
        collection: request.collection,
        queries: float32Tensor(fused, [1, fused.length]),
        k: request.k ?? 10,
        includeVectors: false,
        includePayloads: true,
      },
      ctx,
    );
    return {
      hits: (response.results[0]?.hits ?? []).map((h) => ({ id: h.id, score: h.score, payload: h.payload })),
    };
  }

  async listModels(ctx: HopContext): Promise<gatewayV1.ListModelsResponse> {
    let ready = false;
    let version = '';
    try {
      const status = await this.backends.decoder.getModelStatus(ctx);
      ready =
        status.models.length > 0 &&
        status.models.every((m) => m.state === commonV1.ModelState.MODEL_STATE_READY);
      version = status.models[0]?.model?.version ?? '';
    } catch {
      ready = false;
    }
    return { models: [{ name: SERVED_MODEL_ID, version, ready }] };
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
