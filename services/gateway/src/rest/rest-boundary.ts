import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { NextFunction, Request, Response } from 'express';
import { toOpenAiError, type OpenAiErrorResponse } from './openai-format';

/** Writes an error in OpenAI's shape (`{"error": {message, type, param, code}}`) with its headers. */
export function writeOpenAiError(res: Response, error: unknown, options: { close?: boolean } = {}): void {
  writeErrorResponse(res, toOpenAiError(error), options);
}

/** Writes an error answer made by toOpenAiError. */
export function writeErrorResponse(
  res: Response,
  answer: OpenAiErrorResponse,
  options: { close?: boolean } = {},
): void {
  for (const [name, value] of Object.entries(answer.headers)) res.setHeader(name, value);
  if (options.close === true) res.setHeader('connection', 'close');
  res.status(answer.status).json(answer.body);
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
