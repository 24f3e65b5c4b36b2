import { Body, Controller, Get, HttpCode, Inject, Param, Post, Res, UseGuards } from '@nestjs/common';
import type { Response } from 'express';
import type { GatewayEnv } from './env.schema';
import { GatewayService, SERVED_MODEL_ID } from './gateway.service';
import { ApiKeyGuard } from './http/api-key.guard';
import { RequestContext, type RestContext } from './http/request-context';
import { streamResponse } from './http/stream-response';
import {
  collectChatCompletion,
  completionMeta,
  getOpenAiModel,
  parseChatCompletionRequest,
  parseEmbeddingsRequest,
  parseSearchRequest,
  playgroundConfig,
  SSE_HEADERS,
  streamChatCompletion,
  toEmbeddingsResponse,
  toOpenAiModelList,
  toSearchResponse,
  type ChatParseOptions,
  type EmbeddingsResponseBody,
  type OpenAiModel,
  type OpenAiModelList,
  type PlaygroundConfig,
  type SearchResponseBody,
} from './rest';
import { GATEWAY_ENV } from './tokens';

const STARTED_AT = Math.floor(Date.now() / 1000);
const MODELS = { modelId: SERVED_MODEL_ID, created: STARTED_AT };

/** Sends the status and headers of an SSE answer, at once (no proxy buffering). */
function startSse(res: Response): void {
  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders();
}

/**
 * The OpenAI-compatible REST API (issue: /v1/chat/completions with SSE, /v1/embeddings,
 * /v1/models). Thin: ApiKeyGuard admits the call and opens its context, the rest/ schemas parse
 * the body, the same GatewayService as gRPC does the work, and OpenAiErrorFilter answers any
 * error. A client that disconnects cancels the work behind its request (`ctx.signal`).
 */
@Controller('v1')
@UseGuards(ApiKeyGuard)
export class OpenAiController {
  private readonly options: ChatParseOptions;
  private readonly playground: PlaygroundConfig;

  constructor(
    @Inject(GatewayService) private readonly gateway: GatewayService,
    @Inject(GATEWAY_ENV) env: GatewayEnv,
  ) {
    const limits = {
      maxParts: env.GATEWAY_MAX_INPUTS + 16,
      maxPartBytes: env.GATEWAY_MAX_INPUT_BYTES,
      maxBodyBytes: env.GATEWAY_MAX_BODY_BYTES,
    };
    this.options = { limits, allowedHosts: env.GATEWAY_FETCH_ALLOWED_HOSTS, modelId: SERVED_MODEL_ID };
    this.playground = playgroundConfig(SERVED_MODEL_ID, limits, env.GATEWAY_MAX_INPUTS);
  }

  /** One JSON object (`stream: false`), or SSE chunks then `data: [DONE]`. */
  @Post('chat/completions')
  async chat(@Body() body: unknown, @RequestContext() ctx: RestContext, @Res() res: Response): Promise<void> {
    const parsed = ctx.withInputs(parseChatCompletionRequest(body, this.options));
    const stream = this.gateway.generate(parsed.request, ctx);
    const meta = completionMeta(parsed.model);
    if (!parsed.stream) {
      res.status(200).json(await collectChatCompletion(stream, meta));
      return;
    }
    const events = streamChatCompletion(stream, {
      ...meta,
      includeUsage: parsed.includeUsage,
      requestId: ctx.requestId,
      onError: (error) => ctx.logger.warn({ err: error }, 'chat stream ended with an error'),
    });
    await streamResponse(res, ctx.signal, events, startSse);
  }

  @Post('embeddings')
  @HttpCode(200)
  async embeddings(
    @Body() body: unknown,
    @RequestContext() ctx: RestContext,
  ): Promise<EmbeddingsResponseBody> {
    const parsed = ctx.withInputs(parseEmbeddingsRequest(body, this.options));
    return toEmbeddingsResponse(await this.gateway.embed(parsed.request, ctx), parsed);
  }

  /** Extension: cross-modal search over a collection (the visual cache by default). */
  @Post('search')
  @HttpCode(200)
  async search(@Body() body: unknown, @RequestContext() ctx: RestContext): Promise<SearchResponseBody> {
    const parsed = ctx.withInputs(parseSearchRequest(body, this.options));
    return toSearchResponse(await this.gateway.search(parsed.request, ctx), parsed.model);
  }

  /** Limits, accepted formats and defaults for the web playground; keyed like every API call. */
  @Get('playground/config')
  config(): PlaygroundConfig {
    return this.playground;
  }

  @Get('models')
  async models(@RequestContext() ctx: RestContext): Promise<OpenAiModelList> {
    return toOpenAiModelList(await this.gateway.listModels(ctx), MODELS);
  }

  @Get('models/:id')
  async model(@Param('id') id: string, @RequestContext() ctx: RestContext): Promise<OpenAiModel> {
    return getOpenAiModel(id, await this.gateway.listModels(ctx), MODELS);
  }
}
