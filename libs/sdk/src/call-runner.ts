import { randomUUID } from 'node:crypto';
import { Metadata, type Client, type ClientReadableStream } from '@grpc/grpc-js';
import { isIdempotent } from '@imagebind-llm/proto';
import { backoffDelay, cancelledError, sleep } from './backoff';
import { checkTimeout, type RetryOptions } from './client-options';
import { fromServiceError, ImageBindError } from './image-bind-error';

/** Per-call settings every client method accepts. */
export interface CallOptions {
  /** Aborting it cancels the call (also on the server); the call then fails with CANCELLED. */
  readonly signal?: AbortSignal;
  /** Deadline for this call in milliseconds, covering retries; overrides the client default. */
  readonly timeoutMs?: number;
  /** `x-request-id` to send; a UUID is generated otherwise. Retries reuse it. */
  readonly requestId?: string;
  /**
   * W3C trace context (`traceparent`, optionally `tracestate`) to send, so the server's spans join
   * the caller's trace, e.g. from OpenTelemetry's `propagation.inject`. Other keys are ignored.
   */
  readonly traceContext?: Readonly<Record<string, string>>;
}

/** The parts of a ts-proto grpc-js method definition a call needs. */
export interface MethodDefinition<Req, Res> {
  readonly path: string;
  readonly requestSerialize: (value: Req) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => Res;
}

/**
 * Decides whether a broken stream may be restarted, and with which request: `undefined` means
 * no. `last` is the last message received before the break, if any.
 */
export type ResumeStrategy<Req, Res> = (last: Res | undefined) => Req | undefined;

interface PreparedCall {
  readonly requestId: string;
  readonly traceContext: Readonly<Record<string, string>>;
  /** Absolute deadline in ms since the epoch; Infinity for none. */
  readonly deadline: number;
  readonly signal: AbortSignal | undefined;
}

export interface CallRunnerSettings {
  readonly channels: readonly Client[];
  readonly apiKey: string | undefined;
  readonly retry: RetryOptions;
  readonly isClosed: () => boolean;
}

/**
 * Runs calls over the client's channels: metadata (request id, API key), deadlines, abort
 * signals, retries with backoff, and the mapping of every failure to ImageBindError.
 */
export class CallRunner {
  private next = 0;

  constructor(private readonly settings: CallRunnerSettings) {}

  /**
   * A unary call. If the contract declares the method idempotent (its `idempotency_level`, the
   * same source the platform's own clients retry by), UNAVAILABLE answers are retried with
   * backoff while attempts and the deadline last; any other method is sent once.
   */
  async unary<Req, Res>(
    method: MethodDefinition<Req, Res>,
    request: Req,
    options: CallOptions | undefined,
    defaultTimeoutMs: number,
  ): Promise<Res> {
    const call = this.prepare(options, defaultTimeoutMs);
    const retry = isIdempotent(method.path);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.unaryAttempt(method, request, call);
      } catch (error) {
        const failure = this.toError(error, call);
        if (!retry) throw failure;
        await this.beforeRetry(failure, attempt, call);
      }
    }
  }

  /**
   * A server-streaming call as an async generator. Leaving the loop early, or aborting the signal,
   * cancels the call on the server. An UNAVAILABLE break is retried when `resume` gives a request;
   * receiving a message resets the attempt count, since the stream made progress.
   */
  async *stream<Req, Res>(
    method: MethodDefinition<Req, Res>,
    request: Req,
    options: CallOptions | undefined,
    defaultTimeoutMs: number,
    resume: ResumeStrategy<Req, Res>,
  ): AsyncGenerator<Res, void, undefined> {
    const prepared = this.prepare(options, defaultTimeoutMs);
    let current = request;
    let last: Res | undefined;
    let failures = 0;
    for (;;) {
      this.assertUsable(prepared);
      const call: ClientReadableStream<Res> = this.pick().makeServerStreamRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        current,
        this.metadata(prepared),
        Number.isFinite(prepared.deadline) ? { deadline: prepared.deadline } : {},
      );
      let finished = false;
      call.on('status', () => (finished = true));
      // grpc-js emits 'error' even after the consumer stopped reading (e.g. after our own cancel),
      // and an 'error' emit with no listener throws. Node's stream iterator happens to leave one
      // attached today; this one makes it not depend on that.
      call.on('error', () => undefined);
      const onAbort = (): void => call.cancel();
      prepared.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const message of call as AsyncIterable<Res>) {
          last = message;
          failures = 0;
          yield message;
        }
        return;
      } catch (error) {
        const failure = this.toError(error, prepared);
        const next = failure.code === 'UNAVAILABLE' ? resume(last) : undefined;
        if (next === undefined) throw failure;
        failures++;
        await this.beforeRetry(failure, failures, prepared);
        current = next;
      } finally {
        prepared.signal?.removeEventListener('abort', onAbort);
        if (!finished) call.cancel();
      }
    }
  }

  private async unaryAttempt<Req, Res>(
    method: MethodDefinition<Req, Res>,
    request: Req,
    prepared: PreparedCall,
  ): Promise<Res> {
    this.assertUsable(prepared);
    const { signal } = prepared;
    return new Promise<Res>((resolve, reject) => {
      const onAbort = (): void => call.cancel();
      const call = this.pick().makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        this.metadata(prepared),
        Number.isFinite(prepared.deadline) ? { deadline: prepared.deadline } : {},
        (error, response) => {
          signal?.removeEventListener('abort', onAbort);
          if (error !== null || response === undefined) reject(error ?? new Error('empty response'));
          else resolve(response);
        },
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Throws `failure` unless another attempt is allowed; otherwise waits the backoff. */
  private async beforeRetry(failure: ImageBindError, attempt: number, prepared: PreparedCall): Promise<void> {
    const policy = this.settings.retry;
    if (failure.code !== 'UNAVAILABLE' || attempt >= policy.maxAttempts) throw failure;
    const delay = backoffDelay(policy, attempt, failure.retryAfterMs);
    // Sleeping past the deadline only to fail with DEADLINE_EXCEEDED would hide the real cause.
    if (Date.now() + delay >= prepared.deadline) throw failure;
    await sleep(delay, prepared.signal, prepared.requestId);
  }

  private toError(error: unknown, prepared: PreparedCall): ImageBindError {
    if (error instanceof ImageBindError) return error;
    if (prepared.signal?.aborted === true) return cancelledError(prepared.signal, prepared.requestId);
    return fromServiceError(error, prepared.requestId);
  }

  private prepare(options: CallOptions | undefined, defaultTimeoutMs: number): PreparedCall {
    const requestId = options?.requestId ?? randomUUID();
    if (typeof requestId !== 'string' || requestId === '' || /[\r\n]/.test(requestId)) {
      throw ImageBindError.invalidArgument('requestId must be a non-empty single-line string', 'requestId');
    }
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw ImageBindError.invalidArgument(
        'signal must be an AbortSignal (e.g. from new AbortController())',
        'signal',
      );
    }
    const timeoutMs = checkTimeout(options?.timeoutMs ?? defaultTimeoutMs, 'timeoutMs');
    const traceContext: Record<string, string> = {};
    for (const key of ['traceparent', 'tracestate'] as const) {
      const value = options?.traceContext?.[key];
      if (typeof value === 'string' && value !== '' && !/[\r\n]/.test(value)) traceContext[key] = value;
    }
    return { requestId, deadline: Date.now() + timeoutMs, signal, traceContext };
  }

  private assertUsable(prepared: PreparedCall): void {
    if (this.settings.isClosed()) {
      throw new ImageBindError({
        code: 'FAILED_PRECONDITION',
        details: 'the client is closed; create a new ImageBindClient',
        requestId: prepared.requestId,
      });
    }
    if (prepared.signal?.aborted === true) throw cancelledError(prepared.signal, prepared.requestId);
  }

  private metadata(prepared: PreparedCall): Metadata {
    const metadata = new Metadata();
    metadata.set('x-request-id', prepared.requestId);
    for (const [key, value] of Object.entries(prepared.traceContext)) metadata.set(key, value);
    if (this.settings.apiKey !== undefined) metadata.set('authorization', `Bearer ${this.settings.apiKey}`);
    return metadata;
  }

  /** Rotates calls through the channels; one channel balances its own addresses. */
  private pick(): Client {
    const { channels } = this.settings;
    const channel = channels[this.next % channels.length]!;
    this.next = (this.next + 1) % channels.length;
    return channel;
  }
}
