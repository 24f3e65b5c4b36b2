import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchJobStore, DEFAULT_RETENTION_S, type BatchJobState } from './batch-job-store';
import { createRedisTestEnv, waitFor, type RedisTestEnv } from './testing/redis-test-env';

let env: RedisTestEnv;
let counter = 0;
const newJobId = (): string => `job-${++counter}`;
const items = (n: number): { uri: string }[] =>
  Array.from({ length: n }, (_, i) => ({ uri: `s3://b/${i}.png` }));

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error.code;
    throw error;
  }
  throw new Error('expected a DomainError');
}

async function messageOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error.message;
    throw error;
  }
  throw new Error('expected a DomainError');
}

beforeAll(async () => {
  env = await createRedisTestEnv('store');
});

afterAll(async () => {
  await env.cleanup();
});

describe('BatchJobStore', () => {
  it('creates a QUEUED job with its items and options, and returns the same job on a retried create', async () => {
    const jobId = newJobId();
    const created = await env.store.create({
      jobId,
      tenant: 'acme',
      kind: 'embed',
      items: items(3),
      options: { collection: 'c1' },
      createdAt: new Date(1_700_000_000_000),
    });
    expect(created).toMatchObject({ jobId, tenant: 'acme', kind: 'embed', state: 'QUEUED', total: 3 });
    expect(created).toMatchObject({ succeeded: 0, failed: 0, cancelled: 0, options: { collection: 'c1' } });
    expect(created.createTime.getTime()).toBe(1_700_000_000_000);
    expect(created.finishTime).toBeUndefined();
    // What a worker reads before a run of items, in one round trip: the items, the job's kind and options.
    expect(await env.store.claimItems(jobId, 2, 1)).toMatchObject({
      state: 'claimed',
      record: { jobId, kind: 'embed', options: { collection: 'c1' } },
      pending: [{ index: 2, item: { uri: 's3://b/2.png' } }],
    });
    expect(await env.store.claimItems(jobId, 7, 1)).toMatchObject({
      state: 'claimed',
      pending: [{ index: 7, item: undefined }],
    });

    await env.store.recordResult(jobId, 0, { ok: true, value: 1 });
    // A redelivered run skips the items that already have their outcome.
    const claim = await env.store.claimItems(jobId, 0, 3);
    expect(claim.state === 'claimed' ? claim.pending : undefined).toEqual([
      { index: 1, item: { uri: 's3://b/1.png' } },
      { index: 2, item: { uri: 's3://b/2.png' } },
    ]);
    const again = await env.store.create({
      jobId,
      tenant: 'acme',
      kind: 'embed',
      items: items(3),
      options: {},
    });
    expect(again).toMatchObject({ jobId, state: 'RUNNING', succeeded: 1, options: { collection: 'c1' } });
    expect(
      (await env.store.list('acme', { pageSize: 100 })).jobs.filter((j) => j.jobId === jobId),
    ).toHaveLength(1);
  });

  it('rejects bad job ids, empty jobs and unknown kinds', async () => {
    const base = { tenant: 'acme', kind: 'embed' as const, items: items(1), options: {} };
    expect(await codeOf(env.store.create({ ...base, jobId: 'a:b' }))).toBe(ErrorCode.InvalidInput);
    expect(await codeOf(env.store.create({ ...base, jobId: newJobId(), items: [] }))).toBe(
      ErrorCode.InvalidInput,
    );
    expect(
      await codeOf(env.store.create({ ...base, jobId: newJobId(), kind: 'paint' as unknown as 'embed' })),
    ).toBe(ErrorCode.InvalidInput);
    expect(await env.store.claimItems('no-such-job', 0, 4)).toEqual({ state: 'missing' });
    expect(await codeOf(env.store.item('no-such-job', 0))).toBe(ErrorCode.NotFound);
  });

  it('keeps tenants apart: another tenant gets NOT_FOUND on get, cancel and results, and lists only its own', async () => {
    const jobId = newJobId();
    await env.store.create({ jobId, tenant: 'iso-a', kind: 'generate', items: items(2), options: {} });
    await env.store.create({
      jobId: newJobId(),
      tenant: 'iso-b',
      kind: 'generate',
      items: items(2),
      options: {},
    });

    expect(await codeOf(env.store.get(jobId, 'iso-b'))).toBe(ErrorCode.NotFound);
    expect(await codeOf(env.store.requestCancel(jobId, 'iso-b'))).toBe(ErrorCode.NotFound);
    expect(await codeOf(env.store.results(jobId, 'iso-b', { start: 0, count: 10 }))).toBe(ErrorCode.NotFound);
    // Same message as for a job that does not exist: existence is not revealed.
    const other = await messageOf(env.store.get(jobId, 'iso-b'));
    const missing = await messageOf(env.store.get('job-none', 'iso-b'));
    expect(other.replace(jobId, 'X')).toBe(missing.replace('job-none', 'X'));
    expect((await env.store.get(jobId, 'iso-a')).state).toBe('QUEUED');
    expect((await env.store.list('iso-b')).jobs.map((j) => j.tenant)).toEqual(['iso-b']);
    expect((await env.store.list('iso-a')).jobs.map((j) => j.jobId)).toEqual([jobId]);

    // A create that collides with another tenant's id does not hand out that job.
    expect(
      await codeOf(
        env.store.create({ jobId, tenant: 'iso-b', kind: 'generate', items: items(2), options: {} }),
      ),
    ).toBe(ErrorCode.AlreadyExists);
  });

  it('records each item exactly once under 50 concurrent duplicate calls', async () => {
    const jobId = newJobId();
    await env.store.create({ jobId, tenant: 'acme', kind: 'embed', items: items(4), options: {} });
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, async (_, i) =>
        env.store.recordResult(jobId, 1, { ok: true, value: { call: i } }),
      ),
    );
    expect(outcomes.filter(Boolean)).toHaveLength(1);
    const winner = outcomes.indexOf(true);
    const job = await env.store.get(jobId, 'acme');
    expect(job).toMatchObject({ succeeded: 1, failed: 0, cancelled: 0, state: 'RUNNING' });
    const page = await env.store.results(jobId, 'acme', { start: 0, count: 10 });
    expect(page).toEqual({
      results: [{ index: 1, result: { ok: true, value: { call: winner } } }],
      resultCount: 1,
    });
    // A later, different outcome for the same item changes nothing.
    expect(await env.store.recordResult(jobId, 1, { ok: false, code: 'INTERNAL', message: 'x' })).toBe(false);
    expect((await env.store.get(jobId, 'acme')).failed).toBe(0);
  });

  it.each<[string, ('ok' | 'fail' | 'cancel')[], BatchJobState]>([
    ['all succeeded', ['ok', 'ok', 'ok'], 'SUCCEEDED'],
    ['some failed', ['ok', 'fail', 'ok'], 'COMPLETED_WITH_ERRORS'],
    ['all failed', ['fail', 'fail', 'fail'], 'FAILED'],
    ['some cancelled', ['ok', 'cancel', 'fail'], 'CANCELLED'],
  ])('computes the final state when %s', async (_name, kinds, expected) => {
    const jobId = newJobId();
    await env.store.create({ jobId, tenant: 'acme', kind: 'embed', items: items(kinds.length), options: {} });
    for (const [index, kind] of kinds.entries()) {
      const before = await env.store.get(jobId, 'acme');
      expect(before.finishTime).toBeUndefined();
      await env.store.recordResult(
        jobId,
        index,
        kind === 'ok'
          ? { ok: true, value: index }
          : kind === 'fail'
            ? { ok: false, code: 'INVALID_INPUT', message: `bad ${index}` }
            : { cancelled: true },
      );
    }
    const job = await env.store.get(jobId, 'acme');
    expect(job.state).toBe(expected);
    expect(job.succeeded + job.failed + job.cancelled).toBe(kinds.length);
    expect(job.finishTime).toBeInstanceOf(Date);
    expect(job.errorMessage === undefined).toBe(expected !== 'FAILED');
  });

  it('cancels a running job once, refuses to cancel a final job, and reports cancellation', async () => {
    const jobId = newJobId();
    await env.store.create({ jobId, tenant: 'acme', kind: 'embed', items: items(2), options: {} });
    expect(await env.store.claimItems(jobId, 0, 1)).toMatchObject({
      state: 'claimed',
      record: { jobId, kind: 'embed', state: 'QUEUED' },
    });
    expect((await env.store.get(jobId, 'acme')).state).toBe('RUNNING');
    expect(await env.store.isCancelled(jobId)).toBe(false);
    expect((await env.store.requestCancel(jobId, 'acme')).state).toBe('CANCELLING');
    expect((await env.store.requestCancel(jobId, 'acme')).state).toBe('CANCELLING');
    expect(await env.store.isCancelled(jobId)).toBe(true);
    await env.store.recordResult(jobId, 0, { ok: true, value: 0 });
    expect(await env.store.unrecordedIndices(jobId)).toEqual([1]);
    await env.store.recordResult(jobId, 1, { cancelled: true });
    expect((await env.store.get(jobId, 'acme')).state).toBe('CANCELLED');
    expect(await codeOf(env.store.requestCancel(jobId, 'acme'))).toBe(ErrorCode.FailedPrecondition);
  });

  it('records the mixed outcomes of a queue job in one call: each counter, first outcome wins, one settle', async () => {
    const jobId = newJobId();
    await env.store.create({ jobId, tenant: 'acme', kind: 'embed', items: items(4), options: {} });
    await env.store.recordResult(jobId, 3, { ok: true, value: 'first' });
    const recorded = await env.store.recordResults(jobId, [
      { index: 0, outcome: { ok: true, value: 0 } },
      { index: 1, outcome: { ok: false, code: 'INVALID_INPUT', message: 'bad', attempts: 1 } },
      { index: 2, outcome: { cancelled: true } },
      { index: 3, outcome: { ok: false, code: 'INTERNAL', message: 'late', attempts: 2 } },
    ]);
    expect(recorded).toBe(3);
    const job = await env.store.get(jobId, 'acme');
    expect(job).toMatchObject({ state: 'CANCELLED', succeeded: 2, failed: 1, cancelled: 1 });
    const page = await env.store.results(jobId, 'acme', { start: 0, count: 10 });
    expect(page.results.map((r) => r.result)).toEqual([
      { ok: true, value: 0 },
      { ok: false, code: 'INVALID_INPUT', message: 'bad', attempts: 1 },
      { cancelled: true },
      { ok: true, value: 'first' },
    ]);
    // A final job takes no more outcomes; a missing one is NOT_FOUND.
    expect(await env.store.recordResults(jobId, [{ index: 0, outcome: { cancelled: true } }])).toBe(0);
    expect(
      await codeOf(env.store.recordResults('no-such-job', [{ index: 0, outcome: { cancelled: true } }])),
    ).toBe(ErrorCode.NotFound);
  });

  it('records many items cancelled in one call, keeping outcomes already recorded, and settles the job', async () => {
    const jobId = newJobId();
    await env.store.create({ jobId, tenant: 'acme', kind: 'embed', items: items(3), options: {} });
    await env.store.requestCancel(jobId, 'acme');
    await env.store.recordResult(jobId, 0, { ok: true, value: 0 });
    expect(await env.store.recordCancelled(jobId, [0, 1, 2])).toBe(2);
    const job = await env.store.get(jobId, 'acme');
    expect(job).toMatchObject({ state: 'CANCELLED', succeeded: 1, cancelled: 2, failed: 0 });
    expect(job.finishTime).toBeInstanceOf(Date);
    expect(await env.store.unrecordedIndices(jobId)).toEqual([]);
    // Final: nothing more is recorded; a missing job is NOT_FOUND.
    expect(await env.store.recordCancelled(jobId, [1])).toBe(0);
    expect(await codeOf(env.store.recordCancelled('no-such-job', [0]))).toBe(ErrorCode.NotFound);
  });

  it('fails a job as a whole and then ignores item outcomes', async () => {
    const jobId = newJobId();
    await env.store.create({ jobId, tenant: 'acme', kind: 'index-import', items: items(2), options: {} });
    expect(await env.store.markFailed(jobId, 'the manifest could not be read')).toBe(true);
    expect(await env.store.recordResult(jobId, 0, { ok: true, value: 0 })).toBe(false);
    const job = await env.store.get(jobId, 'acme');
    expect(job).toMatchObject({
      state: 'FAILED',
      errorMessage: 'the manifest could not be read',
      succeeded: 0,
    });
    expect(await env.store.markFailed(jobId, 'again')).toBe(false);
  });

  it('pages results in index order from a start index', async () => {
    const jobId = newJobId();
    await env.store.create({ jobId, tenant: 'acme', kind: 'embed', items: items(10), options: {} });
    for (const index of [7, 2, 9, 0, 5])
      await env.store.recordResult(jobId, index, { ok: true, value: index * 10 });
    const first = await env.store.results(jobId, 'acme', { start: 0, count: 2 });
    expect(first.resultCount).toBe(5);
    expect(first.results.map((r) => r.index)).toEqual([0, 2]);
    const next = await env.store.results(jobId, 'acme', { start: 3, count: 10 });
    expect(next.results).toEqual(
      [5, 7, 9].map((index) => ({ index, result: { ok: true, value: index * 10 } })),
    );
    expect((await env.store.results(jobId, 'acme', { start: 10, count: 5 })).results).toEqual([]);
  });

  it('lists a tenant’s jobs newest first across pages, including equal creation times, with state filters', async () => {
    const tenant = 'pager';
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const jobId = newJobId();
      ids.push(jobId);
      // Jobs 2 and 3 share a creation time: the cursor must not skip or repeat either.
      const at = new Date(1_700_000_000_000 + (i === 3 ? 2 : i) * 1000);
      await env.store.create({ jobId, tenant, kind: 'embed', items: items(1), options: {}, createdAt: at });
    }
    await env.store.recordResult(ids[4]!, 0, { ok: true, value: 1 });

    const seen: string[] = [];
    let token = '';
    let pages = 0;
    do {
      const page = await env.store.list(tenant, { pageSize: 3, pageToken: token });
      seen.push(...page.jobs.map((j) => j.jobId));
      token = page.nextPageToken;
      pages++;
    } while (token !== '');
    expect(pages).toBe(3);
    expect([...seen].sort()).toEqual([...ids].sort());
    const times = await Promise.all(
      seen.map(async (id) => (await env.store.get(id, tenant)).createTime.getTime()),
    );
    expect(times).toEqual([...times].sort((a, b) => b - a));

    const succeeded = await env.store.list(tenant, { states: ['SUCCEEDED'] });
    expect(succeeded).toEqual({ jobs: [expect.objectContaining({ jobId: ids[4] })], nextPageToken: '' });
    expect(await codeOf(env.store.list(tenant, { pageToken: 'garbage' }))).toBe(ErrorCode.InvalidInput);
    expect(await codeOf(env.store.list(tenant, { pageSize: 0 }))).toBe(ErrorCode.InvalidInput);
  });
});

describe('BatchJobStore retention and result size (issue #16 item 3)', () => {
  const keysOf = (jobId: string): string[] => {
    const job = `${env.storePrefix}job:{${jobId}}`;
    return [job, `${job}:items`, `${job}:results`, `${job}:done`];
  };
  const pttls = async (jobId: string): Promise<number[]> =>
    Promise.all(keysOf(jobId).map(async (key) => env.redis.pttl(key)));

  it('a finished job expires with its items and results after the retention (2 s); an unfinished one does not', async () => {
    const store = new BatchJobStore(env.redis, { prefix: env.storePrefix, retentionS: 2 });
    const tenant = 'retention';
    const done = newJobId();
    const running = newJobId();
    for (const jobId of [done, running]) {
      await store.create({ jobId, tenant, kind: 'embed', items: items(2), options: {} });
    }
    await store.recordResult(done, 0, { ok: true, value: 1 });
    await store.recordResult(running, 0, { ok: true, value: 1 });
    // Not final yet: nothing expires, whatever the retention.
    expect(await pttls(done)).toEqual([-1, -1, -1, -1]);
    await store.recordResult(done, 1, { ok: false, code: 'NOT_FOUND', message: 'gone', attempts: 1 });
    expect((await store.get(done, tenant)).state).toBe('COMPLETED_WITH_ERRORS');
    for (const ttl of await pttls(done)) {
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(2_000);
    }
    expect(await pttls(running)).toEqual([-1, -1, -1, -1]);

    await waitFor(
      'the finished job to expire',
      async () => ((await env.redis.exists(...keysOf(done))) === 0 ? true : undefined),
      10_000,
      100,
    );
    expect(await codeOf(store.get(done, tenant))).toBe(ErrorCode.NotFound);
    expect(await codeOf(store.results(done, tenant, { start: 0, count: 10 }))).toBe(ErrorCode.NotFound);
    expect((await store.list(tenant)).jobs.map((j) => j.jobId)).toEqual([running]);
    // list() drops the expired id from the tenant's index, so the index does not grow forever.
    expect(await env.redis.zrange(`${env.storePrefix}tenant:${tenant}:jobs`, 0, -1)).toEqual([running]);
    expect((await store.get(running, tenant)).state).toBe('RUNNING');
  });

  it('a job failed as a whole expires too; retention -1 keeps a finished job; 7 days by default', async () => {
    const short = new BatchJobStore(env.redis, { prefix: env.storePrefix, retentionS: 2 });
    const failed = newJobId();
    await short.create({ jobId: failed, tenant: 't', kind: 'embed', items: items(1), options: {} });
    expect(await short.markFailed(failed, 'manifest unreadable')).toBe(true);
    expect((await pttls(failed))[0]).toBeGreaterThan(0);

    const keep = new BatchJobStore(env.redis, { prefix: env.storePrefix, retentionS: -1 });
    const kept = newJobId();
    await keep.create({ jobId: kept, tenant: 't', kind: 'embed', items: items(1), options: {} });
    await keep.recordResult(kept, 0, { ok: true, value: 1 });
    expect((await keep.get(kept, 't')).state).toBe('SUCCEEDED');
    expect(await pttls(kept)).toEqual([-1, -1, -1, -1]);

    const byDefault = newJobId();
    await env.store.create({ jobId: byDefault, tenant: 't', kind: 'embed', items: items(1), options: {} });
    await env.store.recordResult(byDefault, 0, { ok: true, value: 1 });
    const ttl = await env.redis.ttl(keysOf(byDefault)[2]!);
    expect(ttl).toBeGreaterThan(DEFAULT_RETENTION_S - 60);
    expect(ttl).toBeLessThanOrEqual(DEFAULT_RETENTION_S);
    expect(() => new BatchJobStore(env.redis, { prefix: 'x', retentionS: 0 })).toThrow(/retentionS/);
  });

  it('stores a 1024-d embedding as packed float32, reads it back exactly, and still reads JSON-text results', async () => {
    const vector = Float32Array.from({ length: 1024 }, (_, i) => Math.sin(i) / (i + 1));
    const bytes = Buffer.from(vector.buffer);
    const outcome = { ok: true as const, value: { itemId: 'item-0', embedding: bytes } };
    const jobId = newJobId();
    await env.store.create({ jobId, tenant: 'bytes', kind: 'embed', items: items(2), options: {} });
    await env.store.recordResult(jobId, 0, outcome);
    const page = await env.store.results(jobId, 'bytes', { start: 0, count: 10 });
    const back = page.results[0]?.result as { ok: true; value: { itemId: string; embedding: Buffer } };
    expect(back.value.itemId).toBe('item-0');
    expect(Buffer.compare(back.value.embedding, bytes)).toBe(0);

    // The same result as the formats it replaces, each alone in a hash like the results hash.
    const results = keysOf(jobId)[2]!;
    const base64Key = `${env.storePrefix}size:base64`;
    const numbersKey = `${env.storePrefix}size:numbers`;
    const base64Json = JSON.stringify({
      ...outcome,
      value: { ...outcome.value, embedding: bytes.toString('base64') },
    });
    const numbersJson = JSON.stringify({
      ...outcome,
      value: { ...outcome.value, embedding: Array.from(vector) },
    });
    await env.redis.hset(base64Key, '0', base64Json);
    await env.redis.hset(numbersKey, '0', numbersJson);
    const usage = async (key: string): Promise<number> =>
      Number(await env.redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    const packed = await usage(results);
    const asBase64 = await usage(base64Key);
    const asNumbers = await usage(numbersKey);
    console.log(
      `Redis bytes for one 1024-d embedding result (MEMORY USAGE of its hash): number text ${asNumbers}, base64 JSON ${asBase64}, packed float32 ${packed}`,
    );
    // ~4,170 bytes (4,096 of floats, the item id, a few dozen of JSON) land in jemalloc's 5,120-byte
    // size class; the hash and its one field add a few hundred. Base64 text needs the 6,144 class.
    expect(packed).toBeLessThanOrEqual(5_120 + 512);
    expect(packed).toBeLessThan(asBase64);

    // A result written as JSON text before packing existed (base64 embedding) still reads.
    await env.redis.hset(results, '1', base64Json);
    await env.redis.zadd(keysOf(jobId)[3]!, 1, '1');
    const legacy = (await env.store.results(jobId, 'bytes', { start: 1, count: 1 })).results[0]?.result;
    expect(legacy).toEqual({ ok: true, value: { itemId: 'item-0', embedding: bytes.toString('base64') } });
  });
});
