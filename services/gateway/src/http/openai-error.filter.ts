import { ArgumentsHost, Catch, HttpException, type ExceptionFilter } from '@nestjs/common';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { Logger } from '@imagebind-llm/observability';
import type { Request, Response } from 'express';
import { toOpenAiError } from '../rest/openai-format';
import { writeErrorResponse } from '../rest/rest-boundary';
import { restContextOf } from './request-context';

/** The parser's and the router's errors (Nest HttpExceptions, body-parser errors) → DomainErrors. */
function asDomainError(exception: unknown, req: Request): DomainError | undefined {
  if (exception instanceof DomainError) return exception;
  const status =
    exception instanceof HttpException
      ? exception.getStatus()
      : typeof (exception as { status?: unknown } | null)?.status === 'number'
        ? (exception as { status: number }).status
        : undefined;
  const type = (exception as { type?: unknown } | null)?.type;
  if (status === 404) {
    return new DomainError(
      ErrorCode.NotFound,
      `no route ${req.method} ${req.path.slice(0, 200)}: the API is POST /v1/chat/completions, ` +
        'POST /v1/embeddings, POST /v1/search, GET /v1/models and /v1/batches (docs/rest-api.md)',
    );
  }
  if (status === 413 || type === 'entity.too.large') {
    return new DomainError(
      ErrorCode.PayloadTooLarge,
      'the request body is over the limit (GATEWAY_MAX_BODY_BYTES): send large media by https URL or split the request',
    );
  }
  if (status === 415) {
    return new DomainError(
      ErrorCode.UnsupportedMedia,
      'the request body must be UTF-8 JSON without content encoding',
    );
  }
  if (status === 400) {
    const detail = exception instanceof Error ? exception.message.slice(0, 200) : 'malformed request';
    return DomainError.invalidInput(`the request body is not valid JSON: ${detail}`);
  }
  return undefined;
}

/**
 * Every REST error in OpenAI's shape, from one place: a DomainError thrown by a guard or handler
 * keeps its message, status, field (`param`, in REST terms: see RestContext.withInputs) and retry
 * hint (`retry-after`); the router's and the body parser's errors (unknown routes, malformed JSON,
 * bodies over the limit) are told as DomainErrors; anything else is a server fault, a 500 with the
 * generic message and the request id, logged with its stack. Once a stream has started (SSE,
 * NDJSON) the status is sent: the response is only ended (SSE errors are events; see
 * streamChatCompletion).
 *
 * Each failure is logged once: a client mistake at info, an expected server state (OVERLOADED, a
 * dependency down) at warn, both without stacks (they are answers, not bugs), and only a fault of
 * our own (a non-domain error, INTERNAL) at error with its stack.
 */
@Catch()
export class OpenAiErrorFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const res = http.getResponse<Response>();
    const req = http.getRequest<Request>();
    const call = restContextOf(req);
    const error = asDomainError(exception, req) ?? exception;
    const answer = toOpenAiError(error, call?.requestId, call?.inputPaths);
    const requestId = call?.requestId;
    if (!(error instanceof DomainError) || error.code === ErrorCode.Internal) {
      this.logger.error({ err: error, requestId, path: req.path.slice(0, 200) }, 'REST request failed');
    } else {
      const line = {
        event: 'rest.failed',
        requestId,
        path: req.path.slice(0, 200),
        status: answer.status,
        code: error.code,
      };
      if (answer.status >= 500) this.logger.warn(line, error.message);
      else this.logger.info(line, error.message);
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    writeErrorResponse(res, answer);
  }
}
