import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchQueue } from './batch-queue';
import { startBatchWorker } from './batch-worker';
import { createRedisTestEnv, TEST_REDIS_URL, waitFor, type RedisTestEnv } from './testing/redis-test-env';

const REPO_ROOT = resolve(__dirname, '../../..');
const CHILD_SCRIPT = join(__dirname, 'testing', 'batch-worker-child.cjs');
const TENANT = 'crash-tenant';

let env: RedisTestEnv;
let queue: BatchQueue;
let child: ChildProcess | undefined;

beforeAll(async () => {
  // The child runs plain node against the built library.
  const build = spawnSync('npx', ['tsc', '-b', 'libs/queue'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`building libs/queue failed:\n${build.stdout}${build.stderr}`);
  env = await createRedisTestEnv('crash');
  queue = new BatchQueue({ redisUrl: TEST_REDIS_URL, prefix: env.bullPrefix });
}, 180_000);

afterAll(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await queue.close();
  await env.cleanup();
});

async function startChild(): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [CHILD_SCRIPT], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      REDIS_URL: TEST_REDIS_URL,
      BULL_PREFIX: env.bullPrefix,
      STORE_PREFIX: env.storePrefix,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let stdout = '';
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  await waitFor(
    'the child worker to start',
    async () => {
      if (proc.exitCode !== null) throw new Error(`child worker exited with ${proc.exitCode}:\n${stderr}`);
      return Promise.resolve(stdout.includes('ready') ? true : undefined);
    },
    60_000,
  );
  return proc;
}

describe('a worker killed with SIGKILL mid-job', () => {
  it('has its in-flight items redelivered, and the job completes with exactly one result per item', async () => {
    const jobId = 'crash-1';
    const total = 1000;
    const items = Array.from({ length: total }, (_, i) => ({ n: i }));
    await env.store.create({ jobId, tenant: TENANT, kind: 'generate', items, options: {} });
    await queue.enqueue(jobId, total, { attempts: 3, backoffMs: 10 });

    child = await startChild();
    const beforeKill = await waitFor(
      'about 200 results from the child',
      async () => {
        const job = await env.store.get(jobId, TENANT);
        return job.succeeded >= 200 ? job : undefined;
      },
      120_000,
      5,
    );
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect(child.signalCode).toBe('SIGKILL');
    expect(beforeKill.succeeded).toBeLessThan(total);

    const handled: number[] = [];
    const survivor = await startBatchWorker({
      redisUrl: TEST_REDIS_URL,
      prefix: env.bullPrefix,
      store: env.store,
      concurrency: 8,
      processItem: async (ctx) => {
        handled.push(ctx.index);
        return Promise.resolve({ echo: ctx.index, pid: process.pid });
      },
      isTransient: () => false,
      logger: env.logger,
      lockDurationMs: 2000,
      stalledIntervalMs: 500,
    });
    try {
      const job = await waitFor(
        'the job to finish after the crash',
        async () => {
          const record = await env.store.get(jobId, TENANT);
          return record.state === 'SUCCEEDED' ? record : undefined;
        },
        120_000,
      );
      expect(job).toMatchObject({ succeeded: total, failed: 0, cancelled: 0 });

      const results: { index: number; result: unknown }[] = [];
      for (let start = 0; start < total; start += 250) {
        results.push(...(await env.store.results(jobId, TENANT, { start, count: 250 })).results);
      }
      expect(results.map((r) => r.index)).toEqual(Array.from({ length: total }, (_, i) => i));
      const byChild = results.filter(
        (r) => (r.result as { value: { pid: number } }).value.pid !== process.pid,
      );
      expect(byChild.length).toBeGreaterThanOrEqual(200);
      // The survivor did the rest, without redoing anything the child had recorded.
      expect(results.length - byChild.length).toBe(handled.length);
      expect(new Set(handled).size).toBe(handled.length);
      expect(handled.filter((index) => byChild.some((r) => r.index === index))).toEqual([]);
    } finally {
      await survivor.close();
    }
  });
});
