// E2E (issue #17 item 1): rate limits are held across gateway replicas through Redis. Two real
// gateway processes share the Redis on 127.0.0.1:6379 (a key prefix of their own); a third sees
// it through a TCP proxy the test cuts, to show what happens when Redis goes away.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createRedis } from '@imagebind-llm/queue';
import { startService, type ServiceProcess } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
const KEY = 'alice-key-0123456789abcdef';
const prefix = `t-gw-ratelimit-${randomBytes(4).toString('hex')}`;

const gatewayEnv = (redisUrl: string): Record<string, string> => ({
  GATEWAY_MODE: 'distributed',
  GATEWAY_GRPC_PORT: '0',
  GATEWAY_HTTP_PORT: '0',
  // Downstream services absent: only admission is exercised (GET /v1/playground/config).
  GATEWAY_RETRIEVER_TARGET: '127.0.0.1:1',
  GATEWAY_BIND_TARGET: '127.0.0.1:1',
  GATEWAY_DECODER_TARGET: '127.0.0.1:1',
  GATEWAY_API_KEYS: `alice:${KEY}`,
  GATEWAY_RATE_LIMIT_RPM: '60',
  GATEWAY_RATE_LIMIT_BURST: '10',
  GATEWAY_REDIS_URL: redisUrl,
  GATEWAY_QUEUE_PREFIX: prefix,
});

async function call(gateway: ServiceProcess): Promise<number> {
  const res = await fetch(`${gateway.httpBase}/v1/playground/config`, {
    headers: { authorization: `Bearer ${KEY}` },
  });
  await res.arrayBuffer();
  return res.status;
}

/** A TCP proxy to Redis that the test can cut, as a network partition would. */
async function startProxy(port: number): Promise<{ url: string; cut(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const listening = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${listening}`,
    cut: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

describe('rate limits shared through Redis by two gateway replicas', () => {
  let a: ServiceProcess;
  let b: ServiceProcess;

  beforeAll(async () => {
    expect(existsSync(MAIN), `${MAIN} is missing: run \`npm run build\` first`).toBe(true);
    [a, b] = await Promise.all([
      startService('gateway', gatewayEnv('redis://127.0.0.1:6379'), 'gateway-a'),
      startService('gateway', gatewayEnv('redis://127.0.0.1:6379'), 'gateway-b'),
    ]);
  }, 90_000);

  afterAll(async () => {
    await Promise.all([a?.proc.stop('SIGKILL'), b?.proc.stop('SIGKILL')]);
    const redis = createRedis('redis://127.0.0.1:6379', 'worker');
    const keys = await redis.keys(`${prefix}:ratelimit:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('says at start where the buckets live', () => {
    for (const g of [a, b]) {
      expect(g.proc.lines.find((l) => l['event'] === 'ratelimit.store')).toMatchObject({ store: 'redis' });
      expect(g.proc.lines.find((l) => l['event'] === 'service.ready')).toMatchObject({ rateLimits: 'redis' });
    }
  });

  it('of 40 requests spread over both (60/min, burst 10), at most 10 + the refill succeed', async () => {
    const started = Date.now();
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push(await call(i % 2 === 0 ? a : b));
    const seconds = (Date.now() - started) / 1000;
    const ok = statuses.filter((s) => s === 200).length;
    expect(
      statuses.every((s) => s === 200 || s === 429),
      statuses.join(','),
    ).toBe(true);
    // 60/min refills one request a second; each replica alone would have allowed 10 + that.
    expect(ok).toBeLessThanOrEqual(10 + Math.ceil(seconds));
    expect(ok).toBeGreaterThanOrEqual(10);
    // Both replicas refused some: neither kept a bucket of its own.
    expect(statuses.filter((s, i) => i % 2 === 0 && s === 429).length).toBeGreaterThan(0);
    expect(statuses.filter((s, i) => i % 2 === 1 && s === 429).length).toBeGreaterThan(0);
  });
});

describe('rate limits when Redis goes away', () => {
  it("fall back to the replica's own bucket (fail-open to local limits), logged once", async () => {
    const proxy = await startProxy(6379);
    const gateway = await startService('gateway', gatewayEnv(proxy.url), 'gateway-c');
    try {
      const before: number[] = [];
      for (let i = 0; i < 12; i++) before.push(await call(gateway));
      expect(before.filter((s) => s === 200).length).toBeLessThanOrEqual(11);
      expect(before.slice(0, 10)).toEqual(Array(10).fill(200));
      await proxy.cut();
      // The replica's own bucket (untouched while Redis answered) now decides: 10 at once, then 429.
      const after: number[] = [];
      for (let i = 0; i < 14; i++) after.push(await call(gateway));
      expect(after.slice(0, 10)).toEqual(Array(10).fill(200));
      expect(after.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
      const outages = gateway.proc.lines.filter((l) => l['event'] === 'ratelimit.redis_unavailable');
      expect(outages).toHaveLength(1);
    } finally {
      await gateway.proc.stop('SIGKILL');
      await proxy.cut().catch(() => undefined);
    }
  }, 60_000);
});
