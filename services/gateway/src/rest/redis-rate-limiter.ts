import type { Logger } from '@imagebind-llm/observability';
import type { RateDecision } from './rate-limiter';

/** The one Redis command the shared limiter needs (an ioredis client has it; tests pass fakes). */
export interface RedisScriptRunner {
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/** One bucket's shape: sustained requests per minute and how many may come at once. */
export interface BucketLimit {
  readonly requestsPerMinute: number;
  readonly burst: number;
}

export interface RedisRateLimiterOptions {
  readonly redis: RedisScriptRunner;
  /** Key prefix, e.g. `ibllm:ratelimit:`; every replica of one deployment uses the same. */
  readonly prefix: string;
  readonly logger: Logger;
  /** A call slower than this counts as Redis being unavailable. Default 250 ms. */
  readonly timeoutMs?: number;
}

/**
 * The same token bucket as {@link RateLimiter}, kept in one Redis hash per key so every gateway
 * replica spends from it. The script runs atomically and reads the clock of Redis itself (TIME),
 * so replicas with skewed clocks still refill one bucket consistently. The hash expires once it
 * would have refilled completely: an idle key costs no memory, as in the in-process limiter.
 */
const TOKEN_BUCKET = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rpm / 60000)
ts = math.max(ts, now)
local allowed = 0
local wait = 0
if tokens + 1e-9 >= cost then
  tokens = math.max(0, tokens - cost)
  allowed = 1
else
  wait = math.ceil((cost - tokens) * 60000 / rpm)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 60000 / rpm) + 1000)
return {allowed, wait}
`;

/**
 * Rate limits shared by every replica through Redis (issue #17 item 1).
 *
 * When Redis cannot answer (down, partitioned, slower than `timeoutMs`) the decision falls back
 * to this process's own bucket for the key: the limit then holds per replica (at worst N× for N
 * replicas) until Redis is back. That is fail-open to local limits, chosen over failing closed
 * because the limit protects capacity, not a quota that must never be exceeded: refusing every
 * request while Redis restarts would turn a Redis blip into a full API outage, and the local
 * buckets still stop any one client from starving a replica. The outage and the recovery are
 * each logged once.
 */
export class RedisRateLimiter {
  private readonly timeoutMs: number;
  private degraded = false;

  constructor(private readonly options: RedisRateLimiterOptions) {
    this.timeoutMs = options.timeoutMs ?? 250;
  }

  /**
   * Spends `cost` tokens of `key`'s shared bucket, or asks `fallback` (the process's own bucket)
   * when Redis does not answer.
   */
  async take(key: string, limit: BucketLimit, fallback: () => RateDecision, cost = 1): Promise<RateDecision> {
    let decision: RateDecision;
    try {
      decision = await this.evaluate(key, limit, cost);
    } catch (error) {
      if (!this.degraded) {
        this.degraded = true;
        this.options.logger.warn(
          { event: 'ratelimit.redis_unavailable', err: (error as Error).message },
          'Redis does not answer: rate limits fall back to this replica until it does',
        );
      }
      return fallback();
    }
    if (this.degraded) {
      this.degraded = false;
      this.options.logger.info(
        { event: 'ratelimit.redis_restored' },
        'Redis answers again: rate limits are shared by every replica',
      );
    }
    return decision;
  }

  private async evaluate(key: string, limit: BucketLimit, cost: number): Promise<RateDecision> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      const reply = await Promise.race([
        this.options.redis.eval(
          TOKEN_BUCKET,
          1,
          `${this.options.prefix}${key}`,
          limit.requestsPerMinute,
          limit.burst,
          cost,
        ),
        timeout,
      ]);
      if (!Array.isArray(reply) || reply.length !== 2) {
        throw new Error(`unexpected reply from the rate-limit script: ${JSON.stringify(reply)}`);
      }
      const [allowed, wait] = reply.map(Number) as [number, number];
      return allowed === 1 ? { allowed: true } : { allowed: false, retryAfterMs: Math.max(1, wait) };
    } finally {
      clearTimeout(timer);
    }
  }
}
