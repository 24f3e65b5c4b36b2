import { DomainError, ErrorCode } from '@imagebind-llm/errors';

export interface RateLimiterOptions {
  /** Sustained rate each key gets back, in requests (cost units) per minute. */
  readonly requestsPerMinute: number;
  /** Bucket size: how many requests a key may make at once after being idle. */
  readonly burst: number;
  /** Most keys tracked at once; past it the least recently used bucket is dropped. Default 10 000. */
  readonly maxKeys?: number;
  /** Milliseconds clock; tests pass a fake one. Defaults to Date.now. */
  readonly now?: () => number;
}

export type RateDecision =
  { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

interface Bucket {
  tokens: number;
  updatedAt: number;
}

const MS_PER_MINUTE = 60_000;
/** Full buckets dropped per call beyond the capacity rule: keeps the sweep O(1) per request. */
const SWEEP_PER_CALL = 4;
/** Float slack so a wait of exactly retryAfterMs always suffices despite rounding. */
const EPSILON = 1e-9;

function configError(field: string, message: string): DomainError {
  return new DomainError(ErrorCode.InvalidInput, `${field}: ${message}`, { field });
}

/**
 * Per-key token bucket. Each key holds up to `burst` tokens and earns `requestsPerMinute` per
 * minute back; a request spends `cost` of them.
 *
 * Memory stays bounded: a bucket that has refilled completely means the same as no bucket, so
 * idle (full) buckets are dropped as calls go by, and past `maxKeys` the least recently used one
 * is dropped. Dropping a bucket that is not yet full forgives that key's recent use, so set
 * `maxKeys` well above the number of keys active within one refill period (burst / rate).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly rpm: number;
  private readonly burst: number;
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(options: RateLimiterOptions) {
    if (!Number.isFinite(options.requestsPerMinute) || options.requestsPerMinute <= 0) {
      throw configError('requestsPerMinute', `must be a positive number, got ${options.requestsPerMinute}`);
    }
    if (!Number.isInteger(options.burst) || options.burst < 1) {
      throw configError('burst', `must be a positive integer, got ${options.burst}`);
    }
    const maxKeys = options.maxKeys ?? 10_000;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw configError('maxKeys', `must be a positive integer, got ${maxKeys}`);
    }
    this.rpm = options.requestsPerMinute;
    this.burst = options.burst;
    this.maxKeys = maxKeys;
    this.now = options.now ?? Date.now;
  }

  /** Number of keys currently tracked (for metrics and tests). */
  get trackedKeys(): number {
    return this.buckets.size;
  }

  /** The configured sustained rate, for messages. */
  get requestsPerMinute(): number {
    return this.rpm;
  }

  /** The configured bucket size. */
  get burstSize(): number {
    return this.burst;
  }

  /** Spends `cost` tokens of `key` if it has them; otherwise says how long until it will. */
  take(key: string, cost = 1): RateDecision {
    if (!Number.isFinite(cost) || cost <= 0 || cost > this.burst) {
      throw configError(
        'cost',
        `must be a positive number no larger than the burst (${this.burst}), got ${cost}`,
      );
    }
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, updatedAt: now };
    this.refill(bucket, now);
    // Re-inserting moves the key to the end, so Map order is least recently used first.
    this.buckets.delete(key);
    this.buckets.set(key, bucket);

    let decision: RateDecision;
    if (bucket.tokens + EPSILON >= cost) {
      bucket.tokens = Math.max(0, bucket.tokens - cost);
      decision = { allowed: true };
    } else {
      decision = {
        allowed: false,
        retryAfterMs: Math.ceil(((cost - bucket.tokens) * MS_PER_MINUTE) / this.rpm),
      };
    }
    this.evict(now);
    return decision;
  }

  /** {@link take}, throwing the RATE_LIMITED error when the key is out of tokens. */
  takeOrThrow(key: string, cost = 1): void {
    const decision = this.take(key, cost);
    if (!decision.allowed) throw rateLimitedError(decision.retryAfterMs, this.rpm);
  }

  private refill(bucket: Bucket, now: number): void {
    // A clock that steps back earns nothing rather than a negative amount.
    const elapsed = Math.max(0, now - bucket.updatedAt);
    // Multiply before dividing: whole minutes then refill to exact integers.
    bucket.tokens = Math.min(this.burst, bucket.tokens + (elapsed * this.rpm) / MS_PER_MINUTE);
    bucket.updatedAt = Math.max(bucket.updatedAt, now);
  }

  private evict(now: number): void {
    let swept = 0;
    for (const [key, bucket] of this.buckets) {
      if (this.buckets.size > this.maxKeys) {
        this.buckets.delete(key);
        continue;
      }
      if (swept >= SWEEP_PER_CALL) break;
      swept += 1;
      this.refill(bucket, now);
      if (bucket.tokens < this.burst) break;
      this.buckets.delete(key);
    }
  }
}

/**
 * RATE_LIMITED (HTTP 429, gRPC RESOURCE_EXHAUSTED) carrying the wait, which the REST layer
 * sends as `retry-after` and gRPC as the `ibllm-retry-after-ms` trailer.
 */
export function rateLimitedError(retryAfterMs: number, requestsPerMinute?: number): DomainError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const limit = requestsPerMinute === undefined ? '' : ` of ${requestsPerMinute} requests per minute`;
  return new DomainError(
    ErrorCode.RateLimited,
    `rate limit${limit} exceeded for this API key; retry after ${seconds} s`,
    { retryAfterMs },
  );
}
