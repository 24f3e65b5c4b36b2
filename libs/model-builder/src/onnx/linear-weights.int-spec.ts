// Each weight format, run through onnxruntime, computes exactly x · Ŵᵀ where Ŵ is the weight the
// format stores (float32 itself, its float16 rounding, or the dequantized blocks). This proves the
// MatMulNBits packing; how far Ŵ is from W is the format's own, measured, accuracy.
import { float16BitsToFloat32, float32ArrayToFloat16 } from '@imagebind-llm/checkpoint';
import { createOrtSession, hostTensor } from '@imagebind-llm/inference';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { relativeError } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { linearWeight, QUANT_BLOCK_SIZE, quantizeBlockwise, type WeightFormat } from './linear-weights';
import { GraphBuilder, OnnxType, serializeModel } from './onnx-graph';

const dir = mkdtempSync(join(tmpdir(), 'ibllm-linear-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u1 = (s + 1) / 2 ** 32;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u2 = s / 2 ** 32;
    out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
}

/** The weight a format really stores, back in float32, [out, in]. */
function stored(
  w: Float32Array,
  out: number,
  inn: number,
  format: WeightFormat,
  block: number,
): Float32Array {
  if (format === 'fp32') return w;
  if (format === 'fp16') return Float32Array.from(float32ArrayToFloat16(w), float16BitsToFloat32);
  const bits = format === 'int8' ? 8 : 4;
  const q = quantizeBlockwise(w, out, inn, bits, block);
  const zero = bits === 8 ? 128 : 8;
  const deq = new Float32Array(out * inn);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inn; i++) {
      const b = Math.floor(i / block);
      const k = i % block;
      const byte = q.packed[(o * q.blocks + b) * q.blockBytes + (bits === 8 ? k : k >> 1)]!;
      const v = bits === 8 ? byte : (k & 1) === 0 ? byte & 15 : byte >> 4;
      deq[o * inn + i] = (v - zero) * q.scales[o * q.blocks + b]!;
    }
  }
  return deq;
}

/**
 * x as MatMulNBits at accuracy_level 4 sees it: per row, each block of `block` inputs
 * rounded to int8 with scale max|x| / 127 (ties away from zero) and scaled back.
 */
function int8Activations(x: Float32Array, rows: number, inn: number, block: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < inn; b += block) {
      const end = Math.min(b + block, inn);
      let amax = 0;
      for (let i = b; i < end; i++) amax = Math.max(amax, Math.abs(x[r * inn + i]!));
      const scale = Math.fround(amax / 127);
      const inv = scale === 0 ? 0 : Math.fround(1 / scale);
      for (let i = b; i < end; i++) {
        const v = Math.fround(x[r * inn + i]! * inv);
        out[r * inn + i] = Math.fround(Math.sign(v) * Math.round(Math.abs(v)) * scale);
      }
    }
  }
  return out;
}

function matmulRef(x: Float32Array, rows: number, w: Float32Array, out: number, inn: number): Float64Array {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < inn; i++) s += x[r * inn + i]! * w[o * inn + i]!;
      y[r * out + o] = s;
    }
  return y;
}

const OUT = 48;
const ROWS = 5;

describe.each([
  ['fp32', QUANT_BLOCK_SIZE],
  ['fp16', QUANT_BLOCK_SIZE],
  ['int8', QUANT_BLOCK_SIZE],
  ['int4', QUANT_BLOCK_SIZE],
  ['int8', 128],
  ['int4', 64],
  ['int4', 128],
] as const)('linearWeight %s (block %i)', (format, block) => {
  it('computes x · Ŵᵀ for the weight it stores', async () => {
    // Two full blocks and a ragged one, so padding is exercised.
    const IN = 2 * block + 8;
    const w = random(OUT * IN, 11);
    const x = random(ROWS * IN, 12);
    const g = new GraphBuilder('linear_test');
    const input = g.input('x', OnnxType.FLOAT, ['rows', IN]);
    g.output(linearWeight(g, input, 'w', w, OUT, IN, format, false, block), 'y', OnnxType.FLOAT, [
      'rows',
      OUT,
    ]);
    const path = join(dir, `${format}-${block}.onnx`);
    writeFileSync(
      path,
      serializeModel(g, { opsets: { '': 17, 'com.microsoft': 1 }, producerVersion: 'test' }),
    );
    const session = await createOrtSession(path);
    const y = (await session.run({ x: hostTensor('float32', [ROWS, IN], x) }))['y']!.data as Float32Array;
    await session.release();
    // float32 accumulation in onnxruntime vs float64 here; the quantized formats see the
    // activations as the int8 kernel does (accuracy_level 4: per weight block, scale max|x| / 127).
    const seen = format === 'int8' || format === 'int4' ? int8Activations(x, ROWS, IN, block) : x;
    expect(relativeError(y, matmulRef(seen, ROWS, stored(w, OUT, IN, format, block), OUT, IN))).toBeLessThan(
      1e-5,
    );
    const formatError = relativeError(y, matmulRef(x, ROWS, w, OUT, IN));
    // What storing costs on Gaussian weights: exact, ~1e-4 (fp16), ~1e-2 (int8), ~1e-1 (int4).
    const bound = { fp32: 1e-5, fp16: 1e-3, int8: 2e-2, int4: 2e-1 }[format];
    expect(formatError).toBeLessThan(bound);
  });
});

// With a bias every format adds it to the product: MatMulNBits in its own kernel (its optional
// sixth input), the others in an Add. On the CPU and on the WebGPU provider (lavapipe here), which
// multiplies MatMulNBits in float32 without rounding the activations to int8.
describe.each([
  ['fp32', 'cpu'],
  ['int8', 'cpu'],
  ['int4', 'cpu'],
  ['fp32', 'webgpu'],
  ['int8', 'webgpu'],
  ['int4', 'webgpu'],
] as const)('linearWeight %s with a bias on the %s provider', (format, provider) => {
  it('computes x · Ŵᵀ + b', async () => {
    const block = QUANT_BLOCK_SIZE;
    const IN = 2 * block + 8;
    const w = random(OUT * IN, 21);
    const x = random(ROWS * IN, 22);
    const b = random(OUT, 23).map((v) => v * 10);
    const g = new GraphBuilder('linear_bias_test');
    const input = g.input('x', OnnxType.FLOAT, ['rows', IN]);
    const bias = g.floatInit('b', [OUT], b);
    const y = linearWeight(g, input, 'w', w, OUT, IN, format, false, block, bias);
    g.output(y, 'y', OnnxType.FLOAT, ['rows', OUT]);
    const path = join(dir, `bias-${format}-${provider}.onnx`);
    writeFileSync(
      path,
      serializeModel(g, { opsets: { '': 17, 'com.microsoft': 1 }, producerVersion: 'test' }),
    );
    let chosen: readonly string[] = [];
    const session = await createOrtSession(path, {
      providers: [provider],
      onProviders: (providers) => {
        chosen = providers;
      },
    });
    expect(chosen[0]).toBe(provider);
    const out = (await session.run({ x: hostTensor('float32', [ROWS, IN], x) }))['y']!.data as Float32Array;
    await session.release();
    const quantized = format !== 'fp32';
    const seen = quantized && provider === 'cpu' ? int8Activations(x, ROWS, IN, block) : x;
    const ref = matmulRef(seen, ROWS, stored(w, OUT, IN, format, block), OUT, IN);
    for (let r = 0; r < ROWS; r++) for (let o = 0; o < OUT; o++) ref[r * OUT + o]! += b[o]!;
    expect(relativeError(out, ref)).toBeLessThan(1e-5);
    // the bias really is in there: without it the output is far off
    expect(
      relativeError(out, matmulRef(seen, ROWS, stored(w, OUT, IN, format, block), OUT, IN)),
    ).toBeGreaterThan(0.1);
  });
});

describe('quantizeBlockwise', () => {
  it('uses the full range: the largest |w| of a block maps to ±qmax', () => {
    const w = Float32Array.of(...Array.from({ length: 32 }, (_, i) => (i === 5 ? -2 : i / 100)));
    const q = quantizeBlockwise(w, 1, 32, 8);
    expect(q.scales[0]).toBeCloseTo(2 / 127, 7);
    expect(q.packed[5]).toBe(128 - 127);
    const q4 = quantizeBlockwise(w, 1, 32, 4);
    expect(q4.packed[2]! & 15).toBe(8); // element 4 (0.04) rounds to zero, in the low nibble
    expect(q4.packed[2]! >> 4).toBe(8 - 7); // element 5 (−2) is the high nibble of byte 2
  });

  it('survives an all-zero block', () => {
    const q = quantizeBlockwise(new Float32Array(32), 1, 32, 4);
    expect(q.scales[0]).toBe(1);
    expect([...q.packed]).toEqual(new Array(16).fill(0x88));
  });
});
