// The bind network ONNX graph against a plain float64 implementation of MODEL_SPEC §4, for both the
// RMSNorm network and the legacy LayerNorm bridge, on synthetic weights run through onnxruntime.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTorchCheckpoint, toFloat32 } from '@imagebind-llm/checkpoint';
import { createOrtSession, hostTensor } from '@imagebind-llm/inference';
import { relativeError } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBindGraph, detectBindConfig, type BindConfig } from './bind.builder';
import { serializeModel } from './onnx/onnx-graph';
import { writeSyntheticLanguageCheckpoints } from './synthetic-checkpoints';
import { WeightStore } from './weights';

const dir = mkdtempSync(join(tmpdir(), 'bind-parity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Tolerance (issue #3's vector bound): ‖a−b‖₂/‖b‖₂ ≤ 1e-5. ORT computes in float32 against a float64
// reference; with widths of 64–256 the rounding error is ~1e-7, so 1e-5 leaves room for summation
// order while a wrong formula (wrong eps, missing bias, RMSNorm for LayerNorm) lands far above it.
const REL_TOL = 1e-5;

const RMS_EPS = 1e-6;
const LN_EPS = 1e-5;

type Weights = (name: string) => Float64Array;

/** y = W x (+ b) with W stored [out, in] as in PyTorch. */
function linear(w: Float64Array, x: Float64Array, out: number, b?: Float64Array): Float64Array {
  const inn = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b?.[o] ?? 0;
    for (let i = 0; i < inn; i++) s += w[o * inn + i]! * x[i]!;
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, gamma: Float64Array): Float64Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  const scale = 1 / Math.sqrt(ms / x.length + RMS_EPS);
  return x.map((v, i) => v * scale * gamma[i]!);
}

function layerNorm(x: Float64Array, gamma: Float64Array, beta: Float64Array): Float64Array {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
  const scale = 1 / Math.sqrt(variance + LN_EPS);
  return x.map((v, i) => (v - mean) * scale * gamma[i]! + beta[i]!);
}

const silu = (z: number): number => z / (1 + Math.exp(-z));

/** MODEL_SPEC §4: x = proj(q); x += f2(SiLU(f1(norm_k x)) ⊙ f3(norm_k x)) for k = 1..3. */
function referenceBind(q: Float64Array, w: Weights, c: BindConfig, legacy: boolean): Float64Array {
  let x = linear(w('image_bind_proj.weight'), q, c.dim, w('image_bind_proj.bias'));
  const bias = (name: string): Float64Array | undefined => (legacy ? w(name) : undefined);
  for (let k = 1; k <= c.blocks; k++) {
    const n = legacy
      ? layerNorm(x, w(`image_bind_norm_${k}.weight`), w(`image_bind_norm_${k}.bias`))
      : rmsNorm(x, w(`image_bind_norm_${k}.weight`));
    const h1 = linear(w(`image_bind_f1_${k}.weight`), n, c.hidden, bias(`image_bind_f1_${k}.bias`));
    const h3 = linear(w(`image_bind_f3_${k}.weight`), n, c.hidden, bias(`image_bind_f3_${k}.bias`));
    const m = h1.map((v, i) => silu(v) * h3[i]!);
    const f = linear(w(`image_bind_f2_${k}.weight`), m, c.dim, bias(`image_bind_f2_${k}.bias`));
    x = x.map((v, i) => v + f[i]!);
  }
  return x;
}

/** Deterministic queries: a few ImageBind-sized vectors of mixed sign and scale. */
function queries(batch: number, width: number): Float32Array {
  const q = new Float32Array(batch * width);
  for (let i = 0; i < q.length; i++) q[i] = Math.sin(i * 12.9898 + 78.233) * (1 + (i % 7) / 7);
  return q;
}

describe('bind.onnx matches MODEL_SPEC §4 (float64 reference)', () => {
  it.each([
    ['RMSNorm network', false],
    ['legacy LayerNorm bridge', true],
  ])('%s', async (name, legacy) => {
    const out = join(dir, legacy ? 'legacy' : 'rms');
    const written = await writeSyntheticLanguageCheckpoints(out, {
      dim: 64,
      nLayers: 1,
      nHeads: 4,
      multipleOf: 32,
      vocabSize: 64,
      loraRank: 2,
      bindHidden: 256,
      legacyBind: legacy,
      seed: 11,
    });
    const ckpt = await openTorchCheckpoint(written.adapter);
    try {
      const adapter = ckpt.stateDict(['model']);
      const store = new WeightStore(adapter);
      const config = detectBindConfig(store);
      expect(config).toEqual({ inDim: 1024, dim: 64, hidden: 256, blocks: 3, legacy });

      const modelPath = join(out, 'bind.onnx');
      const graph = await buildBindGraph(store, config);
      writeFileSync(modelPath, serializeModel(graph, { opsets: { '': 17 }, producerVersion: 'test' }));
      const session = await createOrtSession(modelPath);
      const batch = 3;
      const q = queries(batch, config.inDim);
      let got: Float32Array;
      try {
        const result = await session.run({ queries: hostTensor('float32', [batch, config.inDim], q) });
        const v = result['visual_query']!;
        expect(v.dims).toEqual([batch, config.dim]);
        got = v.data as Float32Array;
      } finally {
        await session.release();
      }

      const cache = new Map<string, Float64Array>();
      for (const [key, entry] of adapter) {
        if (key.startsWith('image_bind_')) cache.set(key, Float64Array.from(toFloat32(await entry.read())));
      }
      const w: Weights = (key) => {
        const t = cache.get(key);
        if (t === undefined) throw new Error(`reference needs ${key}`);
        return t;
      };
      for (let b = 0; b < batch; b++) {
        const qb = Float64Array.from(q.subarray(b * config.inDim, (b + 1) * config.inDim));
        const expected = referenceBind(qb, w, config, legacy);
        const row = got.subarray(b * config.dim, (b + 1) * config.dim);
        expect(relativeError(row, expected), `${name} row ${b}`).toBeLessThanOrEqual(REL_TOL);
        // The comparison tells the variants apart: reading legacy weights as the RMSNorm network
        // (the bug a missed `image_bind_norm_1.bias` check would cause) is far outside the bound.
        if (legacy) expect(relativeError(row, referenceBind(qb, w, config, false))).toBeGreaterThan(1e-2);
      }
    } finally {
      await ckpt.close();
    }
  });
});
