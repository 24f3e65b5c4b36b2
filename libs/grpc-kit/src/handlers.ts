import { once } from 'node:events';
import {
  Metadata,
  status as GrpcStatus,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { DomainError } from '@imagebind-llm/errors';
import {
  getTracer,
  REQUEST_ID_KEY,
  type Logger,
  type ServiceMetrics,
  type Span,
} from '@imagebind-llm/observability';
import { abortReason, createCallContext, incomingTrace, type CallContext } from './call-context';
import { toGrpcStatus } from './grpc-status';

/** The shape of one method in a ts-proto `outputServices=grpc-js` service definition. */
export interface MethodDefinitionLike {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly requestDeserialize: (bytes: Buffer) => unknown;
  readonly responseSerialize: (value: never) => Buffer;
}

export type ServiceDefinitionLike = Readonly<Record<string, MethodDefinitionLike>>;

type RequestOf<M> = M extends { requestDeserialize: (bytes: Buffer) => infer R } ? R : never;
type ResponseOf<M> = M extends { responseSerialize: (value: infer R) => Buffer } ? R : never;

/** A unary handler: resolves with the response or throws (a DomainError, ideally). */
export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;
/** A server-streaming handler: yields response messages; the stream ends when it returns. */
export type ServerStreamHandler<Req, Res> = (request: Req, ctx: CallContext) => AsyncIterable<Res>;

/** Handlers for every method of a service definition, typed from the generated code. */
export type ServiceHandlers<D extends ServiceDefinitionLike> = {
  readonly [K in keyof D]: D[K] extends { requestStream: false; responseStream: false }
    ? UnaryHandler<RequestOf<D[K]>, ResponseOf<D[K]>>
    : D[K] extends { requestStream: false; responseStream: true }
      ? ServerStreamHandler<RequestOf<D[K]>, ResponseOf<D[K]>>
      : never; // client and bidirectional streams are not used by our contracts
};

export interface HandlerEnvironment {
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  /** Aborted when the server is force-closed; every in-flight call is aborted with it. */
  readonly serverSignal: AbortSignal;
}

interface MethodLabels {
  grpc_type: 'unary' | 'server_stream';
  grpc_service: string;
  grpc_method: string;
}

function labelsOf(path: string, type: MethodLabels['grpc_type']): MethodLabels {
  const [, service = '', method = ''] = path.split('/');
  return { grpc_type: type, grpc_service: service, grpc_method: method };
}

function statusName(code: number): string {
  return GrpcStatus[code] ?? String(code);
}

/**
 * What a method's request deserializer returns instead of throwing. grpc-js answers a throwing
 * deserializer with INTERNAL "Error deserializing request", which blames the server for the
 * client's bytes; the handler wrapper turns this into INVALID_ARGUMENT instead.
 */
export class UndecodableRequest {
  constructor(
    readonly path: string,
    readonly cause: unknown,
  ) {}

  toError(): DomainError {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause);
    // ts-proto with forceLong=number refuses 64-bit integers a double cannot hold exactly.
    if (/MAX_SAFE_INTEGER|MIN_SAFE_INTEGER/.test(reason)) {
      return DomainError.invalidInput(
        `a 64-bit integer field (such as sampling.seed) is out of range: this API accepts ` +
          `0..${Number.MAX_SAFE_INTEGER} (2^53 - 1) in uint64 fields`,
      );
    }
    return DomainError.invalidInput(
      `the request bytes are not a valid protobuf message for ${this.path}: ${reason}`,
    );
  }
}

/** The same method definition whose request deserializer never throws (see UndecodableRequest). */
export function tolerantMethod<M extends MethodDefinitionLike>(method: M): M {
  const decode = method.requestDeserialize;
  return {
    ...method,
    requestDeserialize: (bytes: Buffer): unknown => {
      try {
        return decode(bytes);
      } catch (error) {
        return new UndecodableRequest(method.path, error);
      }
    },
  };
}

/** Logs a failed call: expected domain errors quietly, anything else loudly with its stack. */
function logFailure(ctx: CallContext, error: unknown): void {
  if (error instanceof DomainError) {
    ctx.logger.info({ code: error.code, details: error.details }, error.message);
  } else {
    ctx.logger.error({ err: error }, 'unhandled error in gRPC handler; returned INTERNAL');
  }
}

/**
 * The server span of one call, a child of the caller's (W3C trace context in the metadata), and
 * the call's context carrying it on to the calls the handler makes.
 */
function serverSpan(
  call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
  labels: MethodLabels,
  ctx: CallContext,
): { span: Span; traced: CallContext } {
  const span = getTracer().startSpan(`${labels.grpc_service}/${labels.grpc_method}`, {
    kind: 'server',
    parent: incomingTrace(call.metadata),
    attributes: {
      'rpc.system': 'grpc',
      'rpc.service': labels.grpc_service,
      'rpc.method': labels.grpc_method,
      'request.id': ctx.requestId,
    },
  });
  return { span, traced: { ...ctx, trace: span.carrier } };
}

/** Ends a server span with the call's status (and its error, when it failed). */
function endSpan(span: Span, code: number, error?: unknown): void {
  span.setAttribute('rpc.grpc.status_code', code);
  if (error !== undefined && code !== (GrpcStatus.OK as number)) span.recordError(error);
  span.end();
}

function headersFor(ctx: CallContext): Metadata {
  const md = new Metadata();
  md.set(REQUEST_ID_KEY, ctx.requestId);
  return md;
}

/**
 * Opens the bookkeeping of one call: its context (carrying the server span), the started counter,
 * the handling timer and the request-id response header. `finish` closes it with the call's status.
 */
function startCall(
  call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
  method: MethodDefinitionLike,
  labels: MethodLabels,
  env: HandlerEnvironment,
): { ctx: CallContext; finish: (code: number, error?: unknown) => void } {
  const created = createCallContext(call, method.path, env.logger, env.serverSignal);
  const { dispose } = created;
  const { span, traced: ctx } = serverSpan(call, labels, created.ctx);
  env.metrics.grpcServerStarted.inc(labels);
  const stopTimer = env.metrics.grpcServerHandlingSeconds.startTimer(labels);
  call.sendMetadata(headersFor(ctx));
  const finish = (code: number, error?: unknown): void => {
    dispose();
    stopTimer();
    env.metrics.grpcServerHandled.inc({ ...labels, grpc_code: statusName(code) });
    endSpan(span, code, error);
  };
  return { ctx, finish };
}

function wrapUnary(
  method: MethodDefinitionLike,
  handler: UnaryHandler<unknown, unknown>,
  env: HandlerEnvironment,
): (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => void {
  const labels = labelsOf(method.path, 'unary');
  return (call, callback) => {
    const { ctx, finish } = startCall(call, method, labels, env);
    // The async wrapper turns a synchronous throw into a rejection, handled like any other.
    const promise = (async () => handler(call.request, ctx))();
    promise.then(
      (response) => {
        if (ctx.signal.aborted) {
          const reason = abortReason(ctx.signal);
          const status = toGrpcStatus(reason, ctx.requestId);
          finish(status.code ?? GrpcStatus.UNKNOWN, reason);
          callback(status);
          return;
        }
        finish(GrpcStatus.OK);
        callback(null, response);
      },
      (error: unknown) => {
        logFailure(ctx, error);
        const status = toGrpcStatus(error, ctx.requestId);
        finish(status.code ?? GrpcStatus.UNKNOWN, error);
        callback(status);
      },
    );
  };
}

function wrapServerStream(
  method: MethodDefinitionLike,
  handler: ServerStreamHandler<unknown, unknown>,
  env: HandlerEnvironment,
): (call: ServerWritableStream<unknown, unknown>) => void {
  const labels = labelsOf(method.path, 'server_stream');
  return (call) => {
    const { ctx, finish } = startCall(call, method, labels, env);
    const run = async (): Promise<void> => {
      for await (const message of handler(call.request, ctx)) {
        if (ctx.signal.aborted) throw abortReason(ctx.signal);
        env.metrics.grpcServerMsgSent.inc(labels);
        if (!call.write(message)) {
          // Respect HTTP/2 flow control: wait until the client has read what we sent, or give up
          // when the call is aborted.
          await once(call, 'drain', { signal: ctx.signal }).catch(() => {
            throw abortReason(ctx.signal);
          });
        }
      }
      if (ctx.signal.aborted) throw abortReason(ctx.signal);
    };
    run().then(
      () => {
        finish(GrpcStatus.OK);
        call.end();
      },
      (error: unknown) => {
        logFailure(ctx, error);
        const status = toGrpcStatus(error, ctx.requestId);
        finish(status.code ?? GrpcStatus.UNKNOWN, error);
        call.emit('error', status);
      },
    );
  };
}

/**
 * Builds a grpc-js implementation from typed handlers. Every call gets a CallContext (request id,
 * deadline, abort signal), the request id is echoed in the response headers, metrics are recorded,
 * and thrown errors are mapped to statuses by `toGrpcStatus` (non-domain errors become INTERNAL
 * and are logged with their stack). Register the definition through `tolerantMethod` so request
 * bytes that do not decode reach the handler wrapper and answer INVALID_ARGUMENT.
 */
export function implementService<D extends ServiceDefinitionLike>(
  definition: D,
  handlers: ServiceHandlers<D>,
  env: HandlerEnvironment,
): UntypedServiceImplementation {
  const implementation: UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = (handlers as Record<string, unknown>)[name];
    if (typeof handler !== 'function') {
      throw new Error(`no handler for ${method.path}`);
    }
    if (method.requestStream) {
      throw new Error(`${method.path}: client-streaming methods are not supported by grpc-kit`);
    }
    if (method.responseStream) {
      const stream = handler as ServerStreamHandler<unknown, unknown>;
      const guarded = async function* (request: unknown, ctx: CallContext): AsyncIterable<unknown> {
        if (request instanceof UndecodableRequest) throw request.toError();
        yield* stream(request, ctx);
      };
      implementation[name] = wrapServerStream(method, guarded, env);
    } else {
      const unary = handler as UnaryHandler<unknown, unknown>;
      const guarded = async (request: unknown, ctx: CallContext): Promise<unknown> => {
        if (request instanceof UndecodableRequest) throw request.toError();
        return unary(request, ctx);
      };
      implementation[name] = wrapUnary(method, guarded, env);
    }
  }
  return implementation;
}
