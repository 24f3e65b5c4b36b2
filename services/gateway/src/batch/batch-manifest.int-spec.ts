// The batch API reading a manifest by URI (`manifest_uri`): streamed from a file under the batch
// root into a real Redis (CI starts one on the default port), checked line by line as it arrives.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDomainError } from '@imagebind-llm/errors';
import { gatewayV1 } from '@imagebind-llm/proto';
import { BatchJobStore, BatchQueue, createRedis, waitForReady } from '@imagebind-llm/queue';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchJobsService } from './batch-jobs.service';

const REDIS_URL = 'redis://127.0.0.1:6379';
const prefix = `t-manifest-${randomBytes(4).toString('hex')}`;
let redis: Redis;
let queue: BatchQueue;
let store: BatchJobStore;
let service: BatchJobsService;
let root: string;

beforeAll(async () => {
  redis = createRedis(REDIS_URL, 'producer');
  await waitForReady(redis);
  store = new BatchJobStore(redis, { prefix: `${prefix}:batch:` });
  queue = new BatchQueue({ connection: redis, prefix });
  root = mkdtempSync(join(tmpdir(), 'ibllm-manifest-'));
  service = new BatchJobsService(
    store,
    queue,
    { maxInputs: 8, maxInputBytes: 1 << 20, maxItems: 50_000, maxManifestBytes: 16 << 20, maxActiveJobs: 20 },
    { allowedHosts: [], fileRoot: root, maxBytes: 16 << 20, timeoutMs: 10_000 },
    { attempts: 2, backoffMs: 10 },
  );
});

afterAll(async () => {
  await queue.close();
  const keys = await redis.keys(`${prefix}*`);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  redis.disconnect();
  rmSync(root, { recursive: true, force: true });
});

const line = (i: number, pad = 0): string =>
  JSON.stringify({
    itemId: `item-${i}`,
    inputs: [{ modality: 'MODALITY_TEXT', text: `text ${i} ${'x'.repeat(pad)}`, weight: 1 }],
  });

async function submit(
  name: string,
  body: string,
  tenant = 'acme',
): Promise<gatewayV1.SubmitBatchJobResponse> {
  writeFileSync(join(root, name), body);
  return service.submit(
    gatewayV1.SubmitBatchJobRequest.fromPartial({
      kind: gatewayV1.BatchJobKind.BATCH_JOB_KIND_EMBED,
      manifestUri: `file:${join(root, name)}`,
    }),
    tenant,
  );
}

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isDomainError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected the submit to fail');
}

describe('batch manifest by URI', () => {
  it('reads a manifest of several MiB in chunks, lines spanning chunk edges, every item in order', async () => {
    // ~4 MiB: the file is read 1 MiB at a time, so lines are cut at chunk edges; blank lines
    // (and a last line without a newline) count as in any JSON-lines file.
    const total = 12_000;
    const lines = Array.from({ length: total }, (_, i) => line(i, i % 500));
    const body = `${lines.slice(0, 6000).join('\n')}\n\n${lines.slice(6000).join('\n')}`;
    expect(Buffer.byteLength(body)).toBeGreaterThan(3 << 20);
    const { job } = await submit('big.jsonl', body);
    expect(job?.progress?.total).toBe(total);
    const jobId = job!.jobId;
    for (const index of [0, 2620, 5999, 6000, total - 1]) {
      const stored = (await store.item(jobId, index)) as {
        itemId: string;
        item: { inputs: { text: string }[] };
      };
      expect(stored.itemId).toBe(`item-${index}`);
      expect(stored.item.inputs[0]?.text).toBe(`text ${index} ${'x'.repeat(index % 500)}`);
    }
    expect(await redis.hlen(`${prefix}:batch:job:{${jobId}}:items`)).toBe(total);
  });

  it('refuses a bad line by its number and leaves nothing behind, even after thousands of items were stored', async () => {
    const lines = Array.from({ length: 5_000 }, (_, i) => line(i));
    lines.splice(4321, 0, '{"itemId": "broken", ');
    const before = await redis.keys(`${prefix}:batch:job:*`);
    const error = await failure(submit('bad.jsonl', lines.join('\n'), 'bad-line'));
    expect(error).toEqual({ code: 'INVALID_INPUT', message: 'manifest_uri: line 4322 is not JSON' });
    expect(await redis.keys(`${prefix}:batch:job:*`)).toEqual(before);
    expect((await store.list('bad-line')).jobs).toEqual([]);
  });

  it('names a duplicate id, an empty manifest and a missing file', async () => {
    const dup = [line(0), line(1), line(0)].join('\n');
    expect((await failure(submit('dup.jsonl', dup, 'dup'))).message).toMatch(
      /items\[2\]\.item_id: "item-0" appears twice/,
    );
    expect(await failure(submit('empty.jsonl', '\n\n', 'empty'))).toEqual({
      code: 'INVALID_INPUT',
      message: 'items: at least one item is required',
    });
    const missing = await failure(
      service.submit(
        gatewayV1.SubmitBatchJobRequest.fromPartial({
          kind: gatewayV1.BatchJobKind.BATCH_JOB_KIND_EMBED,
          manifestUri: `file:${join(root, 'nope.jsonl')}`,
        }),
        'missing',
      ),
    );
    expect(missing.code).toBe('NOT_FOUND');
    expect(missing.message).toMatch(/^manifest_uri: /);
  });
});
