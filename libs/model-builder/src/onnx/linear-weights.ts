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
 */
export type WeightFormat = 'fp32' | 'fp16' | 'int8' | 'int4';

export const WEIGHT_FORMATS: readonly WeightFormat[] = ['fp32', 'fp16', 'int8', 'int4'];

/** Elements per quantization block along the input dimension. */
export const QUANT_BLOCK_SIZE = 32;

/** Bytes the format needs per weight element (for size estimates). */
export function bytesPerWeight(format: WeightFormat): number {
  return { fp32: 4, fp16: 2, int8: 1 + 4 / QUANT_BLOCK_SIZE, int4: 0.5 + 4 / QUANT_BLOCK_SIZE }[format];
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
  for (let o = 0; o < out; o++) {
    for (let b = 0; b < blocks; b++) {
      const start = b * blockSize;
      const end = Math.min(start + blockSize, inn);
      let amax = 0;
      for (let i = start; i < end; i++) amax = Math.max(amax, Math.abs(w[o * inn + i]!));
      const scale = amax === 0 ? 1 : Math.fround(amax / qmax);
      scales[o * blocks + b] = scale;
      const base = (o * blocks + b) * blockBytes;
      for (let i = 0; i < blockSize; i++) {
        const v = start + i < end ? w[o * inn + start + i]! : 0;
        const q = Math.min(top, Math.max(0, Math.round(v / scale) + zero));
        if (bits === 8) packed[base + i] = q;
        else packed[base + (i >> 1)]! |= (i & 1) === 0 ? q : q << 4;
      }
    }
  }
  return { packed, scales, blocks, blockBytes };
}

/**
 * Adds y = x · Wᵀ for W stored [out, in] (PyTorch's layout) in the chosen format and returns y.
 */
export function linearWeight(
  g: GraphBuilder,
  x: string,
  name: string,
  w: Float32Array,
  out: number,
  inn: number,
  format: WeightFormat,
): string {
  switch (format) {
    case 'fp32':
      return g.op1('MatMul', [x, g.floatInit(`${name}.T`, [inn, out], transpose(w, out, inn))]);
    case 'fp16': {
      const half = float32ArrayToFloat16(transpose(w, out, inn));
      const init = g.initializer(
        `${name}.T.fp16`,
        OnnxType.FLOAT16,
        [inn, out],
        new Uint8Array(half.buffer, half.byteOffset, half.byteLength),
      );
      return g.op1('MatMul', [x, g.op1('Cast', [init], { to: attr.int(OnnxType.FLOAT) })]);
    }
    case 'int8':
    case 'int4': {
      const bits = format === 'int8' ? 8 : 4;
      const q = quantizeBlockwise(w, out, inn, bits);
      const packed = g.initializer(
        `${name}.q${bits}`,
        OnnxType.UINT8,
        [out, q.blocks, q.blockBytes],
        q.packed,
      );
      const scales = g.floatInit(`${name}.scales`, [out * q.blocks], q.scales);
      return g.op1(
        'MatMulNBits',
        [x, packed, scales],
        { K: attr.int(inn), N: attr.int(out), bits: attr.int(bits), block_size: attr.int(QUANT_BLOCK_SIZE) },
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
  const y = linearWeight(g, x, `${prefix}.weight`, w, out, inn, format);
  if (!withBias) return y;
  return g.op1('Add', [y, g.floatInit(`${prefix}.bias`, [out], await weights.f32(`${prefix}.bias`, [out]))]);
}
