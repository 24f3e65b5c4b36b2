import { ErrorCode, HTTP_STATUS_BY_CODE } from './error-codes';

/** Structured detail that helps a caller fix the request (field path, limit, allowed values). */
export interface ErrorDetails {
  /** Dotted path of the offending field, e.g. `inputs[2].weight`. */
  readonly field?: string;
  /** Milliseconds after which a retry may succeed (overload, rate limit). */
  readonly retryAfterMs?: number;
  /** Anything else worth logging; never secrets. */
  readonly [key: string]: unknown;
}

/**
 * The one error type that crosses the wire. Its message is shown to clients, so it must say what
 * went wrong and what to do about it. Anything that is not a DomainError becomes INTERNAL.
 */
export class DomainError extends Error {
  override readonly name = 'DomainError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get httpStatus(): number {
    return HTTP_STATUS_BY_CODE[this.code];
  }

  static invalidInput(message: string, field?: string): DomainError {
    return new DomainError(ErrorCode.InvalidInput, message, field === undefined ? {} : { field });
  }

  static notFound(message: string): DomainError {
    return new DomainError(ErrorCode.NotFound, message);
  }

  static notImplemented(message: string): DomainError {
    return new DomainError(ErrorCode.NotImplemented, message);
  }

  static overloaded(message: string, retryAfterMs?: number): DomainError {
    return new DomainError(ErrorCode.Overloaded, message, retryAfterMs === undefined ? {} : { retryAfterMs });
  }

  static unavailable(message: string, cause?: unknown): DomainError {
    return new DomainError(ErrorCode.DependencyUnavailable, message, {}, { cause });
  }
}

export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError;
}
