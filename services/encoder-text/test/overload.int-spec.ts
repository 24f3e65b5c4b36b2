// Medium (e2e): encoder-text as a real process under 4× the load its batcher can hold. Overload
// must be answered at once with RESOURCE_EXHAUSTED (not queued without bound), the accepted work
// must finish, memory must stay bounded, and the replica must be healthy afterwards.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { checkHealth, createClient } from '@imagebind-llm/grpc-kit';
import { commonV1, encoderV1 } from '@imagebind-llm/proto';
import { goldenModelRepository, startProcess, type RunningProcess } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
const MAX_BATCH = 4;
const MAX_QUEUE = 8;
/** 4× what the batcher can hold (one executing batch plus a full queue). */
const BURST = 4 * (MAX_BATCH + MAX_QUEUE);
/**
 * Peak resident memory may grow this much during the burst. What the replica admits is bounded by
 * the batcher (12 texts: 77 token ids and two 1024-float outputs each, ~100 KB in all) and the 48
 * calls are < 1 KB each, so the real need is a few MB of V8, gRPC and allocator working set. An
 * unbounded design would not fail this at 48 small calls; what it guards is that the burst does
 * not reach anything that scales with the backlog (a full decode or a session batch per call).
 */
const MAX_RSS_GROWTH_KB = 64 * 1024;

let proc: RunningProcess;
let grpcAddress: string;
let httpBase: string;
let client: encoderV1.EncoderServiceClient;

async function encodeText(
  text: string,
): Promise<{ error: ServiceError | null; response?: encoderV1.EncodeResponse }> {
  return new Promise((resolve) => {
    client.encode(
      {
        modality: commonV1.Modality.MODALITY_TEXT,
        inputs: [{ source: { $case: 'text', value: text }, mediaType: '' }],
        includeUnnormalized: false,
        includePreprocessed: false,
      },
      new Metadata(),
      { deadline: new Date(Date.now() + 30_000) },
      (error, response) => resolve({ error, response }),
    );
  });
}

/** A field of /proc/<pid>/status in kB (VmRSS: now, VmHWM: the peak so far). */
function memoryKb(field: 'VmRSS' | 'VmHWM'): number {
  const text = readFileSync(`/proc/${proc.child.pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  if (match === null) throw new Error(`no ${field} in /proc/${proc.child.pid}/status`);
  return Number(match[1]);
}

beforeAll(async () => {
  expect(existsSync(MAIN), `${MAIN} is missing: run \`npm run build\` first`).toBe(true);
  proc = startProcess(process.execPath, [MAIN], {
    env: {
      PATH: process.env['PATH'],
      MODEL_REPO: goldenModelRepository(),
      GRPC_PORT: '0',
      HTTP_PORT: '0',
      BATCH_MAX_SIZE: String(MAX_BATCH),
      BATCH_MAX_QUEUE: String(MAX_QUEUE),
      // Partial batches wait long, so the burst meets a full queue rather than an idle model.
      BATCH_MAX_DELAY_MS: '200',
      LOG_LEVEL: 'info', // service.ready is an info line
    },
  });
  const ready = await proc.waitForLine((l) => l['event'] === 'service.ready', 60_000);
  grpcAddress = `127.0.0.1:${String(ready['grpcPort'])}`;
  httpBase = `http://127.0.0.1:${String(ready['httpPort'])}`;
  client = createClient(encoderV1.EncoderServiceClient, grpcAddress);
  // One call first, so the connection and the process's steady working set exist before measuring.
  expect((await encodeText('warm up')).error).toBeNull();
}, 120_000);

afterAll(async () => {
  client?.close();
  await proc?.stop('SIGKILL');
});

describe('encoder-text under 4× its batcher capacity', () => {
  it('refuses the excess at once with RESOURCE_EXHAUSTED, finishes the rest, and stays healthy', async () => {
    const peakBefore = memoryKb('VmHWM');
    const order: ('ok' | 'refused' | 'other')[] = [];
    const calls = Array.from({ length: BURST }, async (_, i) => {
      const result = await encodeText(`a photo of thing number ${i}`);
      const kind =
        result.error === null ? 'ok' : result.error.code === status.RESOURCE_EXHAUSTED ? 'refused' : 'other';
      order.push(kind);
      return result;
    });
    const results = await Promise.all(calls);
    const peakGrowthKb = memoryKb('VmHWM') - peakBefore;

    const refused = results.filter((r) => r.error?.code === status.RESOURCE_EXHAUSTED);
    const ok = results.filter((r) => r.error === null);
    expect(
      order.filter((k) => k === 'other'),
      JSON.stringify(results.map((r) => r.error?.details)),
    ).toEqual([]);
    expect(refused.length).toBeGreaterThan(0);
    // At least everything the batcher holds was accepted and answered.
    expect(ok.length).toBeGreaterThanOrEqual(MAX_BATCH + MAX_QUEUE);
    expect(ok.every((r) => r.response!.embeddings.length === 1)).toBe(true);
    // Refusals were not queued behind the work: every one arrived while accepted calls still ran.
    expect(order.lastIndexOf('refused')).toBeLessThan(order.lastIndexOf('ok'));
    const first = refused[0]!.error!;
    expect(first.metadata.get('ibllm-error-code')).toEqual(['OVERLOADED']);
    expect(Number(first.metadata.get('ibllm-retry-after-ms')[0])).toBeGreaterThan(0);
    expect(first.details).toMatch(/queue is full|retry after/);

    expect(peakGrowthKb, `peak RSS grew ${peakGrowthKb} kB`).toBeLessThan(MAX_RSS_GROWTH_KB);
    expect(memoryKb('VmRSS')).toBeLessThanOrEqual(memoryKb('VmHWM'));

    // Healthy afterwards: SERVING, ready, and a new request goes through.
    expect(await checkHealth(grpcAddress)).toBe('SERVING');
    expect((await fetch(`${httpBase}/readyz`)).status).toBe(200);
    const after = await encodeText('after the storm');
    expect(after.error).toBeNull();
    expect(after.response!.embeddings[0]!.embedding!.shape).toEqual([1024]);
    const metrics = await (await fetch(`${httpBase}/metrics`)).text();
    expect(metrics).toMatch(/ibllm_inference_requests_total\{[^}]*outcome="overloaded"[^}]*\} [1-9]/);
  }, 120_000);
});
