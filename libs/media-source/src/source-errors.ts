import { DomainError, ErrorCode } from '@imagebind-llm/errors';

/**
 * Every refusal names the field it is about, both in the message (clients read it) and in
 * `details.field` (clients branch on it), so a batch item with a bad URI can be pointed at.
 */
export function invalidSource(field: string, message: string): DomainError {
  return new DomainError(ErrorCode.InvalidInput, `${field}: ${message}`, { field });
}

export function sourceTooLarge(field: string, message: string, limitBytes: number): DomainError {
  return new DomainError(ErrorCode.PayloadTooLarge, `${field}: ${message}`, { field, limitBytes });
}

export function sourceNotFound(field: string, message: string): DomainError {
  return new DomainError(ErrorCode.NotFound, `${field}: ${message}`, { field });
}

/** Transient: the same read may succeed later (timeouts, 5xx, unreachable hosts, DNS hiccups). */
export function sourceUnavailable(
  field: string,
  message: string,
  cause?: unknown,
  retryAfterMs?: number,
): DomainError {
  const details = retryAfterMs === undefined ? { field } : { field, retryAfterMs };
  return new DomainError(ErrorCode.DependencyUnavailable, `${field}: ${message}`, details, { cause });
}

export function sourceCancelled(field: string, cause?: unknown): DomainError {
  return new DomainError(
    ErrorCode.Cancelled,
    `${field}: reading the source was cancelled`,
    { field },
    { cause },
  );
}

/**
 * Whether a failure from `readSource` is worth retrying with backoff (timeouts, 5xx, 429, network
 * errors). Refusals (INVALID_INPUT), NOT_FOUND and PAYLOAD_TOO_LARGE will fail the same way again.
 */
export function isTransientSourceError(error: unknown): boolean {
  return error instanceof DomainError && error.code === ErrorCode.DependencyUnavailable;
}
