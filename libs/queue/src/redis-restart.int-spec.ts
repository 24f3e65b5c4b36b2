// Issue #6: "Redis restarted with AOF mid-job → nothing lost". A private redis-server (its own port
// and data folder, appendonly yes, appendfsync always, noeviction) is killed with SIGKILL while a
// 600-item job runs and restarted on the same files; the workers reconnect and the job completes
// with exactly one result per item.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, MemoryLog } from '@imagebind-llm/observability';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchJobStore, isFinalState } from './batch-job-store';
import { BatchQueue } from './batch-queue';
import { startBatchWorker, type BatchWorker } from './batch-worker';
import { checkRedisForQueues, createRedis, waitForReady } from './connection';
import { waitFor } from './testing/redis-test-env';

const REDIS_SERVER = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function startRedis(port: number, dir: string): ChildProcess {
  return spawn(
    REDIS_SERVER,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: 'ignore' },
  );
}

describe('a Redis restart (AOF) in the middle of a job', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ibllm-aof-'));
  let port: number;
  let redisProc: ChildProcess;

  beforeAll(async () => {
    expect(REDIS_SERVER, 'redis-server must be installed (.ci/run installs it)').not.toBe('');
    port = await freePort();
    redisProc = startRedis(port, dir);
  });

  afterAll(() => {
    redisProc?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('loses nothing: every item gets exactly one result after the restart', async () => {
    const url = `redis://127.0.0.1:${port}`;
    const producer = createRedis(url, 'producer');
    await waitFor(
      'the private redis to answer',
      async () =>
        waitForReady(producer, 1_000).then(
          () => true,
          () => undefined,
        ),
      20_000,
    );
    expect((await checkRedisForQueues(producer)).maxmemoryPolicy).toBe('noeviction');
    const storeConn = createRedis(url, 'worker');
    const store = new BatchJobStore(storeConn, { prefix: 'aof:' });
    const queue = new BatchQueue({ connection: producer, prefix: 'aof-bull' });
    const total = 600;
    await store.create({
      jobId: 'aof-job',
      tenant: 't',
      kind: 'embed',
      items: Array.from({ length: total }, (_, i) => ({ i })),
      options: {},
    });
    await queue.enqueue('aof-job', total, { attempts: 20, backoffMs: 50 });
    const log = new MemoryLog();
    const workers: BatchWorker[] = [];
    const runs = new Map<number, number>();
    for (let w = 0; w < 2; w++) {
      workers.push(
        await startBatchWorker({
          redisUrl: url,
          prefix: 'aof-bull',
          store,
          concurrency: 4,
          // A little work per item so the restart lands mid-job.
          processItem: async (ctx) => {
            runs.set(ctx.index, (runs.get(ctx.index) ?? 0) + 1);
            await new Promise((resolve) => setTimeout(resolve, 5));
            return { echo: ctx.index };
          },
          // Redis going away mid-item is transient: BullMQ retries it.
          isTransient: () => true,
          logger: createLogger({ service: 'test-aof', level: 'warn', destination: log }),
          lockDurationMs: 5_000,
          stalledIntervalMs: 1_000,
        }),
      );
    }
    await waitFor(
      '100 results',
      async () => ((await store.get('aof-job', 't')).succeeded >= 100 ? true : undefined),
      60_000,
    );
    redisProc.kill('SIGKILL');
    await new Promise((resolve) => redisProc.once('exit', resolve));
    const before = runs.size;
    redisProc = startRedis(port, dir);
    const final = await waitFor(
      'the job to finish after the restart',
      async () => {
        try {
          const job = await store.get('aof-job', 't');
          return isFinalState(job.state) ? job : undefined;
        } catch {
          return undefined; // Redis still coming back
        }
      },
      120_000,
    );
    expect(before).toBeLessThan(total); // the restart really happened mid-job
    expect(final.state).toBe('SUCCEEDED');
    expect(final.succeeded).toBe(total);
    const page = await store.results('aof-job', 't', { start: 0, count: total + 10 });
    expect(page.results.map((r) => r.index)).toEqual(Array.from({ length: total }, (_, i) => i));
    expect(page.resultCount).toBe(total);
    await Promise.all(workers.map(async (w) => w.close()));
    await queue.close();
    storeConn.disconnect();
    producer.disconnect();
  }, 200_000);
});
