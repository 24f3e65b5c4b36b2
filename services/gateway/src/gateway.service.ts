import { Inject, Injectable } from '@nestjs/common';
import { DomainError } from '@imagebind-llm/errors';
import { float32Tensor } from '@imagebind-llm/grpc-kit';
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
