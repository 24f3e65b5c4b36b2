/**
 * Every failure that crosses a service boundary has one of these codes. The string is stable and
 * machine-readable: clients may branch on it (it travels in the `ibllm-error-code` trailer).
 */
export const ErrorCode = {
  /** The request is malformed or a value is out of range; the message says what to fix. */
  InvalidInput: 'INVALID_INPUT',
  /** The input media could not be decoded (truncated, corrupt, wrong type). */
  UnsupportedMedia: 'UNSUPPORTED_MEDIA',
  /** A payload, prompt or list is larger than the configured limit. */
  PayloadTooLarge: 'PAYLOAD_TOO_LARGE',
  /** The prompt does not fit the model's context window. */
  ContextOverflow: 'CONTEXT_OVERFLOW',
  /** A named model, collection, job or item does not exist. */
  NotFound: 'NOT_FOUND',
  /** The object already exists (e.g. a collection with a different dimension). */
  AlreadyExists: 'ALREADY_EXISTS',
  /** The request conflicts with the object's current state (e.g. cancelling a finished job). */
  FailedPrecondition: 'FAILED_PRECONDITION',
  /** No API key, or an unknown one. */
  Unauthenticated: 'UNAUTHENTICATED',
  /** The key may not do this (e.g. read another tenant's job). */
  PermissionDenied: 'PERMISSION_DENIED',
  /** A queue or budget is full; retry later with backoff. */
  Overloaded: 'OVERLOADED',
  /** A per-key rate limit was hit; retry after the indicated time. */
  RateLimited: 'RATE_LIMITED',
  /** The deadline passed before the work finished. */
  DeadlineExceeded: 'DEADLINE_EXCEEDED',
  /** The caller went away or cancelled. */
  Cancelled: 'CANCELLED',
  /** A dependency (another service, Redis, the vector store) cannot be reached right now. */
  DependencyUnavailable: 'DEPENDENCY_UNAVAILABLE',
  /** The model is still loading or warming up. */
  ModelNotReady: 'MODEL_NOT_READY',
  /** The feature exists in the contract but this deployment does not provide it. */
  NotImplemented: 'NOT_IMPLEMENTED',
  /** A bug or an unexpected state; details are logged with the request id, not returned. */
  Internal: 'INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * HTTP status for the REST surface. `satisfies Record<ErrorCode, ...>` keeps it exhaustive; the
 * gRPC status of each code is mapped where gRPC lives (libs/grpc-kit `GRPC_STATUS_BY_CODE`).
 */
export const HTTP_STATUS_BY_CODE = {
  INVALID_INPUT: 400,
  UNSUPPORTED_MEDIA: 415,
  PAYLOAD_TOO_LARGE: 413,
  CONTEXT_OVERFLOW: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  FAILED_PRECONDITION: 409,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  OVERLOADED: 503,
  RATE_LIMITED: 429,
  DEADLINE_EXCEEDED: 504,
  CANCELLED: 499,
  DEPENDENCY_UNAVAILABLE: 503,
  MODEL_NOT_READY: 503,
  NOT_IMPLEMENTED: 501,
  INTERNAL: 500,
} as const satisfies Record<ErrorCode, number>;

const CODE_SET: ReadonlySet<string> = new Set(Object.values(ErrorCode));

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && CODE_SET.has(value);
}

/** Codes a client may retry with backoff: the same request can succeed later. */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.Overloaded,
  ErrorCode.RateLimited,
  ErrorCode.DependencyUnavailable,
  ErrorCode.ModelNotReady,
]);
