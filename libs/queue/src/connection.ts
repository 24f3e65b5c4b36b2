import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { Redis, type RedisOptions } from 'ioredis';

/**
 * Who holds the connection. BullMQ's production guide treats them differently:
 * - a `worker` must never give up on a command (`maxRetriesPerRequest: null`), otherwise a Redis
 *   blip throws inside BullMQ's blocking loops and the worker stops fetching jobs;
 * - a `producer` (an RPC handler adding or reading jobs) should fail fast while Redis is down
 *   (`enableOfflineQueue: false`), so the caller gets UNAVAILABLE instead of a hung request.
 */
export type RedisRole = 'producer' | 'worker';

/** Reconnect delay: exponential from 50 ms, capped at 5 s, so a restart of Redis is ridden out. */
export function reconnectDelayMs(times: number): number {
  return Math.min(5_000, 50 * 2 ** Math.min(Math.max(times - 1, 0), 10));
}

/** ioredis options for a BullMQ connection of the given role (`redis://` or `rediss://` URL). */
export function redisConnectionOptions(url: string, role: RedisRole): RedisOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw DomainError.invalidInput(`Redis URL "${url}" is not a URL; set it like redis://host:6379/0.`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw DomainError.invalidInput(
      `Redis URL must start with redis:// or rediss://, got "${parsed.protocol}".`,
    );
  }
  const db = parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) {
    throw DomainError.invalidInput(`Redis URL database "${parsed.pathname.slice(1)}" is not a number.`);
  }
  const options: RedisOptions = {
    host: parsed.hostname,
    port: parsed.port === '' ? 6379 : Number(parsed.port),
    db,
    retryStrategy: reconnectDelayMs,
    ...(parsed.username === '' ? {} : { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password === '' ? {} : { password: decodeURIComponent(parsed.password) }),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  if (role === 'worker') {
    return { ...options, maxRetriesPerRequest: null, enableOfflineQueue: true };
  }
  return { ...options, maxRetriesPerRequest: 1, enableOfflineQueue: false };
}

/**
 * A connection for the given role. Producers connect eagerly: with the offline queue disabled a
 * command sent before `ready` fails, so wait for it with `waitForReady`.
 */
export function createRedis(url: string, role: RedisRole, onError?: (error: Error) => void): Redis {
  const redis = new Redis(redisConnectionOptions(url, role));
  // ioredis reconnects by itself; without a listener every failed attempt would also be printed as
  // an "Unhandled error event". Callers pass their logger; commands still fail and are handled.
  redis.on('error', (error: Error) => onError?.(error));
  return redis;
}

/** Resolves once the connection is ready; rejects with DEPENDENCY_UNAVAILABLE after `timeoutMs`. */
export async function waitForReady(redis: Redis, timeoutMs = 10_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(DomainError.unavailable(`Redis was not ready after ${timeoutMs} ms (status ${redis.status}).`));
    }, timeoutMs);
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}

/** The part of a Redis client that `checkRedisForQueues` needs (lets tests pass a fake). */
export interface RedisConfigReader {
  config(subcommand: 'GET', parameter: string): Promise<unknown>;
}

export interface RedisQueueCheck {
  /** The eviction policy found, or undefined when the server would not say. */
  readonly maxmemoryPolicy: string | undefined;
  /** Set when the check could not be made (managed Redis without CONFIG); boot goes on. */
  readonly warning?: string;
}

/**
 * Boot check for the Redis that holds queues and job records.
 *
 * Queue state must never be evicted: with any policy but `noeviction` Redis may silently drop job
 * hashes or lock keys under memory pressure, and jobs vanish or run twice. Durability wants AOF as
 * well, so a Redis restart loses at most a second of queue changes:
 *
 * ```
 * maxmemory-policy noeviction
 * appendonly yes
 * appendfsync everysec
 * ```
 *
 * Throws FAILED_PRECONDITION when the policy is wrong. Managed Redis often forbids CONFIG; then
 * the policy cannot be read, and the result carries a warning to log instead of failing boot.
 */
export async function checkRedisForQueues(redis: RedisConfigReader): Promise<RedisQueueCheck> {
  let reply: unknown;
  try {
    reply = await redis.config('GET', 'maxmemory-policy');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return {
      maxmemoryPolicy: undefined,
      warning:
        `Could not read maxmemory-policy (${reason}); make sure the Redis used for queues is ` +
        'configured with maxmemory-policy noeviction and appendonly yes.',
    };
  }
  const policy = policyFromConfigReply(reply);
  if (policy === undefined) {
    return {
      maxmemoryPolicy: undefined,
      warning: 'Redis did not report maxmemory-policy; make sure it is noeviction for the queue Redis.',
    };
  }
  if (policy !== 'noeviction') {
    throw new DomainError(
      ErrorCode.FailedPrecondition,
      `Redis maxmemory-policy is "${policy}" but queues need "noeviction" (evicted keys lose jobs). ` +
        'Set maxmemory-policy noeviction (and appendonly yes, appendfsync everysec) on the queue Redis.',
    );
  }
  return { maxmemoryPolicy: policy };
}

/** `CONFIG GET` answers `[name, value]` (RESP2) or `{ name: value }` (RESP3). */
function policyFromConfigReply(reply: unknown): string | undefined {
  if (Array.isArray(reply)) {
    const value: unknown = reply[1];
    return typeof value === 'string' ? value : undefined;
  }
  if (reply !== null && typeof reply === 'object') {
    const value: unknown = (reply as Record<string, unknown>)['maxmemory-policy'];
    return typeof value === 'string' ? value : undefined;
  }
  return undefined;
}
