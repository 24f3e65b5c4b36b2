import {
  credentials,
  Metadata,
  status as GrpcStatus,
  type CallOptions,
  type ChannelOptions,
  type Client,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { DomainError, ErrorCode, fromGrpcError } from '@imagebind-llm/errors';
import { REQUEST_ID_KEY, newRequestId } from '@imagebind-llm/observability';
import type { CallContext } from './call-context';

/** Client constructor as ts-proto generates it. */
export type GeneratedClientConstructor<C extends Client> = new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options?: Partial<ChannelOptions>,
) => C;

export interface ClientFactoryOptions {
  /** Largest message accepted from the server, in bytes. */
  readonly maxReceiveMessageBytes?: number;
  /** Extra grpc-js channel options. */
  readonly channelOptions?: ChannelOptions;
}

/**
 * Creates a generated client for `target`. A `dns:///name:port` target resolves every address of a
 * headless Kubernetes Service and balances calls `round_robin` across them (HTTP/2 connections
 * stick to one pod otherwise).
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

export interface RetryPolicy {
  /** Attempts in total, including the first. */
  readonly maxAttempts: number;
  /** Backoff before the second attempt; doubles each time, with full jitter. */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 4, initialBackoffMs: 50, maxBackoffMs: 2_000 };

const RETRY_ON: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.DependencyUnavailable,
  ErrorCode.ModelNotReady,
]);

/**
 * Runs an idempotent call (encode, search, project) with retries on UNAVAILABLE, backing off with
 * full jitter and never past the caller's deadline or abort. Non-idempotent calls must not use it.
 */
export async function withRetry<T>(
  attempt: () => Promise<T>,
  policy: RetryPolicy = DEFAULT_RETRY,
  settings: Pick<CallSettings, 'parent' | 'signal'> = {},
  random: () => number = Math.random,
): Promise<T> {
  const deadline = settings.parent?.deadline ?? Infinity;
  const signal = settings.parent?.signal ?? settings.signal;
  let backoff = policy.initialBackoffMs;
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      const domain = fromGrpcError(error);
      const wait = Math.floor(random() * backoff);
      const retryable = RETRY_ON.has(domain.code) && n < policy.maxAttempts;
      if (!retryable || signal?.aborted === true || Date.now() + wait >= deadline) throw domain;
      await new Promise<void>((resolve) => {
        const onAbort = (): void => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }, wait);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      backoff = Math.min(backoff * 2, policy.maxBackoffMs);
    }
  }
}

/** gRPC status name for logs and metrics. */
export function grpcStatusName(code: number): string {
  return GrpcStatus[code] ?? String(code);
}
