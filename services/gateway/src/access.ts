import type { GatewayEnv } from './env.schema';
import { ApiKeyAuthenticator, keysFromEnv } from './rest/api-keys';
import { RateLimiter } from './rest/rate-limiter';

/** Admission of one public call: who it is from, and whether their rate limit allows it. */
export interface AccessControl {
  /** True when every call must carry a valid API key. */
  readonly required: boolean;
  /** Returns the tenant; throws UNAUTHENTICATED or RATE_LIMITED (with a retry hint). */
  admit(credentials: { authorization?: string; apiKey?: string }): string;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '[::1]']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith('127.');
}

/**
 * API keys + per-key token bucket, the same for gRPC and REST. Without configured keys (allowed
 * only on loopback, checked at start) every call is the anonymous "local" tenant, still rate
 * limited so one runaway script cannot starve the machine.
 */
export function createAccessControl(env: GatewayEnv): AccessControl {
  const keys =
    env.GATEWAY_API_KEYS === undefined ? [] : keysFromEnv(env.GATEWAY_API_KEYS, 'GATEWAY_API_KEYS');
  const required = keys.length > 0;
  const authenticator = new ApiKeyAuthenticator({ keys, required });
  const limiter = new RateLimiter({
    requestsPerMinute: env.GATEWAY_RATE_LIMIT_RPM,
    burst: env.GATEWAY_RATE_LIMIT_BURST,
  });
  return {
    required,
    admit(credentials) {
      const principal = authenticator.authenticate(credentials.authorization, credentials.apiKey);
      limiter.takeOrThrow(principal.tenant);
      return principal.tenant;
    },
  };
}
