// Medium test: the shared token bucket against the real Redis on 127.0.0.1:6379, each test in its
// own key prefix; and the fall-back to the process's own bucket when Redis does not answer.
import { randomBytes } from 'node:crypto';
import { createLogger, MemoryLog } from '@imagebind-llm/observability';
import { createRedis, waitForReady } from '@imagebind-llm/queue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimiter, type RateDecision } from './rate-limiter';
import { RedisRateLimiter, type RedisScriptRunner } from './redis-rate-limiter';

const REDIS_URL = 'redis://127.0.0.1:6379';

function logged(): { log: MemoryLog; logger: ReturnType<typeof createLogger> } {
  const log = new MemoryLog();
  return { log, logger: createLogger({ service: 'test', level: 'info', destination: log }) };
}

const never = (): RateDecision => {
  throw new Error('the fallback must not be asked while Redis answers');
};

describe('RedisRateLimiter on a real Redis', () => {
  let redis: ReturnType<typeof createRedis>;
  const prefix = `t-ratelimit-${randomBytes(4).toString('hex')}:`;

  beforeAll(async () => {
    redis = createRedis(REDIS_URL, 'producer');
    await waitForReady(redis);
  });

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('allows the burst, then refuses with the wait until one token is back', async () => {
    const limiter = new RedisRateLimiter({ redis, prefix, logger: logged().logger });
    const limit = { requestsPerMinute: 60, burst: 3 };
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push(await limiter.take('burst', limit, never));
    expect(decisions.slice(0, 3)).toEqual([{ allowed: true }, { allowed: true }, { allowed: true }]);
    const refused = decisions[3]!;
    expect(refused.allowed).toBe(false);
    // 60/min is one token a second: the wait is at most 1 s (less by the time the calls took).
    const wait = refused.allowed ? 0 : refused.retryAfterMs;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(1000);
  });

  it('is one bucket for every limiter (replica) using the same prefix, and one per key', async () => {
    const { logger } = logged();
    const a = new RedisRateLimiter({ redis, prefix, logger });
    const b = new RedisRateLimiter({ redis, prefix, logger });
    // 1 token per minute: nothing refills while the test runs.
    const limit = { requestsPerMinute: 1, burst: 4 };
    let allowed = 0;
    for (let i = 0; i < 12; i++) {
      if ((await (i % 2 === 0 ? a : b).take('shared', limit, never)).allowed) allowed++;
    }
    expect(allowed).toBe(4);
    expect(await a.take('other-key', limit, never)).toEqual({ allowed: true });
  });

  it('lets an idle bucket expire once it would have refilled completely', async () => {
    const limiter = new RedisRateLimiter({ redis, prefix, logger: logged().logger });
    await limiter.take('expiry', { requestsPerMinute: 600, burst: 10 }, never);
    // One token spent at 10/s refills in 100 ms; the key lives that long plus a 1 s margin.
    const ttl = await redis.pttl(`${prefix}expiry`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1100);
  });
});

describe('RedisRateLimiter when Redis does not answer', () => {
  it('falls back to the local bucket (fail-open to per-replica limits) and logs the outage once', async () => {
    const { log, logger } = logged();
    // Port 1 refuses connections: with no offline queue every command fails at once.
    const down = createRedis('redis://127.0.0.1:1', 'producer');
    const limiter = new RedisRateLimiter({ redis: down, prefix: 'unused:', logger });
    const local = new RateLimiter({ requestsPerMinute: 1, burst: 2, now: () => 0 });
    const decisions: RateDecision[] = [];
    for (let i = 0; i < 3; i++) {
      decisions.push(await limiter.take('k', { requestsPerMinute: 1, burst: 2 }, () => local.take('k')));
    }
    down.disconnect();
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, false]);
    const outages = log.lines.filter((l) => l['event'] === 'ratelimit.redis_unavailable');
    expect(outages).toHaveLength(1);
    expect(outages[0]!['level']).toBe('warn');
  });

  it('treats a Redis slower than the timeout as down, and logs when it answers again', async () => {
    const { log, logger } = logged();
    let hang = true;
    const runner: RedisScriptRunner = {
      eval: () => (hang ? new Promise(() => undefined) : Promise.resolve([1, 0])),
    };
    const limiter = new RedisRateLimiter({ redis: runner, prefix: 'p:', logger, timeoutMs: 50 });
    const started = Date.now();
    const decision = await limiter.take('k', { requestsPerMinute: 1, burst: 1 }, () => ({
      allowed: false,
      retryAfterMs: 7,
    }));
    expect(decision).toEqual({ allowed: false, retryAfterMs: 7 });
    expect(Date.now() - started).toBeLessThan(1000);
    hang = false;
    expect(await limiter.take('k', { requestsPerMinute: 1, burst: 1 }, never)).toEqual({ allowed: true });
    expect(log.lines.map((l) => l['event'])).toEqual([
      'ratelimit.redis_unavailable',
      'ratelimit.redis_restored',
    ]);
  });
});
