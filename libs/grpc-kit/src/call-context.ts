import type { Metadata, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';

type ServerSurfaceCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  REQUEST_ID_KEY,
  acceptRequestId,
  requestLogger,
  traceCarrierOf,
  type Logger,
  type TraceCarrier,
} from '@imagebind-llm/observability';

/** What a handler knows about the call it serves, besides the request message. */
export interface CallContext {
  /** Fully qualified method path, e.g. `/imagebind.gateway.v1.GatewayService/Generate`. */
  readonly method: string;
  /** The caller's `x-request-id` when sane, else a fresh one; echoed in the response headers. */
  readonly requestId: string;
  /** Logger that stamps `requestId` and `method` on every line. */
  readonly logger: Logger;
  /** Absolute deadline in epoch milliseconds; Infinity when the caller set none. */
  readonly deadline: number;
  /**
   * Aborted when the caller cancels or goes away, when the deadline passes, or when the server
   * is force-closed. `signal.reason` is a DomainError saying which. Pass it to every downstream
   * call and long loop so work stops as soon as nobody waits for it.
   */
  readonly signal: AbortSignal;
  /** Incoming metadata (headers). */
  readonly metadata: Metadata;
  /** Peer address as grpc-js reports it. */
  readonly peer: string;
  /**
   * W3C trace context of this call's span (the caller's, when tracing is off here): calls made
   * with this context as their parent carry it, so their spans join the same trace.
   */
  readonly trace?: TraceCarrier;
}

/** The caller's W3C trace context from incoming metadata. */
export function incomingTrace(metadata: Metadata): TraceCarrier {
  return traceCarrierOf((key) => {
    const value = metadata.get(key)[0];
    return typeof value === 'string' ? value : undefined;
  });
}

/** Milliseconds left before the context's deadline (Infinity without one, never negative). */
export function remainingMs(ctx: Pick<CallContext, 'deadline'>, now: number = Date.now()): number {
  return Math.max(0, ctx.deadline - now);
}

/** Throws the abort reason when the context is aborted; call it between steps of long work. */
export function throwIfAborted(ctx: Pick<CallContext, 'signal'>): void {
  if (ctx.signal.aborted) throw abortReason(ctx.signal);
}

export function abortReason(signal: AbortSignal): DomainError {
  const reason: unknown = signal.reason;
  return reason instanceof DomainError
    ? reason
    : new DomainError(ErrorCode.Cancelled, 'the call was cancelled');
}

function deadlineOf(call: ServerSurfaceCall): number {
  const d = call.getDeadline();
  if (d instanceof Date) return d.getTime();
  return Number.isFinite(d) ? d : Infinity;
}

/**
 * Builds the context for one server call and wires its abort signal. Returns a disposer that
 * clears the deadline timer; the wrapper calls it when the handler settles.
 */
export function createCallContext(
  call: ServerSurfaceCall,
  method: string,
  baseLogger: Logger,
  serverSignal: AbortSignal,
): { ctx: CallContext; dispose: () => void } {
  const requestId = acceptRequestId(call.metadata.get(REQUEST_ID_KEY)[0]);
  const deadline = deadlineOf(call);
  const controller = new AbortController();
  const onCancelled = (): void => {
    controller.abort(new DomainError(ErrorCode.Cancelled, 'the client cancelled the call or went away'));
  };
  call.on('cancelled', onCancelled);
  const onServerAbort = (): void => controller.abort(abortReason(serverSignal));
  if (serverSignal.aborted) onServerAbort();
  else serverSignal.addEventListener('abort', onServerAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  if (Number.isFinite(deadline)) {
    const abortAtDeadline = (): void => {
      controller.abort(
        new DomainError(ErrorCode.DeadlineExceeded, 'the call deadline passed before the work finished'),
      );
    };
    const ms = deadline - Date.now();
    if (ms <= 0) abortAtDeadline();
    else timer = setTimeout(abortAtDeadline, ms);
    timer?.unref();
  }
  const ctx: CallContext = {
    method,
    requestId,
    logger: requestLogger(baseLogger, requestId, { method }),
    deadline,
    signal: controller.signal,
    metadata: call.metadata,
    peer: call.getPeer(),
  };
  const dispose = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    call.removeListener('cancelled', onCancelled);
    serverSignal.removeEventListener('abort', onServerAbort);
  };
  return { ctx, dispose };
}
