import { getMaxListeners, setMaxListeners } from 'node:events';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { Inject, Injectable } from '@nestjs/common';
import {
  DomainError,
  ERROR_CODE_TRAILER,
  ERROR_FIELD_TRAILER,
  ErrorCode,
  RETRY_AFTER_TRAILER,
} from '@imagebind-llm/errors';
import { float32Tensor, toGrpcStatus } from '@imagebind-llm/grpc-kit';
import { commonV1, gatewayV1 } from '@imagebind-llm/proto';
import {
  answer,
  blendThroughCache,
  cacheEnabled,
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
  validateEmbedManyRequest,
  validateGenerateRequest,
  validateInputs,
  type RequestLimits,
} from './request-validation';

import { BACKENDS, GATEWAY_ENV } from './tokens';

/** The served model's public name (`GET /v1/models`, ListModels). */
export const SERVED_MODEL_ID = 'imagebind-llm';

/**
 * The gateway's orchestration (ARCHITECTURE §2): encoders → fusion → retriever + cache blend →
 * bind → decoder, over whichever backends this process has (gRPC clients or in-process
 * implementations). Every hop gets the client's deadline, request id and cancellation.
 */
@Injectable()
export class GatewayService {
  private readonly limits: RequestLimits;
  private readonly maxEmbedManyRequests: number;
  private readonly fetcher: MediaFetcher;
  private readonly resumeAttempts: number;

  constructor(
    @Inject(GATEWAY_ENV) env: GatewayEnv,
    @Inject(BACKENDS) private readonly backends: PlatformBackends,
  ) {
    this.limits = { maxInputs: env.GATEWAY_MAX_INPUTS, maxInputBytes: env.GATEWAY_MAX_INPUT_BYTES };
    this.maxEmbedManyRequests = env.GATEWAY_EMBED_MANY_MAX_REQUESTS;
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

  async *generate(
    request: gatewayV1.GenerateRequest,
    ctx: HopContext,
  ): AsyncGenerator<gatewayV1.GenerateResponse> {
    validateGenerateRequest(request, this.limits);
    const query = this.embedInputs(request.inputs, ctx).then((e) => e.fused);
    yield* answer(this.backends, { ...request, query }, ctx, { resumeAttempts: this.resumeAttempts });
  }

  async embed(request: gatewayV1.EmbedRequest, ctx: HopContext): Promise<gatewayV1.EmbedResponse> {
    validateInputs(request.inputs, this.limits);
    validateCache(request.cache);
    const embedded = await this.embedInputs(request.inputs, ctx);
    const wantCache = request.cache !== undefined && cacheEnabled(request.cache);
    const cached = wantCache
      ? (await blendThroughCache(this.backends, embedded.fused, request.cache, ctx)).blended
      : undefined;
    return {
      embeddings: embedded.perInput.map((e) => ({
        modality: e.modality,
        embedding: float32Tensor(e.embedding, [e.embedding.length]),
      })),
      ...(request.includeFused ? { fused: float32Tensor(embedded.fused, [embedded.fused.length]) } : {}),
      ...(cached === undefined ? {} : { cached: float32Tensor(cached, [cached.length]) }),
    };
  }

  /**
   * Checks an EmbedMany call's shape (1..GATEWAY_EMBED_MANY_MAX_REQUESTS requests) and returns how
   * many requests it carries, which admission counts against the rate limit.
   */
  checkEmbedMany(request: gatewayV1.EmbedManyRequest): number {
    validateEmbedManyRequest(request, this.maxEmbedManyRequests);
    return request.requests.length;
  }

  /**
   * Runs each request through {@link embed}, side by side (the encoders' batchers see them as
   * concurrent Embed calls), and answers each with its response or with the status Embed would
   * have answered it with: one failed request does not fail the others. The call's deadline and
   * cancellation apply to all of them.
   */
  async embedMany(
    request: gatewayV1.EmbedManyRequest,
    ctx: HopContext,
  ): Promise<gatewayV1.EmbedManyResponse> {
    const count = this.checkEmbedMany(request);
    // Every request's hops listen on the one call signal: no leak warning at Node's default of 10.
    setMaxListeners(Math.max(getMaxListeners(ctx.signal), 10 + 4 * count), ctx.signal);
    const results = await Promise.all(
      request.requests.map(async (one, index): Promise<gatewayV1.EmbedManyResult> => {
        try {
          return { result: { $case: 'response', value: await this.embed(one, ctx) } };
        } catch (error) {
          logRequestFailure(ctx, index, error);
          return { result: { $case: 'error', value: embedErrorOf(error, ctx.requestId) } };
        }
      }),
    );
    return { results };
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

/**
 * One EmbedMany request's failure as the status Embed would have answered it with: the same
 * mapping (libs/grpc-kit `toGrpcStatus`), read back from the trailers it writes, so the code,
 * message, field and retry hint cannot drift from Embed's. Anything but a DomainError is INTERNAL
 * with the generic message and the request id, as for Embed.
 */
function embedErrorOf(error: unknown, requestId: string): gatewayV1.EmbedError {
  const status = toGrpcStatus(error, requestId);
  const trailer = (key: string): string => {
    const value = status.metadata?.get(key)[0];
    return typeof value === 'string' ? value : '';
  };
  const retryAfterMs = Number(trailer(RETRY_AFTER_TRAILER) || NaN);
  return {
    code: trailer(ERROR_CODE_TRAILER) || ErrorCode.Internal,
    message: status.details ?? '',
    field: trailer(ERROR_FIELD_TRAILER),
    ...(Number.isFinite(retryAfterMs) ? { retryAfterMs } : {}),
    statusCode: status.code ?? GrpcStatus.INTERNAL,
  };
}

/** Logs one EmbedMany request's failure as the handler logs a failed Embed call. */
function logRequestFailure(ctx: HopContext, index: number, error: unknown): void {
  if (error instanceof DomainError) {
    ctx.logger.info({ request: index, code: error.code, details: error.details }, error.message);
  } else {
    ctx.logger.error(
      { request: index, err: error },
      'unhandled error in an EmbedMany request; returned INTERNAL',
    );
  }
}
