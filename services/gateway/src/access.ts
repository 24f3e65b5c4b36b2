import { DomainError } from '@imagebind-llm/errors';
import type { GatewayEnv } from './env.schema';
import { ApiKeyAuthenticator, keysFromEnv } from './rest/api-keys';
import { RateLimiter, rateLimitedError } from './rest/rate-limiter';
import type { RedisRateLimiter } from './rest/redis-rate-limiter';

/** What a call presents to admission: an `Authorization: Bearer` header and/or `x-api-key`. */
export interface Credentials {
  authorization?: string;
  apiKey?: string;
}

/** The credentials of a call, from its HTTP headers or gRPC metadata (`header` gives the first value). */
export function credentialsFrom(header: (name: string) => string | undefined): Credentials {
  const credentials: Credentials = {};
  const authorization = header('authorization');
  const apiKey = header('x-api-key');
  if (authorization !== undefined) credentials.authorization = authorization;
  if (apiKey !== undefined) credentials.apiKey = apiKey;
  return credentials;
}

/** Admission of one public call: who it is from, and whether their rate limit allows it. */
export interface AccessControl {
  /** True when every call must carry a valid API key. */
  readonly required: boolean;
  /** Where the rate-limit buckets live: shared by every replica in Redis, or this process. */
  readonly rateLimitStore: 'redis' | 'memory';
  /**
   * Resolves with the tenant; rejects with UNAUTHENTICATED or RATE_LIMITED (with a retry hint).
   * `requests` is how many requests the call carries (EmbedMany's `requests`; 1 for every other
   * call): each spends a token, all or none, so a call of many cannot outrun the per-key limit.
   * As a function it is asked after authentication, so it may check the call's shape (throwing
   * INVALID_INPUT) once the caller is known and before any token is spent. More than the key's
   * burst can never be admitted at once: INVALID_INPUT naming `requests`.
   */
  admit(credentials: Credentials, requests?: number | (() => number)): Promise<string>;
}

/**
 * The only binds that may serve without API keys: the literal loopback addresses. Not `localhost`
 * (a name whatever resolver is configured may point elsewhere) and not the rest of 127.0.0.0/8
 * (`127.0.0.2` is one `iptables` rule or container port mapping away from the network; a prefix
 * test also let `127.0.0.1.example` through).
 */
const LOOPBACK = new Set(['127.0.0.1', '::1', '[::1]']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host);
}

/**
 * Why this configuration must not start, or undefined: an instance bound beyond 127.0.0.1 / ::1
 * without API keys would serve anyone who can reach it.
 */
export function exposureProblem(env: GatewayEnv): string | undefined {
  if (env.GATEWAY_API_KEYS !== undefined) return undefined;
  const exposed = (['GATEWAY_GRPC_HOST', 'GATEWAY_HTTP_HOST'] as const).filter((k) => !isLoopback(env[k]));
  if (exposed.length === 0) return undefined;
  const binds = exposed.map((k) => `${k} is ${JSON.stringify(env[k])}`).join(', ');
  return `${binds} without API keys: set GATEWAY_API_KEYS (tenant:key,...) or bind 127.0.0.1 or ::1`;
}

/** One tenant's own limit, parsed from `tenant:rpm[:burst]`. */
export interface RateOverride {
  readonly tenant: string;
  readonly requestsPerMinute: number;
  readonly burst: number;
}

/**
 * Parses GATEWAY_RATE_LIMIT_OVERRIDES. The burst defaults to a tenth of a minute's requests (at
 * least 1), like the default limit's 600 / 60. Throws with the entry that is wrong.
 */
export function parseRateOverrides(value: string | undefined): RateOverride[] {
  if (value === undefined || value.trim() === '') return [];
  const seen = new Set<string>();
  return value.split(',').map((entry) => {
    const [tenant = '', rpmText = '', burstText, ...rest] = entry.trim().split(':');
    const rpm = Number(rpmText);
    const burst = burstText === undefined ? Math.max(1, Math.floor(rpm / 10)) : Number(burstText);
    const refuse = (problem: string): never => {
      throw new Error(
        `GATEWAY_RATE_LIMIT_OVERRIDES: "${entry.trim()}": ${problem}; expected tenant:rpm[:burst],...`,
      );
    };
    if (tenant === '') refuse('the tenant is empty');
    if (rest.length > 0) refuse('too many fields');
    if (!Number.isSafeInteger(rpm) || rpm < 1) {
      refuse(`requests per minute must be a positive integer, got "${rpmText}"`);
    }
    if (!Number.isSafeInteger(burst) || burst < 1) {
      refuse(`the burst must be a positive integer, got "${burstText ?? ''}"`);
    }
    if (seen.has(tenant)) refuse(`tenant ${tenant} is listed twice`);
    seen.add(tenant);
    return { tenant, requestsPerMinute: rpm, burst };
  });
}

export interface AccessControlOptions {
  /** Milliseconds clock of the in-process buckets; tests pass a frozen one. */
  readonly now?: () => number;
  /** The buckets shared by every replica (GATEWAY_REDIS_URL); unset keeps them in this process. */
  readonly shared?: RedisRateLimiter;
}

/**
 * API keys + per-key token bucket, the same for gRPC and REST. Without configured keys (allowed
 * only on loopback, checked at start) every call is the anonymous "local" tenant, still rate
 * limited so one runaway script cannot starve the machine. Tenants named in
 * GATEWAY_RATE_LIMIT_OVERRIDES (the batch workers, typically) get their own limit instead. With
 * `shared`, the buckets live in Redis and the in-process ones only stand in while Redis is down.
 */
export function createAccessControl(env: GatewayEnv, options: AccessControlOptions = {}): AccessControl {
  const now = options.now ?? Date.now;
  const keys =
    env.GATEWAY_API_KEYS === undefined ? [] : keysFromEnv(env.GATEWAY_API_KEYS, 'GATEWAY_API_KEYS');
  const required = keys.length > 0;
  const authenticator = new ApiKeyAuthenticator({ keys, required });
  const limiter = new RateLimiter({
    requestsPerMinute: env.GATEWAY_RATE_LIMIT_RPM,
    burst: env.GATEWAY_RATE_LIMIT_BURST,
    now,
  });
  const overrides = new Map(
    parseRateOverrides(env.GATEWAY_RATE_LIMIT_OVERRIDES).map((o) => [
      o.tenant,
      new RateLimiter({ requestsPerMinute: o.requestsPerMinute, burst: o.burst, now }),
    ]),
  );
  const shared = options.shared;
  return {
    required,
    rateLimitStore: shared === undefined ? 'memory' : 'redis',
    async admit(credentials, count = 1) {
      const principal = authenticator.authenticate(credentials.authorization, credentials.apiKey);
      const requests = typeof count === 'function' ? count() : count;
      const tenant = principal.tenant;
      const local = overrides.get(tenant) ?? limiter;
      if (requests > local.burstSize) {
        // Waiting would not help: the bucket never holds more than the burst.
        throw DomainError.invalidInput(
          `requests: ${requests} requests in one call exceed the ${local.burstSize} this API key's rate limit admits at once (its burst); send at most ${local.burstSize} per call`,
          'requests',
        );
      }
      const decision =
        shared === undefined
          ? local.take(tenant, requests)
          : await shared.take(
              tenant,
              { requestsPerMinute: local.requestsPerMinute, burst: local.burstSize },
              () => local.take(tenant, requests),
              requests,
            );
      if (!decision.allowed) throw rateLimitedError(decision.retryAfterMs, local.requestsPerMinute);
      return tenant;
    },
  };
}
