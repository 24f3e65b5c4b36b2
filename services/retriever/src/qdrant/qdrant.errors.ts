import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { isRecord } from './qdrant.wire';

/**
 * Maps what the Qdrant client throws to a DomainError. The client rejects with the HTTP error of
 * `@qdrant/openapi-typescript-fetch` (`status`, `data`, `headers`) for any non-2xx answer, its own
 * named errors for timeouts and 429s, and undici's `TypeError('fetch failed')` when no connection
 * could be made.
 */
export function toDomainError(error: unknown, what: string, url: string): DomainError {
  if (error instanceof DomainError) return error;
  if (!(error instanceof Error)) return internal(`failed to ${what}: ${String(error)}`, error);
  const http = httpFailure(error);
  if (http !== undefined) {
    const reason = `Qdrant refused to ${what} (HTTP ${http.status}: ${http.message})`;
    switch (http.status) {
      case 400:
      case 422:
        return new DomainError(ErrorCode.InvalidInput, reason, {}, { cause: error });
      case 401:
        return new DomainError(
          ErrorCode.Unauthenticated,
          `${reason}; check the Qdrant API key the retriever is configured with`,
          {},
          { cause: error },
        );
      case 403:
        return new DomainError(
          ErrorCode.PermissionDenied,
          `${reason}; the API key may not do this (a read-only key cannot write)`,
          {},
          { cause: error },
        );
      case 404:
        return new DomainError(ErrorCode.NotFound, reason, {}, { cause: error });
      case 409:
        return new DomainError(ErrorCode.AlreadyExists, reason, {}, { cause: error });
      case 429:
        return new DomainError(ErrorCode.Overloaded, `${reason}; retry later`, retryAfter(http.retryAfterS), {
          cause: error,
        });
      case 408:
      case 502:
      case 503:
      case 504:
        return new DomainError(ErrorCode.DependencyUnavailable, reason, {}, { cause: error });
      default:
        return internal(reason, error);
    }
  }
  switch (error.name) {
    case 'QdrantClientTimeoutError':
      return new DomainError(
        ErrorCode.DependencyUnavailable,
        `Qdrant at ${url} did not answer in time to ${what}; check its load or raise timeoutMs`,
        {},
        { cause: error },
      );
    case 'QdrantClientResourceExhaustedError': {
      const seconds = (error as Error & { retry_after?: unknown }).retry_after;
      return new DomainError(
        ErrorCode.Overloaded,
        `Qdrant is rate limiting (${what}); retry later`,
        retryAfter(typeof seconds === 'number' ? seconds : undefined),
        { cause: error },
      );
    }
    default:
      break;
  }
  const network = networkCode(error);
  if (network !== undefined) {
    return DomainError.unavailable(
      `cannot reach Qdrant at ${url} to ${what} (${network}); check the URL and that Qdrant is running`,
      error,
    );
  }
  return internal(`failed to ${what}: ${error.message}`, error);
}

interface HttpFailure {
  readonly status: number;
  readonly message: string;
  readonly retryAfterS: number | undefined;
}

function httpFailure(error: Error): HttpFailure | undefined {
  const candidate = error as Error & { status?: unknown; data?: unknown; headers?: unknown };
  if (typeof candidate.status !== 'number' || !('data' in candidate)) return undefined;
  const data = candidate.data;
  let message = candidate.message || 'no details';
  if (typeof data === 'string' && data.trim() !== '') {
    message = data.trim();
  } else if (isRecord(data) && isRecord(data['status']) && typeof data['status']['error'] === 'string') {
    message = data['status']['error'];
  }
  let retryAfterS: number | undefined;
  if (candidate.headers instanceof Headers) {
    const header = Number(candidate.headers.get('retry-after'));
    retryAfterS = Number.isFinite(header) && header > 0 ? header : undefined;
  }
  return { status: candidate.status, message, retryAfterS };
}

/** The system error code behind a failed connection (undici wraps it in `cause`), if any. */
function networkCode(error: Error): string | undefined {
  const codes = new Set([
    'ECONNREFUSED',
    'ECONNRESET',
    'ENOTFOUND',
    'EAI_AGAIN',
    'EHOSTUNREACH',
    'ENETUNREACH',
    'ETIMEDOUT',
    'EPIPE',
  ]);
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth += 1) {
    const code = (current as Error & { code?: unknown }).code;
    if (typeof code === 'string' && (codes.has(code) || code.startsWith('UND_ERR_'))) return code;
    current = current.cause;
  }
  if (error instanceof TypeError && error.message === 'fetch failed') return 'fetch failed';
  return undefined;
}

function retryAfter(seconds: number | undefined): { retryAfterMs?: number } {
  return seconds === undefined ? {} : { retryAfterMs: seconds * 1000 };
}

export function internal(message: string, cause?: unknown): DomainError {
  return new DomainError(ErrorCode.Internal, message, {}, { cause });
}

export function missingCollection(name: string): DomainError {
  return DomainError.notFound(`Qdrant has no collection '${name}'; create it first (ensureCollection)`);
}

export function namedVectorsError(name: string): DomainError {
  return new DomainError(
    ErrorCode.FailedPrecondition,
    `Qdrant collection '${name}' stores named vectors; the retriever needs one unnamed vector per point, ` +
      `so drop it or use another collection name`,
  );
}

export function cancelled(): DomainError {
  return new DomainError(ErrorCode.Cancelled, 'the search was cancelled by the caller');
}
