import { DomainError } from '@imagebind-llm/errors';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isFinalState, type JobRecord } from './batch-job-store';
import { BatchQueue, cancelBatchJob } from './batch-queue';
import { startBatchWorker, type BatchWorker, type ItemContext } from './batch-worker';
import { BATCH_QUEUE, itemJobId } from './job-registry';
import { createRedisTestEnv, TEST_REDIS_URL, waitFor, type RedisTestEnv } from './testing/redis-test-env';

let env: RedisTestEnv;
let queue: BatchQueue;
let workers: BatchWorker[] = [];
let counter = 0;
const TENANT = 'flow-tenant';

class TransientError extends Error {}

beforeAll(async () => {
  env = await createRedisTestEnv('flow');
  queue = new BatchQueue({ redisUrl: TEST_REDIS_URL, prefix: env.bullPrefix });
});

afterEach(async () => {
  await Promise.all(workers.map(async (w) => w.close()));
  workers = [];
});

afterAll(async () => {
  await queue.close();
  await env.cleanup();
});

async function submit(total: number, chunk: number, attempts = 3): Promise<string> {
  const jobId = `flow-${++counter}`;
  const items = Array.from({ length: total }, (_, i) => ({ n: i }));
  await env.store.create({ jobId, tenant: TENANT, kind: 'embed', items, options: { collection: 'c' } });
  await queue.enqueue(jobId, total, { attempts, backoffMs: 10, chunk });
  return jobId;
}

async function startWorkers(
  count: number,
  processItem: (ctx: ItemContext) => unknown,
  extra: { cancelCheckIntervalMs?: number } = {},
): Promise<void> {
  for (let i = 0; i < count; i++) {
    workers.push(
      await startBatchWorker({
        redisUrl: TEST_REDIS_URL,
        prefix: env.bullPrefix,
        store: env.store,
        concurrency: 8,
        processItem: (ctx) => Promise.resolve().then(() => processItem(ctx)),
        isTransient: (error) => error instanceof TransientError,
        // Stands for the worker service's mapping of the gateway's status errors.
        describeError: (error) =>
          error instanceof TransientError ? { code: 'UNAVAILABLE', message: error.message } : undefined,
        logger: env.logger,
        ...extra,
      }),
    );
  }
}

async function waitFinal(jobId: string): Promise<JobRecord> {
  return waitFor(
    `job ${jobId} to finish`,
    async () => {
      const job = await env.store.get(jobId, TENANT);
      return isFinalState(job.state) ? job : undefined;
    },
    120_000,
  );
}

async function allResults(jobId: string): Promise<{ index: number; result: unknown }[]> {
  const out: { index: number; result: unknown }[] = [];
  let start = 0;
  for (;;) {
    const page = await env.store.results(jobId, TENANT, { start, count: 300 });
    if (page.results.length === 0) return out;
    out.push(...page.results);
    start = page.results[page.results.length - 1]!.index + 1;
  }
}

// One item per queue job (generate), and 16 (embed): a queue job claims, runs and records its items together.
describe.each([1, 16])('batch flow end to end, %i item(s) per queue job', (chunk) => {
  it('processes a 1,000-item job on two workers: every index exactly once, state SUCCEEDED', async () => {
    const calls = new Map<number, number>();
    const jobId = await submit(1000, chunk);
    expect((await queue.counts()).backlog).toBeGreaterThanOrEqual(Math.ceil(1000 / chunk));
    await startWorkers(2, (ctx) => {
      calls.set(ctx.index, (calls.get(ctx.index) ?? 0) + 1);
      expect(ctx.item).toEqual({ n: ctx.index });
      expect(ctx.options).toEqual({ collection: 'c' });
      expect(ctx.kind).toBe('embed');
      return { echo: ctx.index };
    });
    const job = await waitFinal(jobId);
    expect(job).toMatchObject({ state: 'SUCCEEDED', total: 1000, succeeded: 1000, failed: 0, cancelled: 0 });
    const results = await allResults(jobId);
    expect(results.map((r) => r.index)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    for (const r of results) expect(r.result).toEqual({ ok: true, value: { echo: r.index } });
    expect(calls.size).toBe(1000);
    // The parent runs after the last child; then nothing is left in the queue.
    await waitFor('the queue to drain', async () =>
      (await queue.counts()).backlog === 0 ? true : undefined,
    );
    expect(env.log.lines.some((l) => l['msg'] === 'batch job finalized' && l['jobId'] === jobId)).toBe(true);

    // Enqueueing the same job again adds nothing: deterministic ids.
    await queue.enqueue(jobId, 1000, { attempts: 3, backoffMs: 10, chunk });
    expect((await env.store.get(jobId, TENANT)).succeeded).toBe(1000);
  });

  it('records a poisoned item as failed with its code and message and finishes the rest', async () => {
    const attemptsOf13: number[] = [];
    const jobId = await submit(1000, chunk);
    await startWorkers(2, (ctx) => {
      if (ctx.index === 13) {
        attemptsOf13.push(ctx.attempt);
        throw DomainError.invalidInput('item 13 is not an image', 'inputs[0]');
      }
      if (ctx.index === 14) throw new Error('secret internal detail');
      return { echo: ctx.index };
    });
    const job = await waitFinal(jobId);
    expect(job).toMatchObject({ state: 'COMPLETED_WITH_ERRORS', succeeded: 998, failed: 2, cancelled: 0 });
    const page = await env.store.results(jobId, TENANT, { start: 13, count: 2 });
    expect(page.results).toEqual([
      {
        index: 13,
        result: { ok: false, code: 'INVALID_INPUT', message: 'item 13 is not an image', attempts: 1 },
      },
      {
        index: 14,
        result: {
          ok: false,
          code: 'INTERNAL',
          message: 'Internal error while processing the item.',
          attempts: 1,
        },
      },
    ]);
    // Permanent errors are not retried.
    expect(attemptsOf13).toEqual([1]);
  });

  it('retries transient errors with backoff and counts each item once', async () => {
    const attempts = new Map<number, number[]>();
    const jobId = await submit(200, chunk, 3);
    await startWorkers(1, (ctx) => {
      attempts.set(ctx.index, [...(attempts.get(ctx.index) ?? []), ctx.attempt]);
      if (ctx.index % 10 === 0 && ctx.attempt === 1) throw new TransientError('encoder overloaded');
      // Item 7 never recovers: on its last attempt the transient error becomes its result.
      if (ctx.index === 7) throw new TransientError('still down');
      return { echo: ctx.index, attempt: ctx.attempt };
    });
    const job = await waitFinal(jobId);
    expect(job).toMatchObject({ state: 'COMPLETED_WITH_ERRORS', succeeded: 199, failed: 1 });
    for (let index = 0; index < 200; index += 10) expect(attempts.get(index)).toEqual([1, 2]);
    expect(attempts.get(7)).toEqual([1, 2, 3]);
    expect(attempts.get(1)).toEqual([1]);
    const first = await env.store.results(jobId, TENANT, { start: 0, count: 1 });
    expect(first.results[0]?.result).toEqual({ ok: true, value: { echo: 0, attempt: 2 } });
    const seven = await env.store.results(jobId, TENANT, { start: 7, count: 1 });
    // It keeps its cause: the transient error's own code and message, and the tries it took.
    expect(seven.results[0]?.result).toEqual({
      ok: false,
      code: 'UNAVAILABLE',
      message: 'still down',
      attempts: 3,
    });
  });

  it('cancels mid-job: running items abort, no new item starts, the job ends CANCELLED with every item accounted for', async () => {
    const jobId = await submit(1000, chunk);
    let succeeded = 0;
    let hung = 0;
    let aborted = 0;
    let startedAfterCancel = 0;
    let cancelRequested = false;
    await startWorkers(
      2,
      (ctx) => {
        if (cancelRequested) startedAfterCancel++;
        if (succeeded < 100) {
          succeeded++;
          return { echo: ctx.index };
        }
        // After ~100 results every item hangs until aborted: the job can only finish through
        // the cancel reaching running items, and hung items fill every slot, so nothing new runs.
        hung++;
        return new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => {
            aborted++;
            reject(new Error('aborted'));
          });
        });
      },
      { cancelCheckIntervalMs: 100 },
    );
    await waitFor('about 100 results and every slot busy', () => (hung >= 16 ? true : undefined));
    cancelRequested = true;
    const cancelling = await cancelBatchJob(env.store, queue, jobId, TENANT);
    expect(['CANCELLING', 'CANCELLED']).toContain(cancelling.state);

    const job = await waitFinal(jobId);
    expect(job).toMatchObject({ state: 'CANCELLED', succeeded: 100, failed: 0, cancelled: 900 });
    expect(aborted).toBe(hung);
    expect(startedAfterCancel).toBe(0);
    const results = await allResults(jobId);
    expect(results).toHaveLength(1000);
    expect(results.filter((r) => (r.result as { cancelled?: boolean }).cancelled === true)).toHaveLength(900);
    await waitFor('the queue to drain', async () =>
      (await queue.counts()).backlog === 0 ? true : undefined,
    );
  });

  it('a job cancelled before any worker ran: its queued items leave the queue, and it expires like any finished job', async () => {
    const jobId = await submit(600, chunk);
    const queued = (await queue.counts()).waiting;
    const jobs = Math.ceil(600 / chunk);
    expect(queued).toBeGreaterThanOrEqual(jobs);
    const itemKeys = Array.from(
      { length: jobs },
      (_, n) => `${env.bullPrefix}:${BATCH_QUEUE}:${itemJobId(jobId, n * chunk)}`,
    );
    expect(await env.redis.exists(...itemKeys)).toBe(jobs);
    const job = await cancelBatchJob(env.store, queue, jobId, TENANT);
    // Every item was still queued, so the cancel itself accounts for all of them.
    expect(job).toMatchObject({ state: 'CANCELLED', succeeded: 0, failed: 0, cancelled: 600 });
    expect((await queue.counts()).waiting).toBeLessThanOrEqual(queued - jobs + 1); // + the finalize parent
    expect(await env.redis.exists(...itemKeys)).toBe(0);
    // Final, so the record and results carry the retention TTL (the default week here).
    expect(await env.redis.ttl(`${env.storePrefix}job:{${jobId}}:results`)).toBeGreaterThan(0);
    expect(await env.redis.ttl(`${env.storePrefix}job:{${jobId}}`)).toBeGreaterThan(0);
  });
});
