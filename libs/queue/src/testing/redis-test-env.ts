import { randomBytes } from 'node:crypto';
import { createLogger, MemoryLog, type Logger } from '@imagebind-llm/observability';
import { Redis } from 'ioredis';
import { BatchJobStore } from '../batch-job-store';

/** The Redis that medium tests use (CI starts it on the default port). */
export const TEST_REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * One test file's slice of the shared Redis: every key it writes starts with `prefix`, so files
 * running in parallel never see each other's jobs, and `cleanup` deletes exactly its own keys.
 */
export interface RedisTestEnv {
  readonly prefix: string;
  /** BullMQ's key prefix inside this slice. */
  readonly bullPrefix: string;
  /** The store's key prefix inside this slice. */
  readonly storePrefix: string;
  readonly redis: Redis;
  readonly store: BatchJobStore;
  readonly log: MemoryLog;
  readonly logger: Logger;
  cleanup(): Promise<void>;
}

export async function createRedisTestEnv(label: string): Promise<RedisTestEnv> {
  const prefix = `t-${label}-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  await redis.ping();
  const storePrefix = `${prefix}:store:`;
  const log = new MemoryLog();
  return {
    prefix,
    bullPrefix: `${prefix}-bull`,
    storePrefix,
    redis,
    store: new BatchJobStore(redis, { prefix: storePrefix }),
    log,
    logger: createLogger({ service: `test-${label}`, level: 'info', destination: log }),
    cleanup: async () => {
      await deleteKeys(redis, `${prefix}*`);
      await redis.quit();
    },
  };
}

export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/** Polls `probe` until it returns a defined value or `timeoutMs` passes (no timing assertions). */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
