import { float32ArrayToFloat16 } from '@imagebind-llm/checkpoint';
import { transpose, type WeightStore } from '../weights';
import { attr, OnnxType, type GraphBuilder } from './onnx-graph';

/**
 * How a linear layer's weight is stored in the graph:
 * - fp32: exact;
 * - fp16: half the disk size; onnxruntime's CPU provider folds the Cast back to float32 at load,
 *   so memory is unchanged on CPU (a GPU provider keeps it half-size);
 * - int8 / int4: block-wise symmetric quantization run by the MatMulNBits contrib op, for CPU
 *   deployments of real weights (4× / 8× smaller than float32 in memory as well as on disk).
 *   The op is built with accuracy_level 4 (MATMUL_NBITS_ACCURACY_LEVEL): onnxruntime's CPU kernel
 *   then quantizes each block of 32 activations to int8 (scale max|x| / 127) and runs integer dot
 *   products. At the default level 0 its int8-weight path dequantizes the whole matrix on every
 *   run (0.18 GB/s of weights on a 7B-width layer here, against 29 GB/s at level 4) and its
 *   int4 path runs at half the speed; the activation rounding this adds is measured in the spec.
 */
export type WeightFormat = 'fp32' | 'fp16' | 'int8' | 'int4';

export const WEIGHT_FORMATS: readonly WeightFormat[] = ['fp32', 'fp16', 'int8', 'int4'];

/**
 * MatMulNBits `accuracy_level`: 4 = int8 activations (see WeightFormat). GPU providers ignore it.
 */
export const MATMUL_NBITS_ACCURACY_LEVEL = 4;

/** Elements per quantization block along the input dimension, by default. */
export const QUANT_BLOCK_SIZE = 32;

/**
 * Block sizes a build may choose (`ibllm models build --quant-block`). Larger blocks store fewer
 * scales and let onnxruntime's kernel convert and scale its integer dot products less often: at
 * decode shape (one row, LLaMA-7B's MLP) int4 ran 2.4× faster with 128 than with 32 on a 2-core
 * AVX2 machine (bench/decoder/matmul-nbits.mjs), at the price of a coarser scale per block.
 */
export const QUANT_BLOCK_SIZES = [32, 64, 128] as const;
export type QuantBlock = (typeof QUANT_BLOCK_SIZES)[number];

/** Bytes the format needs per weight element (for size estimates). */
export function bytesPerWeight(format: WeightFormat, block: number = QUANT_BLOCK_SIZE): number {
  return { fp32: 4, fp16: 2, int8: 1 + 4 / block, int4: 0.5 + 4 / block }[format];
}

export interface QuantizedWeight {
  /** [out, blocks, blockBytes] */
  readonly packed: Uint8Array;
  /** [out · blocks] */
  readonly scales: Float32Array;
  readonly blocks: number;
  readonly blockBytes: number;
}

/**
 * Symmetric block quantization of W [out, in] in MatMulNBits' layout: per output row and block
 * of `blockSize` inputs, scale = max|w| / qmax and q = round(w / scale) + 2^(bits−1), with no
 * zero-point tensor (the op's default zero point is 2^(bits−1)). 4-bit values pack two per byte,
 * the even element in the low nibble. A ragged last block is zero-padded.
 */
export function quantizeBlockwise(
  w: Float32Array,
  out: number,
  inn: number,
  bits: 4 | 8,
  blockSize = QUANT_BLOCK_SIZE,
): QuantizedWeight {
  const blocks = Math.ceil(inn / blockSize);
  const blockBytes = (blockSize * bits) / 8;
  const qmax = bits === 8 ? 127 : 7;
  const zero = bits === 8 ? 128 : 8;
  const top = bits === 8 ? 255 : 15;
  const packed = new Uint8Array(out * blocks * blockBytes);
  const scales = new Float32Array(out * blocks);
  // Hot loop of a 7B build (billions of weights): one pass for the block maximum, one to quantize,
  // with the ragged-block test hoisted out of the full blocks.
  const quant = (v: number, scale: number): number => {
    const q = Math.round(v / scale) + zero;
    return q < 0 ? 0 : q > top ? top : q;
  };
  for (let o = 0; o < out; o++) {
    const row = o * inn;
    for (let b = 0; b < blocks; b++) {
      const start = row + b * blockSize;
      const end = Math.min(start + blockSize, row + inn);
      let amax = 0;
      for (let i = start; i < end; i++) {
        const v = w[i]!;
        const m = v < 0 ? -v : v;
        if (m > amax) amax = m;
      }
      const scale = amax === 0 ? 1 : Math.fround(amax / qmax);
      scales[o * blocks + b] = scale;
      const base = (o * blocks + b) * blockBytes;
      const full = end - start === blockSize;
      if (bits === 8) {
        for (let i = 0; i < blockSize; i++)
          packed[base + i] = quant(full || start + i < end ? w[start + i]! : 0, scale);
      } else {
        for (let i = 0; i < blockSize; i += 2) {
          const lo = quant(full || start + i < end ? w[start + i]! : 0, scale);
          const hi = quant(full || start + i + 1 < end ? w[start + i + 1]! : 0, scale);
          packed[base + (i >> 1)] = lo | (hi << 4);
        }
      }
    }
  }
  return { packed, scales, blocks, blockBytes };
}

/**
 * Adds y = x · Wᵀ (+ bias) for W stored [out, in] (PyTorch's layout) in the chosen format and
 * returns y. With `halfCompute` an fp16 weight is multiplied in float16 (x cast down, y cast back
 * up): a GPU provider then reads half the bytes per token, where the plain fp16 form is widened to
 * float32 once at load (onnxruntime folds the Cast of a constant). `bias` names a float32 [out]
 * tensor: MatMulNBits (int8/int4) adds it in its own kernel, the other formats in an Add after the
 * product, in both cases once per output after the full dot product.
 */
export function linearWeight(
  g: GraphBuilder,
  x: string,
  name: string,
  w: Float32Array,
  out: number,
  inn: number,
  format: WeightFormat,
  halfCompute = false,
  quantBlock: number = QUANT_BLOCK_SIZE,
  bias?: string,
): string {
  const plus = (y: string): string => (bias === undefined ? y : g.op1('Add', [y, bias]));
  switch (format) {
    case 'fp32':
      return plus(g.op1('MatMul', [x, g.floatInit(`${name}.T`, [inn, out], transpose(w, out, inn))]));
    case 'fp16': {
      const half = float32ArrayToFloat16(transpose(w, out, inn));
      const init = g.initializer(
        `${name}.T.fp16`,
        OnnxType.FLOAT16,
        [inn, out],
        new Uint8Array(half.buffer, half.byteOffset, half.byteLength),
      );
      if (!halfCompute)
        return plus(g.op1('MatMul', [x, g.op1('Cast', [init], { to: attr.int(OnnxType.FLOAT) })]));
      const x16 = g.op1('Cast', [x], { to: attr.int(OnnxType.FLOAT16) });
      return plus(g.op1('Cast', [g.op1('MatMul', [x16, init])], { to: attr.int(OnnxType.FLOAT) }));
    }
    case 'int8':
    case 'int4': {
      const bits = format === 'int8' ? 8 : 4;
      const q = quantizeBlockwise(w, out, inn, bits, quantBlock);
      const packed = g.initializer(
        `${name}.q${bits}`,
        OnnxType.UINT8,
        [out, q.blocks, q.blockBytes],
        q.packed,
      );
      const scales = g.floatInit(`${name}.scales`, [out * q.blocks], q.scales);
      // optional inputs: zero_points and g_idx absent (symmetric, blocks in order), then the bias
      return g.op1(
        'MatMulNBits',
        bias === undefined ? [x, packed, scales] : [x, packed, scales, '', '', bias],
        {
          K: attr.int(inn),
          N: attr.int(out),
          bits: attr.int(bits),
          block_size: attr.int(quantBlock),
          accuracy_level: attr.int(MATMUL_NBITS_ACCURACY_LEVEL),
        },
        'com.microsoft',
      );
    }
  }
}

/**
 * x · Wᵀ (+ b) for a checkpoint Linear: `<prefix>.weight` [out, in] in the chosen format and, with
 * `withBias`, `<prefix>.bias` [out] as float32.
 */
export async function denseFromCheckpoint(
  g: GraphBuilder,
  weights: WeightStore,
  x: string,
  prefix: string,
  out: number,
  inn: number,
  withBias: boolean,
  format: WeightFormat = 'fp32',
): Promise<string> {
  const w = await weights.f32(`${prefix}.weight`, [out, inn]);
  const bias = withBias
    ? g.floatInit(`${prefix}.bias`, [out], await weights.f32(`${prefix}.bias`, [out]))
    : undefined;
  return linearWeight(g, x, `${prefix}.weight`, w, out, inn, format, false, QUANT_BLOCK_SIZE, bias);
}
