import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import {
  checkRedisForQueues,
  reconnectDelayMs,
  redisConnectionOptions,
  type RedisConfigReader,
} from './connection';

const fakeConfig = (reply: unknown): RedisConfigReader => ({
  config: async () => Promise.resolve(reply),
});

describe('redisConnectionOptions', () => {
  it('lets workers retry forever and makes producers fail fast', () => {
    const worker = redisConnectionOptions('redis://cache:6380/2', 'worker');
    expect(worker).toMatchObject({
      host: 'cache',
      port: 6380,
      db: 2,
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
    });
    const producer = redisConnectionOptions('redis://cache', 'producer');
    expect(producer).toMatchObject({
      host: 'cache',
      port: 6379,
      db: 0,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
    });
    expect(producer.retryStrategy).toBe(reconnectDelayMs);
  });

  it('takes credentials and TLS from the URL', () => {
    const options = redisConnectionOptions('rediss://user:p%40ss@redis.example:6390', 'producer');
    expect(options).toMatchObject({ username: 'user', password: 'p@ss', tls: {} });
    expect(redisConnectionOptions('redis://h', 'worker').tls).toBeUndefined();
  });

  it('rejects URLs that are not Redis URLs with a message that says what to set', () => {
    expect(() => redisConnectionOptions('not a url', 'worker')).toThrow(/redis:\/\/host:6379/);
    expect(() => redisConnectionOptions('http://h:6379', 'worker')).toThrow(/redis:\/\/ or rediss:\/\//);
    expect(() => redisConnectionOptions('redis://h/x', 'worker')).toThrow(/database/);
  });

  it('backs off exponentially between reconnects, capped at 5 s', () => {
    expect([1, 2, 3, 4].map(reconnectDelayMs)).toEqual([50, 100, 200, 400]);
    expect(reconnectDelayMs(50)).toBe(5_000);
  });
});

describe('checkRedisForQueues', () => {
  it('accepts noeviction in RESP2 and RESP3 replies', async () => {
    expect(await checkRedisForQueues(fakeConfig(['maxmemory-policy', 'noeviction']))).toEqual({
      maxmemoryPolicy: 'noeviction',
    });
    expect(await checkRedisForQueues(fakeConfig({ 'maxmemory-policy': 'noeviction' }))).toEqual({
      maxmemoryPolicy: 'noeviction',
    });
  });

  it('fails boot with FAILED_PRECONDITION for an evicting policy', async () => {
    const error = await checkRedisForQueues(fakeConfig(['maxmemory-policy', 'allkeys-lru'])).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe(ErrorCode.FailedPrecondition);
    expect((error as DomainError).message).toMatch(/"allkeys-lru".*noeviction/);
  });

  it('warns instead of failing when CONFIG is not permitted (managed Redis)', async () => {
    const managed: RedisConfigReader = {
      config: async () => Promise.reject(new Error("ERR unknown command 'CONFIG'")),
    };
    const check = await checkRedisForQueues(managed);
    expect(check.maxmemoryPolicy).toBeUndefined();
    expect(check.warning).toMatch(/unknown command 'CONFIG'.*noeviction/);
    expect((await checkRedisForQueues(fakeConfig([]))).warning).toMatch(/noeviction/);
  });
});
