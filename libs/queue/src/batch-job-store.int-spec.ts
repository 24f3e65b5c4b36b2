import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BatchJobState } from './batch-job-store';
import { createRedisTestEnv, type RedisTestEnv } from './testing/redis-test-env';

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
    expect(await env.store.item(jobId, 2)).toEqual({ uri: 's3://b/2.png' });

    await env.store.recordResult(jobId, 0, { ok: true, value: 1 });
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
    await env.store.markRunning(jobId);
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
