import { Inject, Injectable } from '@nestjs/common';
import { DomainError } from '@imagebind-llm/errors';
import type { CallContext } from '@imagebind-llm/grpc-kit';
import type { gatewayV1 } from '@imagebind-llm/proto';
import type { GatewayEnv } from './env.schema';
import {
  validateCache,
  validateGenerateRequest,
  validateInputs,
  type RequestLimits,
} from './request-validation';
import { GATEWAY_ENV } from './tokens';

/**
 * The gateway's request logic. Requests are validated completely, so clients get precise
 * INVALID_ARGUMENT errors today; the orchestration behind them (encoders → retriever → bind →
 * decoder) is not wired in yet, and every RPC that needs it answers UNIMPLEMENTED saying so.
 */
@Injectable()
export class GatewayService {
  private readonly limits: RequestLimits;

  constructor(@Inject(GATEWAY_ENV) env: GatewayEnv) {
    this.limits = { maxInputs: env.GATEWAY_MAX_INPUTS, maxInputBytes: env.GATEWAY_MAX_INPUT_BYTES };
  }

  // eslint-disable-next-line require-yield -- streams nothing until the decoder is wired in
  async *generate(
    request: gatewayV1.GenerateRequest,
    ctx: CallContext,
  ): AsyncGenerator<gatewayV1.GenerateResponse> {
    validateGenerateRequest(request, this.limits);
    ctx.logger.debug({ inputs: request.inputs.length }, 'generate request validated');
    await Promise.resolve();
    throw DomainError.notImplemented(
      'Generate is not available in this build: the encoder, retriever, bind and decoder services are not wired into the gateway yet',
    );
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so validation errors reject
  async embed(request: gatewayV1.EmbedRequest): Promise<gatewayV1.EmbedResponse> {
    validateInputs(request.inputs, this.limits);
    validateCache(request.cache);
    throw DomainError.notImplemented(
      'Embed is not available in this build: the encoder services are not wired into the gateway yet',
    );
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so validation errors reject
  async search(request: gatewayV1.SearchRequest): Promise<gatewayV1.SearchResponse> {
    validateInputs(request.inputs, this.limits);
    if (request.k !== undefined && (request.k < 1 || request.k > 1000)) {
      throw DomainError.invalidInput(`k: must be in [1, 1000], got ${request.k}`, 'k');
    }
    throw DomainError.notImplemented(
      'Search is not available in this build: the retriever is not wired into the gateway yet',
    );
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so the error is a rejection
  async listModels(): Promise<gatewayV1.ListModelsResponse> {
    throw DomainError.notImplemented(
      'ListModels is not available in this build: no model services are wired into the gateway yet',
    );
  }
}
