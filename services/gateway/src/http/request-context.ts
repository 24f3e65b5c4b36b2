import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  acceptRequestId,
  getTracer,
  REQUEST_ID_KEY,
  traceCarrierOf,
  type Logger,
  type TraceCarrier,
} from '@imagebind-llm/observability';
import type { Request, Response } from 'express';
import type { HopContext } from '@imagebind-llm/serving/platform';

/**
 * What a REST handler knows about its call: the request id (echoed in `x-request-id`), a logger
 * that stamps it, the span's trace context, a signal that aborts when the HTTP client goes away,
 * and the tenant that admission (ApiKeyGuard) resolved. It is the HopContext of the work behind it.
 */
export interface RestContext extends HopContext {
  readonly tenant: string;
  /** The REST path of each input of the parsed body, once the handler has told (withInputs). */
  readonly inputPaths: readonly string[] | undefined;
  /**
   * Records where each input of a parsed request came from, so that an error the services report
   * about `inputs[i]` names the content part the client wrote (the error filter reads it).
   */
  withInputs<T extends { readonly inputPaths: readonly string[] }>(parsed: T): T;
}

/** The first value of a request header. */
export function headerOf(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

class RestCall implements RestContext {
  readonly deadline = Infinity;
  tenant = '';
  inputPaths: readonly string[] | undefined;

  constructor(
    readonly requestId: string,
    readonly logger: Logger,
    readonly signal: AbortSignal,
    readonly trace: TraceCarrier,
  ) {}

  withInputs<T extends { readonly inputPaths: readonly string[] }>(parsed: T): T {
    this.inputPaths = parsed.inputPaths;
    return parsed;
  }
}

const CALLS = new WeakMap<Request, RestCall>();

/**
 * Opens the REST call of a request, once (the guards of a route share it): accepts the client's
 * request id or makes one and echoes it, starts the request's span (a child of the client's W3C
 * trace context when it sent one; every hop behind the gateway joins the trace through
 * `ctx.trace`), and aborts the call's signal when the client goes away before the answer is done.
 */
export function openRestCall(req: Request, res: Response, logger: Logger): RestCall {
  const open = CALLS.get(req);
  if (open !== undefined) return open;
  const requestId = acceptRequestId(headerOf(req, REQUEST_ID_KEY));
  res.setHeader(REQUEST_ID_KEY, requestId);
  const controller = new AbortController();
  const span = getTracer().startSpan(`${req.method} ${req.path}`, {
    kind: 'server',
    parent: traceCarrierOf((name) => headerOf(req, name)),
    attributes: { 'http.request.method': req.method, 'url.path': req.path, 'request.id': requestId },
  });
  res.on('close', () => {
    if (!res.writableFinished) {
      controller.abort(new DomainError(ErrorCode.Cancelled, 'the HTTP client went away'));
    }
    span.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 500) span.recordError(new Error(`answered HTTP ${res.statusCode}`));
    span.end();
  });
  const call = new RestCall(
    requestId,
    logger.child({ requestId, method: `${req.method} ${req.path}` }),
    controller.signal,
    span.carrier,
  );
  CALLS.set(req, call);
  return call;
}

/** The REST call opened for a request, if a guard opened one (the error filter's view). */
export function restContextOf(req: Request): RestContext | undefined {
  return CALLS.get(req);
}

/** Sets the tenant admission resolved. */
export function admitTenant(req: Request, tenant: string): void {
  const call = CALLS.get(req);
  if (call !== undefined) call.tenant = tenant;
}

/** The handler's RestContext: `@RequestContext() ctx: RestContext` on a route under ApiKeyGuard. */
export const RequestContext = createParamDecorator((_data: unknown, host: ExecutionContext): RestContext => {
  const call = CALLS.get(host.switchToHttp().getRequest<Request>());
  // A programming error (a route without the guard), not a client's: the filter answers 500.
  if (call === undefined) throw new Error('no REST call context: guard the route with ApiKeyGuard');
  return call;
});
