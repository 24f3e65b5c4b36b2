import {
  InterceptingCall,
  Metadata,
  status as GrpcStatus,
  type InterceptingListener,
  type Interceptor,
  type InterceptorOptions,
  type NextCall,
  type StatusObject,
} from '@grpc/grpc-js';
import { RETRY_AFTER_TRAILER } from '@imagebind-llm/errors';
import { isIdempotent } from '@imagebind-llm/proto';

/** What grpc-js's NextCall returns: one layer of a call (grpc-js does not export the name). */
type CallLayer = ReturnType<NextCall>;

export interface RetryPolicy {
  /** Attempts in total, including the first; 1 turns retries off. */
  readonly maxAttempts: number;
  /** Backoff before the second attempt; doubles each time, with full jitter. */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 4, initialBackoffMs: 50, maxBackoffMs: 2_000 };

export interface RetryInterceptorOptions {
  /** Which methods may be sent again; by default what the contract's idempotency_level says. */
  readonly isIdempotent?: (path: string) => boolean;
  /** Uniform [0, 1) source for the jitter (tests pin it). */
  readonly random?: () => number;
}

/**
 * The platform's one retry mechanism: a grpc-js client interceptor that sends a unary call again
 * when it fails with UNAVAILABLE, if the contract declares the method idempotent
 * (`option idempotency_level`, read through libs/proto). Backoff is exponential with full jitter,
 * and never shorter than the server's `ibllm-retry-after-ms` hint. The call's deadline covers
 * every attempt: a wait that would end past it is not started, and the caller gets the
 * UNAVAILABLE that stopped it rather than a later DEADLINE_EXCEEDED. Cancelling the call cancels
 * the attempt in flight or the pending wait. Every attempt goes through the channel's load
 * balancer, so with `round_robin` a retry lands on the next replica.
 *
 * Why not grpc-js's own `retryPolicy` in the service config: grpc-js commits a call as soon as
 * response headers arrive, and grpc-kit servers send theirs (with the request id) before running
 * the handler, so a replica's MODEL_NOT_READY would never be retried; it also ignores our retry
 * hint and ends with DEADLINE_EXCEEDED when its backoff outlasts the deadline.
 *
 * Server streams are not retried here: resuming one is domain logic (the gateway's Generate
 * resume from the tokens already sent, the SDK's result-stream resume from the last item).
 */
export function retryInterceptor(
  policy: RetryPolicy = DEFAULT_RETRY,
  options: RetryInterceptorOptions = {},
): Interceptor {
  const idempotent = options.isIdempotent ?? isIdempotent;
  const random = options.random ?? Math.random;
  return (callOptions, nextCall) => {
    const method = callOptions.method_definition;
    const retriable =
      policy.maxAttempts > 1 && !method.requestStream && !method.responseStream && idempotent(method.path);
    if (!retriable) return new InterceptingCall(nextCall(callOptions));
    return new InterceptingCall(new RetryingUnaryCall(callOptions, nextCall, policy, random));
  };
}

/** Wait before retry number `retry` (1 = after the first failure), at least the server's hint. */
export function retryBackoffMs(
  policy: RetryPolicy,
  retry: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** (retry - 1));
  return Math.max(Math.floor(random() * ceiling), retryAfterMs ?? 0);
}

function retryHint(metadata: Metadata | undefined): number | undefined {
  const value = Number(metadata?.get(RETRY_AFTER_TRAILER)[0]);
  // A malformed hint is ignored rather than trusted: it only tunes the backoff.
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

function deadlineMs(options: InterceptorOptions): number {
  const { deadline } = options;
  if (deadline === undefined) return Infinity;
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

interface AttemptResult {
  headers: Metadata | undefined;
  /** Set once the attempt delivered its (possibly null) response message. */
  response: { readonly message: unknown } | undefined;
}

/**
 * One unary call made of attempts. grpc-js starts a unary call, sends its one message and
 * half-closes synchronously; the first attempt starts at the half-close. The caller sees the
 * headers, message and status of the last attempt only, so a retried failure leaves no trace.
 */
class RetryingUnaryCall implements CallLayer {
  private metadata = new Metadata();
  private listener: Partial<InterceptingListener> = {};
  private message: unknown;
  private attempt: CallLayer | undefined;
  private attempts = 0;
  private timer: NodeJS.Timeout | undefined;
  private cancelled = false;
  private finished = false;
  private readonly deadline: number;

  constructor(
    private readonly options: InterceptorOptions,
    private readonly nextCall: NextCall,
    private readonly policy: RetryPolicy,
    private readonly random: () => number,
  ) {
    this.deadline = deadlineMs(options);
  }

  start(metadata: Metadata, listener?: Partial<InterceptingListener>): void {
    this.metadata = metadata;
    this.listener = listener ?? {};
  }

  sendMessageWithContext(_context: unknown, message: unknown): void {
    this.message = message;
  }

  sendMessage(message: unknown): void {
    this.message = message;
  }

  halfClose(): void {
    if (!this.cancelled && this.attempt === undefined) this.startAttempt();
  }

  startRead(): void {
    // Each unary attempt reads its own response.
  }

  cancelWithStatus(code: GrpcStatus, details: string): void {
    this.cancelled = true;
    if (this.attempt !== undefined && this.timer === undefined) {
      this.attempt.cancelWithStatus(code, details);
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.finish({ headers: undefined, response: undefined }, { code, details, metadata: new Metadata() });
  }

  getPeer(): string {
    return this.attempt?.getPeer() ?? '';
  }

  getAuthContext(): ReturnType<CallLayer['getAuthContext']> {
    return this.attempt?.getAuthContext() ?? null;
  }

  private startAttempt(): void {
    this.attempts++;
    const result: AttemptResult = { headers: undefined, response: undefined };
    const call = this.nextCall(this.options);
    this.attempt = call;
    call.start(this.metadata.clone(), {
      onReceiveMetadata: (headers) => (result.headers = headers),
      onReceiveMessage: (message) => (result.response = { message }),
      onReceiveStatus: (status) => this.onAttemptStatus(result, status),
    });
    call.sendMessage(this.message);
    call.halfClose();
  }

  private onAttemptStatus(result: AttemptResult, status: StatusObject): void {
    if (
      status.code !== GrpcStatus.UNAVAILABLE ||
      this.cancelled ||
      this.attempts >= this.policy.maxAttempts
    ) {
      this.finish(result, status);
      return;
    }
    const wait = retryBackoffMs(this.policy, this.attempts, retryHint(status.metadata), this.random);
    // Sleeping past the deadline only to fail with DEADLINE_EXCEEDED would hide the real cause.
    if (Date.now() + wait >= this.deadline) {
      this.finish(result, status);
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.startAttempt();
    }, wait);
  }

  private finish(result: AttemptResult, status: StatusObject): void {
    if (this.finished) return;
    this.finished = true;
    if (result.headers !== undefined) this.listener.onReceiveMetadata?.(result.headers);
    if (result.response !== undefined) this.listener.onReceiveMessage?.(result.response.message);
    this.listener.onReceiveStatus?.(status);
  }
}
