import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { QdrantVectorStore, toDomainError, type QdrantVectorStoreOptions } from './qdrant.driver';

// Small tier: option validation and the error mapping, fed the error shapes the client throws
// (an HTTP error with status/data/headers, its named errors, undici's "fetch failed").

function httpError(status: number, data: unknown, headers: Record<string, string> = {}): Error {
  return Object.assign(new Error('HTTP error'), { status, data, headers: new Headers(headers) });
}

function named(name: string, extra: Record<string, unknown> = {}): Error {
  const error = Object.assign(new Error('client error'), extra);
  error.name = name;
  return error;
}

const URL = 'http://qdrant:6333';

describe('toDomainError', () => {
  it('maps HTTP statuses to domain codes and keeps Qdrant’s message', () => {
    const cases: [number, ErrorCode][] = [
      [400, ErrorCode.InvalidInput],
      [422, ErrorCode.InvalidInput],
      [401, ErrorCode.Unauthenticated],
      [403, ErrorCode.PermissionDenied],
      [404, ErrorCode.NotFound],
      [409, ErrorCode.AlreadyExists],
      [408, ErrorCode.DependencyUnavailable],
      [502, ErrorCode.DependencyUnavailable],
      [503, ErrorCode.DependencyUnavailable],
      [504, ErrorCode.DependencyUnavailable],
      [500, ErrorCode.Internal],
    ];
    for (const [status, code] of cases) {
      const mapped = toDomainError(
        httpError(status, { status: { error: `reason ${status}` } }),
        'do it',
        URL,
      );
      expect(mapped.code, String(status)).toBe(code);
      expect(mapped.message).toContain(`reason ${status}`);
    }
    expect(toDomainError(httpError(401, 'Invalid API key or JWT'), 'read', URL).message).toContain(
      'Invalid API key or JWT',
    );
  });

  it('turns rate limits into OVERLOADED with a retry hint in milliseconds', () => {
    const fromHeader = toDomainError(
      httpError(429, { status: { error: 'slow down' } }, { 'retry-after': '3' }),
      'x',
      URL,
    );
    expect(fromHeader.code).toBe(ErrorCode.Overloaded);
    expect(fromHeader.details.retryAfterMs).toBe(3000);
    const fromClient = toDomainError(
      named('QdrantClientResourceExhaustedError', { retry_after: 2 }),
      'x',
      URL,
    );
    expect(fromClient.code).toBe(ErrorCode.Overloaded);
    expect(fromClient.details.retryAfterMs).toBe(2000);
  });

  it('maps timeouts and failed connections to DEPENDENCY_UNAVAILABLE naming the URL', () => {
    const timeout = toDomainError(named('QdrantClientTimeoutError'), 'search', URL);
    expect(timeout.code).toBe(ErrorCode.DependencyUnavailable);
    expect(timeout.message).toContain(URL);
    const refused = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:6333'), { code: 'ECONNREFUSED' }),
    });
    const mapped = toDomainError(refused, 'search', URL);
    expect(mapped.code).toBe(ErrorCode.DependencyUnavailable);
    expect(mapped.message).toContain('ECONNREFUSED');
  });

  it('keeps domain errors and makes anything else INTERNAL', () => {
    const own = DomainError.notFound('gone');
    expect(toDomainError(own, 'x', URL)).toBe(own);
    expect(toDomainError(new RangeError('bug'), 'x', URL).code).toBe(ErrorCode.Internal);
    expect(toDomainError('thrown string', 'x', URL).code).toBe(ErrorCode.Internal);
  });
});

describe('QdrantVectorStore options', () => {
  it('refuses bad options with a message naming the option', () => {
    const cases: [Partial<QdrantVectorStoreOptions>, string][] = [
      [{ url: '' }, 'url'],
      [{ url: 'qdrant:6333' }, 'url'],
      [{ url: 'ftp://qdrant:6333' }, 'url'],
      [{ url: 'http://user:pw@qdrant:6333' }, 'url'],
      [{ apiKey: ' ' }, 'apiKey'],
      [{ timeoutMs: 0 }, 'timeoutMs'],
      [{ upsertBatchSize: 1.5 }, 'upsertBatchSize'],
      [{ shardNumber: 0 }, 'shardNumber'],
      [{ replicationFactor: 2, writeConsistencyFactor: 3 }, 'writeConsistencyFactor'],
      [{ quantization: 'pq' as 'int8' }, 'quantization'],
    ];
    for (const [options, field] of cases) {
      let thrown: unknown;
      try {
        new QdrantVectorStore({ url: URL, ...options });
      } catch (error) {
        thrown = error;
      }
      expect(thrown, field).toBeInstanceOf(DomainError);
      expect((thrown as DomainError).code).toBe(ErrorCode.InvalidInput);
      expect((thrown as DomainError).details.field).toBe(field);
    }
  });

  it('accepts a URL with a path prefix and reports its driver name', () => {
    expect(new QdrantVectorStore({ url: 'https://proxy.example/qdrant/' }).driver).toBe('qdrant');
  });
});
