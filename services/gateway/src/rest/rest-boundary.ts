import { ArgumentsHost, Catch, HttpException, type ExceptionFilter } from '@nestjs/common';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { Logger } from '@imagebind-llm/observability';
import type { NextFunction, Request, Response } from 'express';
import { toOpenAiError } from './openai-format';

/** Writes an error in OpenAI's shape (`{"error": {message, type, param, code}}`) with its headers. */
export function writeOpenAiError(res: Response, error: unknown, options: { close?: boolean } = {}): void {
  const e = toOpenAiError(error);
  for (const [name, value] of Object.entries(e.headers)) res.setHeader(name, value);
  if (options.close === true) res.setHeader('connection', 'close');
  res.status(e.status).json(e.body);
}

/**
 * Checks a request before its body is read: a declared Content-Length over the limit is answered
 * 413 at once (and the connection closed, so a 1 TB upload is never read), and a body that is not
 * JSON (a POST without `Content-Type: application/json`) gets 415 naming the header to send,
 * instead of the parser's "must be a JSON object, got undefined".
 */
export function restBodyGuard(limitBytes: number) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (Number.isFinite(declared) && declared > limitBytes) {
      writeOpenAiError(
        res,
        new DomainError(
          ErrorCode.PayloadTooLarge,
          `the request body is ${declared} bytes; this gateway accepts at most ${limitBytes} ` +
            '(GATEWAY_MAX_BODY_BYTES): send large media by https URL or split the request',
        ),
        { close: true },
      );
      res.once('finish', () => req.socket.destroy());
      return;
    }
    const hasBody = declared > 0 || req.headers['transfer-encoding'] !== undefined;
    if (req.method === 'POST' && hasBody && req.path.startsWith('/v1/') && !req.is('application/json')) {
      const type = req.headers['content-type'];
      writeOpenAiError(
        res,
        new DomainError(
          ErrorCode.UnsupportedMedia,
          `the request body must be JSON: send the header Content-Type: application/json` +
            (type === undefined ? ' (none was sent)' : ` (got ${JSON.stringify(type.slice(0, 100))})`),
        ),
      );
      return;
    }
    next();
  };
}

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
 * Everything a controller did not answer itself (unknown routes, malformed JSON, bodies over the
 * limit) in the same OpenAI shape as the API's own errors. Anything else is a server fault: 500
 * with the generic message, logged with its stack.
 */
@Catch()
export class OpenAiErrorFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const res = http.getResponse<Response>();
    const req = http.getRequest<Request>();
    if (res.headersSent) {
      res.end();
      return;
    }
    const domain = asDomainError(exception, req);
    if (domain === undefined) this.logger.error({ err: exception, path: req.path }, 'unhandled HTTP error');
    else this.logger.info({ code: domain.code, path: req.path.slice(0, 200) }, 'request refused');
    writeOpenAiError(res, domain ?? exception);
  }
}
