import { Controller, Get, Inject, Param, Post, Req, Res } from '@nestjs/common';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  acceptRequestId,
  getTracer,
  REQUEST_ID_KEY,
  traceCarrierOf,
  type Logger,
} from '@imagebind-llm/observability';
import type { Request, Response } from 'express';
import type { AccessControl } from './access';
import type { HopContext } from './backends/backends.port';
import type { GatewayEnv } from './env.schema';
import { GatewayService, SERVED_MODEL_ID } from './gateway.service';
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
  toOpenAiError,
  toOpenAiModelList,
  toSearchResponse,
  type MediaPolicy,
  type PlaygroundConfig,
} from './rest';
import { ACCESS, GATEWAY_ENV, LOGGER } from './tokens';

const STARTED_AT = Math.floor(Date.now() / 1000);

/**
 * The OpenAI-compatible REST API (issue: /v1/chat/completions with SSE, /v1/embeddings,
 * /v1/models). Thin: parse with the rest/ building blocks, run the same GatewayService as gRPC,
 * format. A client that disconnects cancels the work behind its request.
 */
@Controller('v1')
export class OpenAiController {
  private readonly policy: MediaPolicy;
  private readonly playground: PlaygroundConfig;

  constructor(
    @Inject(GatewayService) private readonly gateway: GatewayService,
    @Inject(ACCESS) private readonly access: AccessControl,
    @Inject(GATEWAY_ENV) env: GatewayEnv,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.policy = {
      limits: {
        maxParts: env.GATEWAY_MAX_INPUTS + 16,
        maxPartBytes: env.GATEWAY_MAX_INPUT_BYTES,
        maxBodyBytes: env.GATEWAY_MAX_BODY_BYTES,
      },
      allowedHosts: env.GATEWAY_FETCH_ALLOWED_HOSTS,
    };
    this.playground = playgroundConfig(SERVED_MODEL_ID, this.policy.limits, env.GATEWAY_MAX_INPUTS);
  }

  /** Admission + a call context whose signal aborts when the HTTP client goes away. */
  private async open(req: Request, res: Response): Promise<HopContext> {
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const requestId = acceptRequestId(header(REQUEST_ID_KEY));
    res.setHeader(REQUEST_ID_KEY, requestId);
    const logger = this.logger.child({ requestId, method: `${req.method} ${req.path}` });
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) {
        controller.abort(new DomainError(ErrorCode.Cancelled, 'the HTTP client went away'));
      }
    });
    // The request's span: a child of the client's W3C trace context when it sent one; every hop
    // behind the gateway joins its trace through ctx.trace.
    const span = getTracer().startSpan(`${req.method} ${req.path}`, {
      kind: 'server',
      parent: traceCarrierOf(header),
      attributes: { 'http.request.method': req.method, 'url.path': req.path, 'request.id': requestId },
    });
    res.on('close', () => {
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.recordError(new Error(`answered HTTP ${res.statusCode}`));
      span.end();
    });
    const ctx: HopContext = {
      requestId,
      logger,
      deadline: Infinity,
      signal: controller.signal,
      trace: span.carrier,
    };
    const credentials: { authorization?: string; apiKey?: string } = {};
    const authorization = header('authorization');
    const apiKey = header('x-api-key');
    if (authorization !== undefined) credentials.authorization = authorization;
    if (apiKey !== undefined) credentials.apiKey = apiKey;
    await this.access.admit(credentials);
    return ctx;
  }

  private fail(
    res: Response,
    error: unknown,
    requestId: string | undefined,
    inputPaths?: readonly string[],
  ): void {
    const e = toOpenAiError(error, requestId, inputPaths);
    // Only a fault of our own (a non-domain error, INTERNAL) earns error level and a stack. A
    // client mistake is info, an expected server state (OVERLOADED, a dependency down) one warn
    // line per request, both without stacks: they are answers, not bugs.
    if (!(error instanceof DomainError) || error.code === ErrorCode.Internal) {
      this.logger.error({ err: error, requestId }, 'REST request failed');
    } else {
      const line = { event: 'rest.failed', requestId, status: e.status, code: error.code };
      if (e.status >= 500) this.logger.warn(line, error.message);
      else this.logger.info(line, error.message);
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(e.status).set(e.headers).json(e.body);
  }

  @Post('chat/completions')
  async chat(@Req() req: Request, @Res() res: Response): Promise<void> {
    let ctx: HopContext | undefined;
    let inputPaths: readonly string[] | undefined;
    try {
      ctx = await this.open(req, res);
      const parsed = parseChatCompletionRequest(req.body as unknown, {
        ...this.policy,
        modelId: SERVED_MODEL_ID,
      });
      inputPaths = parsed.inputPaths;
      const stream = this.gateway.generate(parsed.request, ctx);
      const meta = completionMeta(parsed.model);
      if (!parsed.stream) {
        res.status(200).json(await collectChatCompletion(stream, meta));
        return;
      }
      const log = ctx.logger;
      const events = streamChatCompletion(stream, {
        ...meta,
        includeUsage: parsed.includeUsage,
        requestId: ctx.requestId,
        onError: (error) => log.warn({ err: error }, 'chat stream ended with an error'),
      })[Symbol.asyncIterator]();
      // Errors before the first event still get a proper HTTP status.
      let next = await events.next();
      res.writeHead(200, SSE_HEADERS);
      res.flushHeaders();
      while (next.done !== true) {
        if (ctx.signal.aborted) {
          await events.return?.();
          return;
        }
        res.write(next.value);
        next = await events.next();
      }
      res.end();
    } catch (error) {
      this.fail(res, error, ctx?.requestId, inputPaths);
    }
  }

  @Post('embeddings')
  async embeddings(@Req() req: Request, @Res() res: Response): Promise<void> {
    let ctx: HopContext | undefined;
    let inputPaths: readonly string[] | undefined;
    try {
      ctx = await this.open(req, res);
      const parsed = parseEmbeddingsRequest(req.body as unknown, {
        ...this.policy,
        modelId: SERVED_MODEL_ID,
      });
      inputPaths = parsed.inputPaths;
      const response = await this.gateway.embed(parsed.request, ctx);
      res.status(200).json(
        toEmbeddingsResponse(response, {
          model: parsed.model,
          encodingFormat: parsed.encodingFormat,
          normalize: parsed.normalize,
        }),
      );
    } catch (error) {
      this.fail(res, error, ctx?.requestId, inputPaths);
    }
  }

  /** Extension: cross-modal search over a collection (the visual cache by default). */
  @Post('search')
  async search(@Req() req: Request, @Res() res: Response): Promise<void> {
    let ctx: HopContext | undefined;
    let inputPaths: readonly string[] | undefined;
    try {
      ctx = await this.open(req, res);
      const parsed = parseSearchRequest(req.body as unknown, { ...this.policy, modelId: SERVED_MODEL_ID });
      inputPaths = parsed.inputPaths;
      const response = await this.gateway.search(parsed.request, ctx);
      res.status(200).json(toSearchResponse(response, parsed.model));
    } catch (error) {
      this.fail(res, error, ctx?.requestId, inputPaths);
    }
  }

  /** Limits, accepted formats and defaults for the web playground; keyed like every API call. */
  @Get('playground/config')
  async config(@Req() req: Request, @Res() res: Response): Promise<void> {
    let ctx: HopContext | undefined;
    try {
      ctx = await this.open(req, res);
      res.status(200).json(this.playground);
    } catch (error) {
      this.fail(res, error, ctx?.requestId);
    }
  }

  @Get('models')
  async models(@Req() req: Request, @Res() res: Response): Promise<void> {
    let ctx: HopContext | undefined;
    try {
      ctx = await this.open(req, res);
      const list = await this.gateway.listModels(ctx);
      res.json(toOpenAiModelList(list, { modelId: SERVED_MODEL_ID, created: STARTED_AT }));
    } catch (error) {
      this.fail(res, error, ctx?.requestId);
    }
  }

  @Get('models/:id')
  async model(@Param('id') id: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    let ctx: HopContext | undefined;
    try {
      ctx = await this.open(req, res);
      const list = await this.gateway.listModels(ctx);
      res.json(getOpenAiModel(id, list, { modelId: SERVED_MODEL_ID, created: STARTED_AT }));
    } catch (error) {
      this.fail(res, error, ctx?.requestId);
    }
  }
}
