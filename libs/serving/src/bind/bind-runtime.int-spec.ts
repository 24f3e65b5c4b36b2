// Medium: the batched bind network on the golden tiny-a model (ONNX Runtime, CPU) against the
// same network projecting one row per session call (a BindRuntime whose batches hold one row), and
// against what the official code gave (golden tiny-a fusion cases: the bind input and its v).
import { readFileSync } from 'node:fs';
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { createOrtSession, type BatchEvent, type InferenceSessionPort } from '@imagebind-llm/inference';
import {
  cosineSimilarity,
  goldenModelRepository,
  goldenPath,
  relativeError,
  type GoldenCase,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BindRuntime } from './bind-runtime';

// Rows are independent in the graph; batching may only change float32 summation order (GEMM
// blocking), a few ulps: 1e-6 relative leaves room for that and for nothing else.
const REL_TOLERANCE = 1e-6;
// Against the official v (float32 PyTorch on CPU): ‖a−b‖₂/‖b‖₂ ≤ 1e-5, the golden parity bound
// for vectors (tools/cli/test/golden-parity.int-spec.ts, issue #3).
const GOLDEN_REL_TOLERANCE = 1e-5;

const golden = (file: string): Float32Array => toFloat32(readNpy(goldenPath(file)));
/** Every fusion case: its bind input (q, or q′ after the cache when it is on) and the official v. */
const fusionCases = (
  JSON.parse(readFileSync(goldenPath('manifest.json'), 'utf8')) as { cases: GoldenCase[] }
).cases.filter((c) => c.kind === 'fusion');

let repo: string;
let runtime: BindRuntime;
/** The same network, one row per session call: the reference for what a row gives alone. */
let alone: BindRuntime;
const events: BatchEvent[] = [];
const aloneEvents: BatchEvent[] = [];
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
  alone = await BindRuntime.load(repo, {
    batcher: { maxBatchSize: 1, maxQueueDelayMs: 0, maxQueueSize: 64, maxConcurrentBatches: 1 },
    onBatch: (event) => aloneEvents.push(event),
  });
}, 180_000);

afterAll(async () => {
  await runtime?.close();
  await alone?.close();
});

describe('BindRuntime on the golden tiny-a bind network', () => {
  it('projects the rows of concurrent requests in one call, each row as it projects alone', async () => {
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
    let worst = 0;
    for (const [i, q] of requests.entries()) {
      const rows = q.length / inDim;
      expect(results[i]!.length).toBe(rows * outDim);
      for (let r = 0; r < rows; r++) {
        const reference = await alone.project(q.slice(r * inDim, (r + 1) * inDim), 1);
        const mine = results[i]!.subarray(r * outDim, (r + 1) * outDim);
        const error = relativeError(mine, reference);
        worst = Math.max(worst, error);
        expect(error, `request ${i} row ${r}`).toBeLessThanOrEqual(REL_TOLERANCE);
        expect(cosineSimilarity(mine, reference)).toBeGreaterThan(0.999999);
      }
    }
    console.log(`batched vs alone: max rel. error ${worst.toExponential(2)}`);
    // the reference really ran every one of the 25 rows in a session call of its own
    expect(aloneEvents.map((e) => e.units)).toEqual(Array.from({ length: 25 }, () => 1));
    // different queries gave different visual queries (so a mix-up of rows would have shown)
    expect(
      cosineSimilarity(results[1]!.subarray(0, outDim), results[1]!.subarray(outDim, 2 * outDim)),
    ).toBeLessThan(0.999);
  }, 120_000);

  it("projects every golden fusion case's bind input, batched together, to the official v", async () => {
    const { inDim, outDim } = runtime.info;
    gateOpen = true;
    expect(fusionCases.length).toBeGreaterThan(1);
    const inputs = fusionCases.map((c) => {
      const knn = (c['knn'] as { enabled: boolean }).enabled;
      return golden(c.outputs[knn ? 'q_knn' : 'q']!.file);
    });
    const batch = new Float32Array(inputs.length * inDim);
    inputs.forEach((q, i) => batch.set(q, i * inDim));
    const before = events.length;
    const out = await runtime.project(batch, inputs.length);
    // all the cases went through one session call
    expect(events.slice(before).map((e) => e.units)).toEqual([inputs.length]);
    for (const [i, c] of fusionCases.entries()) {
      const mine = out.subarray(i * outDim, (i + 1) * outDim);
      const official = relativeError(mine, golden(c.outputs['v']!.file));
      const reference = relativeError(mine, await alone.project(inputs[i]!, 1));
      console.log(
        `${c.id}: v rel. error ${official.toExponential(2)} vs official, ${reference.toExponential(2)} vs alone`,
      );
      expect(official, `${c.id} vs official v`).toBeLessThanOrEqual(GOLDEN_REL_TOLERANCE);
      expect(reference, `${c.id} vs alone`).toBeLessThanOrEqual(REL_TOLERANCE);
    }
  }, 120_000);
});
