import {
  credentials,
  Metadata,
  status as GrpcStatus,
  type CallOptions,
  type ChannelOptions,
  type Client,
  type ClientOptions,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { REQUEST_ID_KEY, newRequestId } from '@imagebind-llm/observability';
import type { CallContext } from './call-context';
import { fromGrpcError } from './grpc-status';
import { DEFAULT_RETRY, retryInterceptor, type RetryPolicy } from './retry';

/** Client constructor as ts-proto generates it. */
export type GeneratedClientConstructor<C extends Client> = new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options?: Partial<ClientOptions>,
) => C;

export interface ClientFactoryOptions {
  /** Largest message accepted from the server, in bytes. */
  readonly maxReceiveMessageBytes?: number;
  /** Extra grpc-js channel options. */
  readonly channelOptions?: ChannelOptions;
  /**
   * Retries of the methods the contract declares idempotent, on UNAVAILABLE (see
   * `retryInterceptor`); `false` sends every call once. Default {@link DEFAULT_RETRY}.
   */
  readonly retry?: RetryPolicy | false;
}

/**
 * Creates a generated client for `target`. A `dns:///name:port` target resolves every address of a
 * headless Kubernetes Service and balances calls `round_robin` across them (HTTP/2 connections
 * stick to one pod otherwise). Idempotent unary methods are retried by the client's interceptor,
 * so callers never wrap calls in retry loops of their own.
 */
export function createClient<C extends Client>(
  Ctor: GeneratedClientConstructor<C>,
  target: string,
  options: ClientFactoryOptions = {},
): C {
  return new Ctor(target, credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? 64 * 1024 * 1024,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    ...options.channelOptions,
    interceptors: options.retry === false ? [] : [retryInterceptor(options.retry ?? DEFAULT_RETRY)],
  });
}

export interface CallSettings {
  /** Timeout for this call in milliseconds; capped by the parent context's deadline. */
  readonly timeoutMs?: number;
  /** The server call this client call serves: its deadline, request id and cancellation carry over. */
  readonly parent?: Pick<CallContext, 'deadline' | 'signal' | 'requestId' | 'trace'>;
  /** Abort signal when there is no parent context. */
  readonly signal?: AbortSignal;
  /** Extra metadata entries. */
  readonly metadata?: Readonly<Record<string, string>>;
}

interface PreparedCall {
  readonly metadata: Metadata;
  readonly options: Partial<CallOptions>;
  readonly signals: AbortSignal[];
}

function prepare(settings: CallSettings): PreparedCall {
  const metadata = new Metadata();
  metadata.set(REQUEST_ID_KEY, settings.parent?.requestId ?? newRequestId());
  // The parent's trace context: the server's span becomes a child of the caller's.
  for (const [key, value] of Object.entries(settings.parent?.trace ?? {})) metadata.set(key, value);
  for (const [key, value] of Object.entries(settings.metadata ?? {})) metadata.set(key, value);
  let deadline = settings.parent?.deadline ?? Infinity;
  if (settings.timeoutMs !== undefined) deadline = Math.min(deadline, Date.now() + settings.timeoutMs);
  const options: Partial<CallOptions> = Number.isFinite(deadline) ? { deadline: new Date(deadline) } : {};
  const signals = [settings.parent?.signal, settings.signal].filter((s): s is AbortSignal => s !== undefined);
  return { metadata, options, signals };
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/**
 * Calls a unary method and resolves with its response. Errors come back as DomainErrors (the
 * server's domain code is read from its trailers), so a service can pass them on unchanged.
 */
export async function callUnary<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  settings: CallSettings = {},
): Promise<Res> {
  const { metadata, options, signals } = prepare(settings);
  return new Promise<Res>((resolve, reject) => {
    const aborted = signals.find((s) => s.aborted);
    if (aborted !== undefined) {
      reject(new DomainError(ErrorCode.Cancelled, 'the call was cancelled before it started'));
      return;
    }
    const onAbort = (): void => call.cancel();
    const call = method(request, metadata, options, (error, response) => {
      for (const s of signals) s.removeEventListener('abort', onAbort);
      if (error) reject(fromGrpcError(error));
      else resolve(response);
    });
    for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
  });
}

type ServerStreamMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
) => ClientReadableStream<Res>;

/**
 * Calls a server-streaming method and yields its messages. Breaking out of the loop (or aborting
 * the signal) cancels the call on the server.
 */
export async function* callServerStream<Req, Res>(
  method: ServerStreamMethod<Req, Res>,
  request: Req,
  settings: CallSettings = {},
): AsyncGenerator<Res, void, undefined> {
  const { metadata, options, signals } = prepare(settings);
  if (signals.some((s) => s.aborted)) {
    throw new DomainError(ErrorCode.Cancelled, 'the call was cancelled before it started');
  }
  const call = method(request, metadata, options);
  const onAbort = (): void => call.cancel();
  for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const message of call as AsyncIterable<Res>) yield message;
  } catch (error) {
    throw fromGrpcError(error);
  } finally {
    for (const s of signals) s.removeEventListener('abort', onAbort);
    call.cancel();
  }
}

/** gRPC status name for logs and metrics. */
export function grpcStatusName(code: number): string {
  return GrpcStatus[code] ?? String(code);
}
