// Medium: the batched bind network on the golden tiny-a model (ONNX Runtime, CPU) against the
// one-row-at-a-time LanguagePipeline.project.
import {
  createOrtSession,
  LanguagePipeline,
  type BatchEvent,
  type InferenceSessionPort,
} from '@imagebind-llm/inference';
import { cosineSimilarity, goldenModelRepository, relativeError } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BindRuntime } from './bind-runtime';

// Rows are independent in the graph; batching may only change float32 summation order (GEMM
// blocking), a few ulps: 1e-6 relative leaves room for that and for nothing else.
const REL_TOLERANCE = 1e-6;

let repo: string;
let runtime: BindRuntime;
let language: LanguagePipeline;
const events: BatchEvent[] = [];
let gateOpen = false;
const gateWaiters: (() => void)[] = [];

function gated(session: InferenceSessionPort): InferenceSessionPort {
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    release: async () => session.release(),
    run: async (feeds, outputs) => {
      if (!gateOpen) await new Promise<void>((resolve) => gateWaiters.push(resolve));
      return session.run(feeds, outputs);
    },
  };
}

/** Deterministic pseudo-random unit rows (a fused query is unit length before the cache). */
function queries(seed: number, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  let s = seed;
  for (let i = 0; i < out.length; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    out[i] = s / 2 ** 30 - 1;
  }
  for (let r = 0; r < rows; r++) {
    const row = out.subarray(r * dim, (r + 1) * dim);
    const norm = Math.hypot(...row);
    for (let i = 0; i < dim; i++) row[i]! /= norm;
  }
  return out;
}

beforeAll(async () => {
  repo = goldenModelRepository();
  runtime = await BindRuntime.load(repo, {
    batcher: { maxBatchSize: 16, maxQueueDelayMs: 0, maxQueueSize: 64, maxConcurrentBatches: 1 },
    onBatch: (event) => events.push(event),
    createSession: async (path, options) => gated(await createOrtSession(path, options)),
  });
  language = await LanguagePipeline.load(repo);
}, 180_000);

afterAll(async () => {
  await runtime?.close();
  await language?.close();
});

describe('BindRuntime on the golden tiny-a bind network', () => {
  it('projects the rows of concurrent requests in one call, each row as LanguagePipeline.project does', async () => {
    const { inDim, outDim } = runtime.info;
    expect([inDim, outDim]).toEqual([1024, 64]);
    const requests = [
      queries(1, 1, inDim),
      queries(2, 3, inDim),
      queries(3, 1, inDim),
      queries(4, 20, inDim), // more rows than a batch: split across batches
    ];
    const first = runtime.project(requests[0]!, 1);
    await vi.waitFor(() => expect(gateWaiters).toHaveLength(1));
    const rest = requests.slice(1).map(async (q) => runtime.project(q, q.length / inDim));
    await vi.waitFor(() => expect(runtime.stats().queuedUnits).toBe(24));
    gateOpen = true;
    for (const open of gateWaiters.splice(0)) open();
    const results = await Promise.all([first, ...rest]);
    // The 20 rows are cut into parts of 16 + 4; FIFO then gives batches of 3 + 1, 16 and 4 rows.
    expect(events.map((e) => e.units)).toEqual([1, 4, 16, 4]);
    for (const [i, q] of requests.entries()) {
      const rows = q.length / inDim;
      expect(results[i]!.length).toBe(rows * outDim);
      for (let r = 0; r < rows; r++) {
        const alone = await language.project(q.slice(r * inDim, (r + 1) * inDim));
        const mine = results[i]!.subarray(r * outDim, (r + 1) * outDim);
        expect(relativeError(mine, alone), `request ${i} row ${r}`).toBeLessThanOrEqual(REL_TOLERANCE);
        expect(cosineSimilarity(mine, alone)).toBeGreaterThan(0.999999);
      }
    }
  }, 120_000);
});
