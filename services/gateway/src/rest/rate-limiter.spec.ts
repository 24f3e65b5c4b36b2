import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { RateLimiter, rateLimitedError } from './rate-limiter';

function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('RateLimiter', () => {
  it('allows a burst, then refuses with the time until the next token', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ requestsPerMinute: 60, burst: 3, now: clock.now });
    expect([limiter.take('k'), limiter.take('k'), limiter.take('k')]).toEqual([
      { allowed: true },
      { allowed: true },
      { allowed: true },
    ]);
    // 60 per minute is one token per second.
    expect(limiter.take('k')).toEqual({ allowed: false, retryAfterMs: 1000 });
    clock.advance(400);
    expect(limiter.take('k')).toEqual({ allowed: false, retryAfterMs: 600 });
  });

  it('refills at the configured rate, never beyond the burst', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ requestsPerMinute: 120, burst: 2, now: clock.now });
    limiter.take('k');
    limiter.take('k');
    clock.advance(500); // 120 per minute: one token per 500 ms
    expect(limiter.take('k')).toEqual({ allowed: true });
    expect(limiter.take('k').allowed).toBe(false);
    clock.advance(3_600_000);
    expect(limiter.take('k').allowed).toBe(true);
    expect(limiter.take('k').allowed).toBe(true);
    expect(limiter.take('k')).toEqual({ allowed: false, retryAfterMs: 500 });
  });

  it('waiting exactly retryAfterMs is always enough, even with fractional rates', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ requestsPerMinute: 7, burst: 1, now: clock.now });
    expect(limiter.take('k').allowed).toBe(true);
    for (let i = 0; i < 20; i++) {
      const d = limiter.take('k');
      expect(d.allowed).toBe(false);
      if (d.allowed) return;
      clock.advance(d.retryAfterMs);
      expect(limiter.take('k')).toEqual({ allowed: true });
    }
  });

  it('keeps keys apart and charges the cost', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ requestsPerMinute: 60, burst: 5, now: clock.now });
    expect(limiter.take('a', 5).allowed).toBe(true);
    expect(limiter.take('a', 1)).toEqual({ allowed: false, retryAfterMs: 1000 });
    expect(limiter.take('b', 3).allowed).toBe(true);
    expect(limiter.take('b', 3)).toEqual({ allowed: false, retryAfterMs: 1000 });
  });

  it('tracks at most maxKeys keys and drops the least recently used', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ requestsPerMinute: 1, burst: 1, maxKeys: 3, now: clock.now });
    for (const key of ['a', 'b', 'c', 'd', 'e']) limiter.take(key);
    expect(limiter.trackedKeys).toBe(3);
    // 'e' is still tracked and empty; 'a' was dropped, so it starts with a full bucket again.
    expect(limiter.take('e').allowed).toBe(false);
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.trackedKeys).toBe(3);
  });

  it('forgets keys once their bucket has refilled, so idle keys cost no memory', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ requestsPerMinute: 60, burst: 2, now: clock.now });
    for (let i = 0; i < 3; i++) limiter.take(`idle-${i}`);
    expect(limiter.trackedKeys).toBe(3);
    clock.advance(1000); // one token back: each bucket is full again
    limiter.take('active');
    expect(limiter.trackedKeys).toBe(1);
  });

  it('throws RATE_LIMITED with the wait from takeOrThrow', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ requestsPerMinute: 30, burst: 1, now: clock.now });
    limiter.takeOrThrow('k');
    let error: unknown;
    try {
      limiter.takeOrThrow('k');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DomainError);
    const e = error as DomainError;
    expect(e.code).toBe(ErrorCode.RateLimited);
    expect(e.httpStatus).toBe(429);
    expect(e.details.retryAfterMs).toBe(2000);
    expect(e.message).toBe('rate limit of 30 requests per minute exceeded for this API key; retry after 2 s');
  });

  it('refuses settings and costs that cannot work', () => {
    expect(() => new RateLimiter({ requestsPerMinute: 0, burst: 1 })).toThrow(
      /requestsPerMinute: must be a positive number/,
    );
    expect(() => new RateLimiter({ requestsPerMinute: 10, burst: 1.5 })).toThrow(
      /burst: must be a positive integer/,
    );
    const limiter = new RateLimiter({ requestsPerMinute: 10, burst: 2 });
    expect(() => limiter.take('k', 3)).toThrow(
      /cost: must be a positive number no larger than the burst \(2\)/,
    );
  });
});

describe('rateLimitedError', () => {
  it('rounds the wait up to whole seconds in the message and keeps the exact value', () => {
    const e = rateLimitedError(1);
    expect(e.message).toBe('rate limit exceeded for this API key; retry after 1 s');
    expect(e.details.retryAfterMs).toBe(1);
  });
});
