// e2e for batch jobs: a standalone gateway with the batch API on the real Redis, a batch-worker
// process feeding items back to it, and the SDK as the user. Each run uses its own key prefix.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  gatewayV1,
  ImageBindClient,
  isImageBindError,
  text,
  uri,
  type BatchItemResult,
} from '@imagebind-llm/client';
import {
  goldenPath,
  repoRoot,
  startService,
  startStandaloneGateway,
  type ServiceProcess,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const KEY_A = `a-${randomBytes(12).toString('hex')}`;
const KEY_B = `b-${randomBytes(12).toString('hex')}`;
const KEY_WORKER = `w-${randomBytes(12).toString('hex')}`;
const PREFIX = `t-batch-${randomBytes(4).toString('hex')}`;
const { BatchJobKind, BatchJobState } = gatewayV1;

async function waitFinal(
  client: ImageBindClient,
  jobId: string,
  timeoutMs = 90_000,
): Promise<gatewayV1.BatchJob> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const job = await client.getBatchJob(jobId);
    if (
      [
        BatchJobState.BATCH_JOB_STATE_SUCCEEDED,
        BatchJobState.BATCH_JOB_STATE_COMPLETED_WITH_ERRORS,
        BatchJobState.BATCH_JOB_STATE_FAILED,
        BatchJobState.BATCH_JOB_STATE_CANCELLED,
      ].includes(job.state)
    ) {
      return job;
    }
    if (Date.now() > until)
      throw new Error(`job ${jobId} not final after ${timeoutMs} ms: ${JSON.stringify(job)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** One state of `ibllm_batch_queue_jobs` from a process's /metrics. */
async function queueJobs(httpBase: string, state: string): Promise<number> {
  const body = await (await fetch(`${httpBase}/metrics`)).text();
  const line = body
    .split('\n')
    .find((l) => l.startsWith('ibllm_batch_queue_jobs{') && l.includes(`state="${state}"`));
  if (line === undefined) throw new Error(`no ibllm_batch_queue_jobs{state="${state}"} in /metrics`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Calls of a GatewayService method a process answered (any status), from its /metrics. */
async function handledCalls(httpBase: string, method: string): Promise<number> {
  const body = await (await fetch(`${httpBase}/metrics`)).text();
  return body
    .split('\n')
    .filter(
      (l) =>
        l.startsWith('grpc_server_handled_total{') &&
        l.includes('grpc_service="imagebind.gateway.v1.GatewayService"') &&
        l.includes(`grpc_method="${method}"`),
    )
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/**
 * A standalone gateway with the batch API on the real Redis under `prefix`, its in-process worker
 * off (the worker process under test runs the items), keys for tenant-a and the worker; `extra`
 * adds or overrides variables.
 */
async function startBatchGateway(prefix: string, extra: Record<string, string>): Promise<ServiceProcess> {
  return startStandaloneGateway(
    {
      GATEWAY_API_KEYS: `tenant-a:${KEY_A},worker:${KEY_WORKER}`,
      GATEWAY_RATE_LIMIT_RPM: '1000000',
      GATEWAY_RATE_LIMIT_BURST: '100000',
      GATEWAY_REDIS_URL: 'redis://127.0.0.1:6379',
      GATEWAY_QUEUE_PREFIX: prefix,
      GATEWAY_BATCH_WORKER: 'false',
      ...extra,
    },
    'gateway',
  );
}

/** A batch-worker process on the same Redis prefix, calling `gateway` with the worker's key. */
async function startWorkerProcess(
  gateway: ServiceProcess,
  prefix: string,
  extra: Record<string, string>,
): Promise<ServiceProcess> {
  return startService('batch-worker', {
    GRPC_PORT: '0',
    HTTP_PORT: '0',
    REDIS_URL: 'redis://127.0.0.1:6379',
    QUEUE_PREFIX: prefix,
    GATEWAY_TARGET: gateway.grpcAddress,
    GATEWAY_API_KEY: KEY_WORKER,
    ...extra,
  });
}

describe('batch jobs through the gateway and a worker process (real Redis)', () => {
  let gateway: ServiceProcess;
  let worker: ServiceProcess;
  let a: ImageBindClient;
  let b: ImageBindClient;
  const fileRoot = dirname(goldenPath('inputs', 'girl.jpg'));

  beforeAll(async () => {
    gateway = await startBatchGateway(PREFIX, {
      GATEWAY_API_KEYS: `tenant-a:${KEY_A},tenant-b:${KEY_B},worker:${KEY_WORKER}`,
      GATEWAY_BATCH_FILE_ROOT: fileRoot,
      GATEWAY_BATCH_MAX_ACTIVE_JOBS: '3',
    });
    worker = await startWorkerProcess(gateway, PREFIX, {
      BATCH_FILE_ROOT: fileRoot,
      WORKER_CONCURRENCY: '8',
    });
    a = new ImageBindClient({ addresses: [gateway.grpcAddress], apiKey: KEY_A });
    b = new ImageBindClient({ addresses: [gateway.grpcAddress], apiKey: KEY_B });
  }, 180_000);

  afterAll(async () => {
    a?.close();
    b?.close();
    await worker?.proc.stop('SIGTERM', 20_000);
    await gateway?.proc.stop('SIGKILL');
  });

  it('embeds every item exactly once; a missing file fails alone with its reason', async () => {
    const items: gatewayV1.BatchItem[] = Array.from({ length: 40 }, (_, i) => ({
      itemId: `t${i}`,
      inputs: [text(`item number ${i}`)],
      instruction: '',
      input: '',
    }));
    items.push({ itemId: 'girl', inputs: [uri('image', 'girl.jpg')], instruction: '', input: '' });
    items.push({ itemId: 'missing', inputs: [uri('image', 'no-such-file.jpg')], instruction: '', input: '' });
    const job = await a.submitBatchJob({ kind: BatchJobKind.BATCH_JOB_KIND_EMBED, items });
    const final = await waitFinal(a, job.jobId);
    expect(final.state).toBe(BatchJobState.BATCH_JOB_STATE_COMPLETED_WITH_ERRORS);
    expect(final.progress).toMatchObject({ total: 42, succeeded: 41, failed: 1, cancelled: 0 });
    const results: BatchItemResult[] = [];
    for await (const r of a.streamBatchJobResults(job.jobId)) results.push(r);
    expect(results.map((r) => r.index)).toEqual(Array.from({ length: 42 }, (_, i) => i));
    const failed = results.filter((r) => r.kind === 'error');
    expect(failed.map((r) => r.itemId)).toEqual(['missing']);
    expect(failed[0]?.kind === 'error' && failed[0].error.code).toBe('NOT_FOUND');
    const girl = results.find((r) => r.itemId === 'girl');
    expect(girl?.kind === 'embedding' && girl.embedding.length).toBe(1024);
    // The worker sent the items' embeds together (EmbedMany, issue #16), and each item holds what
    // its own Embed answers: the same encoders and fusion, only float32 rounding apart if a batch
    // met the encoders in another order.
    const t7 = results.find((r) => r.itemId === 't7');
    const alone = await a.embed({ inputs: [text('item number 7')], includeFused: true });
    expect(t7?.kind === 'embedding' && maxAbsDiff(t7.embedding, alone.fused!)).toBeLessThan(1e-5);
    const manyCalls = await handledCalls(gateway.httpBase, 'EmbedMany');
    expect(manyCalls).toBeGreaterThan(0);
    expect(manyCalls).toBeLessThan(41); // fewer calls than embedded items
    expect(await handledCalls(gateway.httpBase, 'Embed')).toBe(1); // only the one just above
    // The online API does not read the worker's file root: a bare path is refused there.
    const online = await a.embed({ inputs: [uri('image', 'girl.jpg')] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isImageBindError(online) && online.code).toBe('INVALID_ARGUMENT');
  }, 120_000);

  it('exports a finished 1,000-item job whole with `ibllm batch results --out` (no --follow)', async () => {
    // The stream pages 256 results at a time: an export that stopped after the first page wrote
    // 256 lines and exited 0. Every index must come out exactly once.
    const items: gatewayV1.BatchItem[] = Array.from({ length: 1000 }, (_, i) => ({
      itemId: `n${i}`,
      inputs: [text(`number ${i}`)],
      instruction: '',
      input: '',
    }));
    const job = await a.submitBatchJob({ kind: BatchJobKind.BATCH_JOB_KIND_EMBED, items });
    expect((await waitFinal(a, job.jobId, 150_000)).state).toBe(BatchJobState.BATCH_JOB_STATE_SUCCEEDED);
    const dir = mkdtempSync(join(tmpdir(), 'ibllm-export-'));
    try {
      const out = join(dir, 'results.jsonl');
      const cli = spawnSync(
        process.execPath,
        [
          join(repoRoot(), 'tools', 'cli', 'bin', 'ibllm.js'),
          'batch',
          'results',
          job.jobId,
          '--out',
          out,
          '--gateway',
          gateway.grpcAddress,
          '--api-key',
          KEY_A,
        ],
        { encoding: 'utf8', timeout: 120_000 },
      );
      expect(cli.stderr).toContain(`wrote 1000 results to ${out}`);
      expect(cli.status).toBe(0);
      const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
      expect(lines).toHaveLength(1000);
      const rows = lines.map((l) => JSON.parse(l) as { index: number; item_id: string; embedding: number[] });
      expect(rows.map((r) => r.index)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      expect(rows.map((r) => r.item_id)).toEqual(items.map((i) => i.itemId));
      expect(rows.every((r) => r.embedding.length === 1024)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);

  it('keeps tenants apart: another key sees neither the job nor its results', async () => {
    const job = await a.submitBatchJob({
      kind: BatchJobKind.BATCH_JOB_KIND_EMBED,
      items: [{ itemId: 'x', inputs: [text('private')], instruction: '', input: '' }],
    });
    const error = await b.getBatchJob(job.jobId).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isImageBindError(error) && error.code).toBe('NOT_FOUND');
    const listed = await b.listBatchJobs();
    expect(listed.jobs.map((j) => j.jobId)).not.toContain(job.jobId);
    await waitFinal(a, job.jobId);
  }, 60_000);

  it.each([
    ['../secret.jpg', 'a parent-directory path'],
    ['file:///etc/passwd', 'a file outside the root'],
    ['https://127.0.0.1/x.jpg', 'a loopback address'],
    ['https://10.0.0.7/x.jpg', 'a private address'],
  ])('refuses %s (%s) with INVALID_ARGUMENT at submit', async (bad) => {
    const error = await a
      .submitBatchJob({
        kind: BatchJobKind.BATCH_JOB_KIND_EMBED,
        items: [{ itemId: 'bad', inputs: [uri('image', bad)], instruction: '', input: '' }],
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isImageBindError(error) && error.code).toBe('INVALID_ARGUMENT');
  });

  it('answers the same text as the online Generate for a generate job, and resubmitting is idempotent', async () => {
    const items = [0, 1, 2].map((i) => ({
      itemId: `g${i}`,
      inputs: [text(`a scene with ${i + 1} dogs`)],
      instruction: 'Describe the scene.',
      input: '',
    }));
    const options = {
      instruction: '',
      collection: '',
      sampling: { temperature: 0 },
      stopping: { maxNewTokens: 8 },
    };
    const job = await a.submitBatchJob({
      kind: BatchJobKind.BATCH_JOB_KIND_GENERATE,
      items,
      options,
      clientToken: 'gen-1',
    });
    const again = await a.submitBatchJob({
      kind: BatchJobKind.BATCH_JOB_KIND_GENERATE,
      items,
      options,
      clientToken: 'gen-1',
    });
    expect(again.jobId).toBe(job.jobId);
    expect((await waitFinal(a, job.jobId)).state).toBe(BatchJobState.BATCH_JOB_STATE_SUCCEEDED);
    const texts: string[] = [];
    for await (const r of a.streamBatchJobResults(job.jobId))
      texts.push(r.kind === 'text' ? r.text : `<${r.kind}>`);
    const online = await Promise.all(
      items.map(async (item) =>
        a
          .generate({
            inputs: item.inputs,
            instruction: item.instruction,
            sampling: { temperature: 0 },
            maxNewTokens: 8,
          })
          .text(),
      ),
    );
    expect(texts).toEqual(online);
  }, 120_000);

  it('cancel stops the job: nothing new starts and it ends CANCELLED with every item accounted for', async () => {
    const items = Array.from({ length: 150 }, (_, i) => ({
      itemId: `c${i}`,
      inputs: [text(`cancel me ${i}`)],
      instruction: 'Write a long story.',
      input: '',
    }));
    const job = await a.submitBatchJob({
      kind: BatchJobKind.BATCH_JOB_KIND_GENERATE,
      items,
      options: { instruction: '', collection: '', stopping: { maxNewTokens: 64 } },
    });
    for (;;) {
      const j = await a.getBatchJob(job.jobId);
      if ((j.progress?.succeeded ?? 0) >= 3) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The autoscaling signal (ARCHITECTURE §7): both processes export the backlog read from Redis.
    for (const proc of [gateway, worker]) {
      const waiting = await queueJobs(proc.httpBase, 'waiting');
      expect(waiting, proc.name).toBeGreaterThan(0);
      expect(waiting, proc.name).toBeLessThanOrEqual(150);
    }
    await a.cancelBatchJob(job.jobId);
    const final = await waitFinal(a, job.jobId, 60_000);
    expect(final.state).toBe(BatchJobState.BATCH_JOB_STATE_CANCELLED);
    const p = final.progress!;
    expect(p.succeeded + p.failed + p.cancelled).toBe(150);
    expect(p.cancelled).toBeGreaterThan(0);
  }, 120_000);

  it('serves the same API over REST, with the results exported as JSON Lines', async () => {
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${KEY_A}` };
    const submitted = await fetch(`${gateway.httpBase}/v1/batches`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        kind: 'BATCH_JOB_KIND_EMBED',
        items: [0, 1, 2].map((i) => ({
          itemId: `r${i}`,
          inputs: [{ modality: 'MODALITY_TEXT', text: `rest ${i}` }],
        })),
      }),
    });
    expect(submitted.status).toBe(201);
    const job = (await submitted.json()) as { jobId: string };
    await waitFinal(a, job.jobId);
    const got = (await (await fetch(`${gateway.httpBase}/v1/batches/${job.jobId}`, { headers })).json()) as {
      state: string;
    };
    expect(got.state).toBe('BATCH_JOB_STATE_SUCCEEDED');
    const exported = await fetch(`${gateway.httpBase}/v1/batches/${job.jobId}/results`, { headers });
    expect(exported.headers.get('content-type')).toMatch(/application\/x-ndjson/);
    const lines = (await exported.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { index: number; itemId: string; embedding?: string });
    expect(lines.map((l) => [l.index, l.itemId])).toEqual([
      [0, 'r0'],
      [1, 'r1'],
      [2, 'r2'],
    ]);
    expect(Buffer.from(lines[0]!.embedding!, 'base64').length).toBe(1024 * 4);
    const other = await fetch(`${gateway.httpBase}/v1/batches/${job.jobId}`, {
      headers: { authorization: `Bearer ${KEY_B}` },
    });
    expect(other.status).toBe(404);
  }, 60_000);

  it('limits unfinished jobs per API key (GATEWAY_BATCH_MAX_ACTIVE_JOBS=3)', async () => {
    const slow = Array.from({ length: 40 }, (_, i) => ({
      itemId: `s${i}`,
      inputs: [text(`slow ${i}`)],
      instruction: 'Write a long story.',
      input: '',
    }));
    const submit = (n: number) =>
      b.submitBatchJob({
        kind: BatchJobKind.BATCH_JOB_KIND_GENERATE,
        items: slow,
        options: { instruction: '', collection: '', stopping: { maxNewTokens: 64 } },
        clientToken: `slow-${n}`,
      });
    const jobs = [await submit(1), await submit(2), await submit(3)];
    const error = await submit(4).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isImageBindError(error) && error.code).toBe('RESOURCE_EXHAUSTED');
    for (const j of jobs) await b.cancelBatchJob(j.jobId);
    for (const j of jobs) await waitFinal(b, j.jobId);
  }, 120_000);
});

describe("an item that outlasts its retries keeps its cause (the worker's key at 1 request/min)", () => {
  const prefix = `t-batch-rl-${randomBytes(4).toString('hex')}`;
  let gateway: ServiceProcess;
  let worker: ServiceProcess;
  let a: ImageBindClient;

  beforeAll(async () => {
    gateway = await startBatchGateway(prefix, {
      // The worker's tenant may make one request, then none for a minute.
      GATEWAY_RATE_LIMIT_OVERRIDES: 'worker:1:1',
      GATEWAY_BATCH_ATTEMPTS: '3',
    });
    worker = await startWorkerProcess(gateway, prefix, { WORKER_CONCURRENCY: '1' });
    a = new ImageBindClient({ addresses: [gateway.grpcAddress], apiKey: KEY_A });
  }, 180_000);

  afterAll(async () => {
    a?.close();
    await worker?.proc.stop('SIGTERM', 20_000);
    await gateway?.proc.stop('SIGKILL');
  });

  it('is reported as RESOURCE_EXHAUSTED with its 3 attempts, not INTERNAL', async () => {
    const items = ['one', 'two'].map((t) => ({ itemId: t, inputs: [text(t)], instruction: '', input: '' }));
    const job = await a.submitBatchJob({ kind: BatchJobKind.BATCH_JOB_KIND_EMBED, items });
    const final = await waitFinal(a, job.jobId);
    // One item used the worker's single request; the other was refused on all three tries.
    expect(final.progress).toMatchObject({ total: 2, succeeded: 1, failed: 1 });
    const results: BatchItemResult[] = [];
    for await (const r of a.streamBatchJobResults(job.jobId)) results.push(r);
    const failed = results.filter((r) => r.kind === 'error');
    expect(failed).toHaveLength(1);
    const error = failed[0]!.kind === 'error' ? failed[0]!.error : undefined;
    expect(error?.code).toBe('RESOURCE_EXHAUSTED');
    expect(error?.attempts).toBe(3);
    expect(error?.message).toMatch(/rate limit/i);
  }, 120_000);
});
