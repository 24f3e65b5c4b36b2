import { parseEnv } from '@imagebind-llm/config';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { createAccessControl, exposureProblem, isLoopback, parseRateOverrides } from './access';
import { gatewayEnvSchema } from './env.schema';
import type { RedisRateLimiter } from './rest/redis-rate-limiter';

describe('parseRateOverrides', () => {
  it('reads tenant:rpm[:burst] with a default burst of a tenth of the rate', () => {
    expect(parseRateOverrides('batch-worker:60000:2000, ops:30')).toEqual([
      { tenant: 'batch-worker', requestsPerMinute: 60_000, burst: 2000 },
      { tenant: 'ops', requestsPerMinute: 30, burst: 3 },
    ]);
    expect(parseRateOverrides(undefined)).toEqual([]);
    expect(parseRateOverrides(' ')).toEqual([]);
  });

  it('names the entry that is wrong', () => {
    expect(() => parseRateOverrides('a:0')).toThrow(/"a:0": requests per minute must be a positive integer/);
    expect(() => parseRateOverrides('a:10:x')).toThrow(/"a:10:x": the burst must be a positive integer/);
    expect(() => parseRateOverrides(':10')).toThrow(/the tenant is empty/);
    expect(() => parseRateOverrides('a:1:1:1')).toThrow(/too many fields/);
    expect(() => parseRateOverrides('a:10,a:20')).toThrow(/tenant a is listed twice/);
  });
});

describe('createAccessControl with GATEWAY_RATE_LIMIT_OVERRIDES', () => {
  it('gives the named tenant its own bucket and leaves the others on the default', async () => {
    const env = parseEnv('gateway', gatewayEnvSchema, {
      GATEWAY_API_KEYS: 'alice:alice-key-0123456789abcdef,batch-worker:worker-key-0123456789abcdef',
      GATEWAY_RATE_LIMIT_RPM: '60',
      GATEWAY_RATE_LIMIT_BURST: '2',
      GATEWAY_RATE_LIMIT_OVERRIDES: 'batch-worker:6000:50',
    });
    // A frozen clock: no bucket refills while the test runs, however slow the machine.
    const access = createAccessControl(env, { now: () => 1_000_000 });
    expect(access.rateLimitStore).toBe('memory');
    const alice = { authorization: 'Bearer alice-key-0123456789abcdef' };
    const worker = { authorization: 'Bearer worker-key-0123456789abcdef' };
    expect(await access.admit(alice)).toBe('alice');
    expect(await access.admit(alice)).toBe('alice');
    const limited = await access.admit(alice).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(limited).toBeInstanceOf(DomainError);
    expect((limited as DomainError).code).toBe(ErrorCode.RateLimited);
    for (let i = 0; i < 50; i++) expect(await access.admit(worker)).toBe('batch-worker');
    await expect(access.admit(worker)).rejects.toThrow(DomainError);
  });
});

describe('createAccessControl counting the requests of one call (EmbedMany)', () => {
  const env = parseEnv('gateway', gatewayEnvSchema, {
    GATEWAY_API_KEYS: 'alice:alice-key-0123456789abcdef',
    GATEWAY_RATE_LIMIT_RPM: '60',
    GATEWAY_RATE_LIMIT_BURST: '10',
  });
  const alice = { authorization: 'Bearer alice-key-0123456789abcdef' };
  const rejection = (promise: Promise<unknown>): Promise<DomainError> =>
    promise.then(
      () => {
        throw new Error('expected a refusal');
      },
      (error: unknown) => error as DomainError,
    );

  it('spends a token per request, all or none: a call of many cannot outrun the limit', async () => {
    const access = createAccessControl(env, { now: () => 1_000_000 });
    expect(await access.admit(alice, 4)).toBe('alice');
    expect(await access.admit(alice, 4)).toBe('alice');
    // 2 tokens left: a call of 3 is refused whole and spends nothing ...
    const limited = await rejection(access.admit(alice, 3));
    expect(limited.code).toBe(ErrorCode.RateLimited);
    expect(limited.details.retryAfterMs).toBe(1_000);
    // ... so the 2 are still there for calls that fit.
    expect(await access.admit(alice, 1)).toBe('alice');
    expect(await access.admit(alice)).toBe('alice');
    expect((await rejection(access.admit(alice))).code).toBe(ErrorCode.RateLimited);
  });

  it('refuses more requests than the burst with INVALID_INPUT on `requests`: waiting would not help', async () => {
    const access = createAccessControl(env, { now: () => 1_000_000 });
    const error = await rejection(access.admit(alice, 11));
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.details.field).toBe('requests');
    expect(error.message).toMatch(/11 requests in one call exceed the 10 .* send at most 10 per call/);
    expect(await access.admit(alice, 10)).toBe('alice');
  });

  it("checks the key before counting, and before the call's shape", async () => {
    const access = createAccessControl(env, { now: () => 1_000_000 });
    expect((await rejection(access.admit({}, 11))).code).toBe(ErrorCode.Unauthenticated);
    let asked = 0;
    const shape = (): number => {
      asked++;
      throw DomainError.invalidInput('requests: 100 requests in one call; at most 64', 'requests');
    };
    expect((await rejection(access.admit({}, shape))).code).toBe(ErrorCode.Unauthenticated);
    expect(asked).toBe(0);
    expect((await rejection(access.admit(alice, shape))).code).toBe(ErrorCode.InvalidInput);
    expect(asked).toBe(1);
    // The refused shape spent no token: the whole burst is still there.
    expect(await access.admit(alice, () => 10)).toBe('alice');
  });

  it('spends the same count from the shared (Redis) bucket', async () => {
    const costs: number[] = [];
    const shared = {
      take: (_key: string, _limit: unknown, _fallback: unknown, cost = 1) => {
        costs.push(cost);
        return Promise.resolve({ allowed: true as const });
      },
    } as unknown as RedisRateLimiter;
    const access = createAccessControl(env, { now: () => 1_000_000, shared });
    await access.admit(alice, 7);
    await access.admit(alice);
    expect(costs).toEqual([7, 1]);
  });
});

describe('isLoopback and exposureProblem', () => {
  it('treats only the literal 127.0.0.1 and ::1 as loopback', () => {
    for (const host of ['127.0.0.1', '::1', '[::1]']) expect(isLoopback(host), host).toBe(true);
    for (const host of ['127.0.0.2', '127.0.0.1.example', 'localhost', '0.0.0.0', '::', '10.0.0.1']) {
      expect(isLoopback(host), host).toBe(false);
    }
  });

  it('refuses every other bind without API keys, naming the variable and what to set', () => {
    const at = (vars: Record<string, string>) => exposureProblem(parseEnv('gateway', gatewayEnvSchema, vars));
    expect(at({})).toBeUndefined();
    expect(at({ GATEWAY_GRPC_HOST: '::1', GATEWAY_HTTP_HOST: '::1' })).toBeUndefined();
    expect(at({ GATEWAY_HTTP_HOST: '127.0.0.2' })).toBe(
      'GATEWAY_HTTP_HOST is "127.0.0.2" without API keys: set GATEWAY_API_KEYS (tenant:key,...) or bind 127.0.0.1 or ::1',
    );
    expect(at({ GATEWAY_GRPC_HOST: 'localhost' })).toMatch(
      /^GATEWAY_GRPC_HOST is "localhost" without API keys/,
    );
    expect(
      at({ GATEWAY_GRPC_HOST: '0.0.0.0', GATEWAY_API_KEYS: 'alice:alice-key-0123456789abcdef' }),
    ).toBeUndefined();
  });
});
