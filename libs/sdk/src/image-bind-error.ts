import { Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import { ERROR_CODE_TRAILER, ERROR_FIELD_TRAILER, RETRY_AFTER_TRAILER } from '@imagebind-llm/errors';

/** gRPC status names, e.g. `'INVALID_ARGUMENT'`, `'UNAVAILABLE'`. */
export type GrpcStatusName = keyof typeof GrpcStatus;

/** Everything an {@link ImageBindError} carries besides its message. */
export interface ImageBindErrorInit {
  /** gRPC status name. */
  readonly code: GrpcStatusName;
  /** What went wrong, as the server (or the SDK) said it. */
  readonly details: string;
  /** Stable domain code from the `ibllm-error-code` trailer, e.g. `'INVALID_INPUT'`. */
  readonly domainCode?: string;
  /** Path of the offending request field from the `ibllm-error-field` trailer, e.g. `inputs[0].weight`. */
  readonly field?: string;
  /** Milliseconds after which a retry may succeed, from the `ibllm-retry-after-ms` trailer. */
  readonly retryAfterMs?: number;
  /** The `x-request-id` the call was sent with: quote it when reporting a problem. */
  readonly requestId?: string;
  /** Trailing metadata of the failed call, when there was a call. */
  readonly metadata?: Metadata;
  readonly cause?: unknown;
}

/**
 * The one error type the SDK throws: failed calls, deadlines, cancellations and bad arguments
 * caught before sending. Branch on `code` (the gRPC status name) for transport-level handling and
 * on `domainCode` for the platform's finer reasons (`CONTEXT_OVERFLOW`, `RATE_LIMITED`, ...).
 */
export class ImageBindError extends Error {
  override readonly name = 'ImageBindError';
  /** gRPC status name, e.g. `'INVALID_ARGUMENT'`. */
  readonly code: GrpcStatusName;
  /** Numeric gRPC status code, e.g. `3` for INVALID_ARGUMENT. */
  readonly grpcCode: number;
  /** The status message without the decorations `message` adds. */
  readonly details: string;
  /** Stable domain code sent by the platform (`ibllm-error-code`), when it sent one. */
  readonly domainCode: string | undefined;
  /** Offending request field (`ibllm-error-field`), when known. */
  readonly field: string | undefined;
  /** Server's retry hint in milliseconds (`ibllm-retry-after-ms`), when it gave one. */
  readonly retryAfterMs: number | undefined;
  /** The call's `x-request-id`. */
  readonly requestId: string | undefined;
  /** Trailing metadata of the failed call. */
  readonly metadata: Metadata | undefined;

  constructor(init: ImageBindErrorInit) {
    super(describe(init), init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.grpcCode = GrpcStatus[init.code];
    this.details = init.details;
    this.domainCode = init.domainCode;
    this.field = init.field;
    this.retryAfterMs = init.retryAfterMs;
    this.requestId = init.requestId;
    this.metadata = init.metadata;
  }

  /** An argument the SDK refuses before sending anything; `field` names it. */
  static invalidArgument(details: string, field?: string, cause?: unknown): ImageBindError {
    return new ImageBindError({
      code: 'INVALID_ARGUMENT',
      details,
      domainCode: 'INVALID_INPUT',
      ...(field === undefined ? {} : { field }),
      ...(cause === undefined ? {} : { cause }),
    });
  }

  /**
   * What a call aborted through its AbortSignal fails with (CANCELLED; `cause` is the signal's
   * reason), also for a call that had not been sent yet.
   */
  static aborted(signal: AbortSignal, requestId?: string): ImageBindError {
    return new ImageBindError({
      code: 'CANCELLED',
      details: 'the call was aborted by its AbortSignal',
      domainCode: 'CANCELLED',
      ...(requestId === undefined ? {} : { requestId }),
      cause: signal.reason,
    });
  }
}

export function isImageBindError(error: unknown): error is ImageBindError {
  return error instanceof ImageBindError;
}

function describe(init: ImageBindErrorInit): string {
  const notes: string[] = [];
  if (init.field !== undefined) notes.push(`field ${init.field}`);
  if (init.retryAfterMs !== undefined) notes.push(`retry after ${init.retryAfterMs} ms`);
  if (init.requestId !== undefined) notes.push(`request id ${init.requestId}`);
  return `${init.code}: ${init.details}${notes.length === 0 ? '' : ` (${notes.join(', ')})`}`;
}

/** The name of a numeric gRPC status; anything unknown is UNKNOWN, as gRPC itself treats it. */
export function grpcStatusName(code: number): GrpcStatusName {
  const name: unknown = (GrpcStatus as unknown as Record<number, unknown>)[code];
  return typeof name === 'string' ? (name as GrpcStatusName) : 'UNKNOWN';
}

interface ServiceErrorLike {
  readonly code?: unknown;
  readonly details?: unknown;
  readonly message?: unknown;
  readonly metadata?: unknown;
}

/**
 * Turns whatever a grpc-js call failed with into an ImageBindError, reading the platform's
 * trailers (libs/grpc-kit `toGrpcStatus` writes them; libs/errors names them).
 */
export function fromServiceError(error: unknown, requestId?: string): ImageBindError {
  if (error instanceof ImageBindError) return error;
  const e: ServiceErrorLike = typeof error === 'object' && error !== null ? error : {};
  const code = typeof e.code === 'number' ? grpcStatusName(e.code) : 'UNKNOWN';
  const details =
    typeof e.details === 'string' && e.details !== ''
      ? e.details
      : typeof e.message === 'string' && e.message !== ''
        ? e.message
        : String(error);
  const metadata = e.metadata instanceof Metadata ? e.metadata : undefined;
  const domainCode = metadata === undefined ? undefined : firstString(metadata, ERROR_CODE_TRAILER);
  const field = metadata === undefined ? undefined : firstString(metadata, ERROR_FIELD_TRAILER);
  const retryAfter = metadata === undefined ? undefined : firstString(metadata, RETRY_AFTER_TRAILER);
  const retryAfterMs = retryAfter === undefined ? NaN : Number(retryAfter);
  return new ImageBindError({
    code,
    details,
    ...(domainCode === undefined ? {} : { domainCode }),
    ...(field === undefined ? {} : { field }),
    // A malformed hint is ignored rather than trusted: it only tunes the backoff.
    ...(Number.isFinite(retryAfterMs) && retryAfterMs >= 0 ? { retryAfterMs } : {}),
    ...(requestId === undefined ? {} : { requestId }),
    ...(metadata === undefined ? {} : { metadata }),
    cause: error,
  });
}

function firstString(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === 'string' && value !== '' ? value : undefined;
}
