import { ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it, vi } from 'vitest';
import { isTransientSourceError, readSource, type MediaSourcePolicy, type ParsedSource } from './index';
import { domainRejectionOf } from '@imagebind-llm/testing';

const FIELD = 'items[0].uri';
const PUBLIC = '93.184.216.34';

type FetchArgs = [input: string | URL | Request, init?: RequestInit];

function fakeFetch(respond: (url: string, init: RequestInit) => Response | Promise<Response>) {
  return vi.fn(async (...[input, init]: FetchArgs) =>
    respond(input instanceof Request ? input.url : input.toString(), init ?? {}),
  );
}

function policy(overrides: Partial<MediaSourcePolicy> = {}): MediaSourcePolicy {
  return {
    allowedHosts: ['media.example.com'],
    maxBytes: 16,
    timeoutMs: 2000,
    resolve: () => Promise.resolve([PUBLIC]),
    fetchImpl: fakeFetch(() => new Response('should not be fetched')),
    ...overrides,
  };
}

/** A body that never ends, counting how much of it was pulled and whether it was cancelled. */
function endlessBody(chunkBytes: number): {
  stream: ReadableStream<Uint8Array>;
  pulls: () => number;
  cancelled: () => boolean;
} {
  let pulls = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulls += 1;
      controller.enqueue(new Uint8Array(chunkBytes).fill(7));
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, pulls: () => pulls, cancelled: () => cancelled };
}

/** Never answers on its own; rejects the way fetch does when its signal aborts. */
function hangingFetch() {
  return fakeFetch(
    (_url, init) =>
      new Promise<Response>((_resolve, reject) => {
        if (init.signal?.aborted === true) reject(init.signal.reason as Error);
        init.signal?.addEventListener('abort', () => reject(init.signal?.reason as Error));
      }),
  );
}

describe('readSource over https', () => {
  it('fetches without following redirects and returns the bytes', async () => {
    const fetchImpl = fakeFetch(() => new Response(new Uint8Array([1, 2, 3])));
    const bytes = await readSource('https://media.example.com/a.jpg', policy({ fetchImpl }), FIELD);
    expect(Array.from(bytes)).toEqual([1, 2, 3]);
    expect(fetchImpl).toHaveBeenCalledTimes(1);
    const [url, init] = fetchImpl.mock.calls[0] ?? [];
    expect(url).toBe('https://media.example.com/a.jpg');
    expect(init?.redirect).toBe('error');
    expect(init?.signal).toBeInstanceOf(AbortSignal);
  });

  it('checks a string source before touching the network', async () => {
    const resolve = vi.fn(() => Promise.resolve([PUBLIC]));
    const fetchImpl = fakeFetch(() => new Response('x'));
    const error = await domainRejectionOf(
      readSource('https://10.0.0.1/a.jpg', policy({ resolve, fetchImpl }), FIELD),
    );
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(resolve).not.toHaveBeenCalled();
    expect(fetchImpl).not.toHaveBeenCalled();
  });

  it('re-vets a hand-built ParsedSource', async () => {
    const fetchImpl = fakeFetch(() => new Response('x'));
    const forged: ParsedSource = { kind: 'https', url: 'https://evil.example.net/a.jpg' };
    const error = await domainRejectionOf(readSource(forged, policy({ fetchImpl }), FIELD));
    expect(error.message).toMatch(/not on the allow-list/);
    expect(fetchImpl).not.toHaveBeenCalled();
  });

  it.each([
    [['127.0.0.1']],
    [['169.254.169.254']],
    [[PUBLIC, '10.0.0.7']], // one private answer among public ones is enough to refuse
    [['2606:4700::1111', 'fd00::1']],
    [['::ffff:192.168.0.1']],
  ])('refuses a host resolving to %j (DNS rebinding guard)', async (addresses) => {
    const fetchImpl = fakeFetch(() => new Response('secret'));
    const p = policy({ resolve: () => Promise.resolve(addresses), fetchImpl });
    const error = await domainRejectionOf(readSource('https://media.example.com/a.jpg', p, FIELD));
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.details.field).toBe(FIELD);
    expect(error.message).toMatch(/resolves to .*private, loopback or reserved/);
    expect(fetchImpl).not.toHaveBeenCalled();
  });

  it('tells a name that does not exist (permanent) from a DNS failure (transient)', async () => {
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    const again = Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
    const missing = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ resolve: () => Promise.reject(notFound) }), FIELD),
    );
    expect(missing.code).toBe(ErrorCode.InvalidInput);
    expect(missing.message).toMatch(/does not resolve/);
    const flaky = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ resolve: () => Promise.reject(again) }), FIELD),
    );
    expect(isTransientSourceError(flaky)).toBe(true);
    const empty = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ resolve: () => Promise.resolve([]) }), FIELD),
    );
    expect(empty.message).toMatch(/does not resolve/);
  });

  it('stops streaming at maxBytes + 1 and cancels the body', async () => {
    const body = endlessBody(5);
    const fetchImpl = fakeFetch(() => new Response(body.stream));
    const error = await domainRejectionOf(
      readSource('https://media.example.com/big', policy({ fetchImpl }), FIELD),
    );
    expect(error.code).toBe(ErrorCode.PayloadTooLarge);
    expect(error.details).toMatchObject({ field: FIELD, limitBytes: 16 });
    expect(error.message).toMatch(/more than the limit of 16 bytes/);
    expect(body.cancelled()).toBe(true);
    // 4 chunks of 5 bytes cross 16; the stream may pre-pull one more chunk, never an unbounded number.
    expect(body.pulls()).toBeLessThanOrEqual(6);
  });

  it('accepts a body of exactly maxBytes', async () => {
    const fetchImpl = fakeFetch(() => new Response(new Uint8Array(16)));
    expect((await readSource('https://media.example.com/a', policy({ fetchImpl }), FIELD)).byteLength).toBe(
      16,
    );
  });

  it('refuses an oversized Content-Length before reading the body', async () => {
    const body = endlessBody(1);
    const fetchImpl = fakeFetch(() => new Response(body.stream, { headers: { 'content-length': '1000' } }));
    const error = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ fetchImpl }), FIELD),
    );
    expect(error.code).toBe(ErrorCode.PayloadTooLarge);
    expect(error.message).toMatch(/declares 1000 bytes; the limit is 16/);
    expect(body.cancelled()).toBe(true);
  });

  it('refuses redirects, whether fetch rejects them or hands back the 3xx', async () => {
    const undiciStyle = fakeFetch(() => {
      throw new TypeError('fetch failed', { cause: new Error('unexpected redirect') });
    });
    const rejected = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ fetchImpl: undiciStyle }), FIELD),
    );
    expect(rejected.code).toBe(ErrorCode.InvalidInput);
    expect(rejected.message).toMatch(/redirect, which is not followed/);
    const passthrough = fakeFetch(
      () => new Response(null, { status: 302, headers: { location: 'http://169.254.169.254/' } }),
    );
    const returned = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ fetchImpl: passthrough }), FIELD),
    );
    expect(returned.code).toBe(ErrorCode.InvalidInput);
    expect(returned.message).toMatch(/redirect/);
  });

  it.each([
    [403, ErrorCode.InvalidInput, false],
    [400, ErrorCode.InvalidInput, false],
    [404, ErrorCode.NotFound, false],
    [410, ErrorCode.NotFound, false],
    [408, ErrorCode.DependencyUnavailable, true],
    [429, ErrorCode.DependencyUnavailable, true],
    [500, ErrorCode.DependencyUnavailable, true],
    [503, ErrorCode.DependencyUnavailable, true],
  ])('maps HTTP %i to %s (transient: %s)', async (status, code, transient) => {
    const fetchImpl = fakeFetch(() => new Response('nope', { status }));
    const error = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ fetchImpl }), FIELD),
    );
    expect(error.code).toBe(code);
    expect(error.message).toContain(`HTTP ${status}`);
    expect(error.details.field).toBe(FIELD);
    expect(isTransientSourceError(error)).toBe(transient);
  });

  it('passes Retry-After on to the caller', async () => {
    const fetchImpl = fakeFetch(() => new Response('busy', { status: 503, headers: { 'retry-after': '7' } }));
    const error = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ fetchImpl }), FIELD),
    );
    expect(error.details.retryAfterMs).toBe(7000);
  });

  it('refuses an empty body', async () => {
    const fetchImpl = fakeFetch(() => new Response(new Uint8Array(0)));
    const error = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ fetchImpl }), FIELD),
    );
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.message).toMatch(/empty body/);
  });

  it('turns a network failure into a transient error', async () => {
    const fetchImpl = fakeFetch(() => {
      throw new TypeError('fetch failed', {
        cause: Object.assign(new Error('connect ECONNRESET'), { code: 'ECONNRESET' }),
      });
    });
    const error = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ fetchImpl }), FIELD),
    );
    expect(error.code).toBe(ErrorCode.DependencyUnavailable);
    expect(error.message).toMatch(/ECONNRESET/);
  });

  it('times out a silent server as transient', async () => {
    const error = await domainRejectionOf(
      readSource('https://media.example.com/a', policy({ fetchImpl: hangingFetch(), timeoutMs: 30 }), FIELD),
    );
    expect(error.code).toBe(ErrorCode.DependencyUnavailable);
    expect(error.message).toMatch(/did not answer within 30 ms/);
    expect(isTransientSourceError(error)).toBe(true);
  });

  it('times out a resolver that never answers', async () => {
    const p = policy({ resolve: () => new Promise<string[]>(() => undefined), timeoutMs: 30 });
    const error = await domainRejectionOf(readSource('https://media.example.com/a', p, FIELD));
    expect(error.code).toBe(ErrorCode.DependencyUnavailable);
  });

  it('reports a caller abort as CANCELLED, not as a retryable failure', async () => {
    const controller = new AbortController();
    const fetchImpl = hangingFetch();
    const pending = readSource(
      'https://media.example.com/a',
      policy({ fetchImpl }),
      FIELD,
      controller.signal,
    );
    await vi.waitFor(() => expect(fetchImpl).toHaveBeenCalled()); // abort mid-request
    controller.abort();
    const error = await domainRejectionOf(pending);
    expect(error.code).toBe(ErrorCode.Cancelled);
    expect(isTransientSourceError(error)).toBe(false);
    const already = await domainRejectionOf(
      readSource('https://media.example.com/a', policy(), FIELD, AbortSignal.abort()),
    );
    expect(already.code).toBe(ErrorCode.Cancelled);
  });
});

describe('readSource from the object store', () => {
  const store = {
    scheme: 's3',
    endpoint: 'https://minio.internal:9000',
    buckets: ['media-in'],
    headers: { authorization: 'Bearer s3cr3t' },
  } as const;

  it('fetches <endpoint>/<bucket>/<key> with the configured headers and no DNS guard', async () => {
    const resolve = vi.fn(() => Promise.resolve(['10.0.0.5'])); // the store is typically private
    const fetchImpl = fakeFetch(() => new Response('object'));
    const bytes = await readSource(
      's3://media-in/a/b c.jpg',
      policy({ objectStore: store, resolve, fetchImpl }),
      FIELD,
    );
    expect(new TextDecoder().decode(bytes)).toBe('object');
    const [url, init] = fetchImpl.mock.calls[0] ?? [];
    expect(url).toBe('https://minio.internal:9000/media-in/a/b%20c.jpg');
    expect(init?.headers).toEqual({ authorization: 'Bearer s3cr3t' });
    expect(init?.redirect).toBe('error');
    expect(resolve).not.toHaveBeenCalled();
  });

  it('applies the same byte cap', async () => {
    const fetchImpl = fakeFetch(() => new Response(endlessBody(8).stream));
    const error = await domainRejectionOf(
      readSource('s3://media-in/a.jpg', policy({ objectStore: store, fetchImpl }), FIELD),
    );
    expect(error.code).toBe(ErrorCode.PayloadTooLarge);
  });

  it('refuses other buckets, forged keys and a missing store', async () => {
    const fetchImpl = fakeFetch(() => new Response('x'));
    const other = await domainRejectionOf(
      readSource('s3://other/a.jpg', policy({ objectStore: store, fetchImpl }), FIELD),
    );
    expect(other.message).toMatch(/bucket "other" is not one this service reads/);
    const forged: ParsedSource = {
      kind: 's3',
      bucket: 'media-in',
      key: '../other/a.jpg',
      url: 'https://minio.internal:9000/other/a.jpg',
    };
    const traversal = await domainRejectionOf(
      readSource(forged, policy({ objectStore: store, fetchImpl }), FIELD),
    );
    expect(traversal.message).toMatch(/"\." or "\.\." segment/);
    const disabled = await domainRejectionOf(readSource('s3://media-in/a.jpg', policy({ fetchImpl }), FIELD));
    expect(disabled.message).toMatch(/s3:\/\/ sources are disabled/);
    expect(fetchImpl).not.toHaveBeenCalled();
  });
});
