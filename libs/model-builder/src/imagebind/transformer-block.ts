import { attr, type GraphBuilder } from '../onnx/onnx-graph';
import { IMAGEBIND_CONSTANTS } from './imagebind-config';
import { geluErf, type EncoderContext } from './encoder-ops';

/**
 * Key layout of a pre-norm transformer block:
 * - `imagebind`: `BlockWithMasking` over `nn.MultiheadAttention` (MODEL_SPEC §3.1, §3.8):
 *   `norm_1`, `attn.in_proj_{weight,bias}`, optional `attn.bias_{k,v}`, `attn.out_proj`, `norm_2`,
 *   `mlp.fc1`, `mlp.fc2`;
 * - `pointbert`: Point-BERT's timm-style block (MODEL_SPEC §3.7): `norm1`, `attn.qkv.weight`
 *   (no bias), `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`.
 */
export type BlockLayout = 'imagebind' | 'pointbert';

export interface BlockSpec {
  readonly layout: BlockLayout;
  readonly dim: number;
  readonly heads: number;
  /** LayerNorm eps of both norms (1e-6 for ImageBind trunks, 1e-5 for Point-BERT). */
  readonly eps: number;
  /** `add_bias_kv`: one learned key/value appended after the sequence (audio, depth, thermal, imu). */
  readonly biasKv?: boolean;
}

/** Every checkpoint key of one block with its shape (for strict validation). */
export function blockKeys(prefix: string, spec: BlockSpec): [string, number[]][] {
  const d = spec.dim;
  const h = IMAGEBIND_CONSTANTS.mlpRatio * d;
  const mlp: [string, number[]][] = [
    [`${prefix}.mlp.fc1.weight`, [h, d]],
    [`${prefix}.mlp.fc1.bias`, [h]],
    [`${prefix}.mlp.fc2.weight`, [d, h]],
    [`${prefix}.mlp.fc2.bias`, [d]],
  ];
  if (spec.layout === 'pointbert') {
    return [
      [`${prefix}.norm1.weight`, [d]],
      [`${prefix}.norm1.bias`, [d]],
      [`${prefix}.norm2.weight`, [d]],
      [`${prefix}.norm2.bias`, [d]],
      ...mlp,
      [`${prefix}.attn.qkv.weight`, [3 * d, d]],
      [`${prefix}.attn.proj.weight`, [d, d]],
      [`${prefix}.attn.proj.bias`, [d]],
    ];
  }
  return [
    [`${prefix}.attn.in_proj_weight`, [3 * d, d]],
    [`${prefix}.attn.in_proj_bias`, [3 * d]],
    ...(spec.biasKv === true
      ? ([
          [`${prefix}.attn.bias_k`, [1, 1, d]],
          [`${prefix}.attn.bias_v`, [1, 1, d]],
        ] as [string, number[]][])
      : []),
    [`${prefix}.attn.out_proj.weight`, [d, d]],
    [`${prefix}.attn.out_proj.bias`, [d]],
    [`${prefix}.norm_1.weight`, [d]],
    [`${prefix}.norm_1.bias`, [d]],
    ...mlp,
    [`${prefix}.norm_2.weight`, [d]],
    [`${prefix}.norm_2.bias`, [d]],
  ];
}

/** A learned [1, 1, D] vector expanded to [N, 1, D] with N = x's first dim. */
function expandOverBatch(g: GraphBuilder, vector: string, like: string): string {
  const batch = g.op1('Shape', [like], { start: attr.int(0), end: attr.int(1) });
  return g.op1('Expand', [vector, g.op1('Concat', [batch, g.int64s([1, 1])], { axis: attr.int(0) })]);
}

export interface AttentionWeights {
  /** [D, 3D]: q, k, v projections side by side (rows of PyTorch's stacked in-projection). */
  readonly qkvT: string;
  readonly qkvBias?: string;
  /** [1, 1, D] each (add_bias_kv). */
  readonly biasK?: string;
  readonly biasV?: string;
  readonly outT: string;
  readonly outBias: string;
}

/**
 * Multi-head self-attention on x [N, L, D] (MODEL_SPEC §3.1): q, k, v from one projection;
 * optional bias_k / bias_v appended as one extra key/value; per head softmax(q/√d · kᵀ + mask)·v;
 * heads concatenated, then the output projection. `mask` is an additive [L, L'] constant, L' = L
 * (+1 with bias_kv: the caller passes it already widened by a zero column).
 */
export function selfAttention(
  g: GraphBuilder,
  x: string,
  dim: number,
  heads: number,
  w: AttentionWeights,
  mask?: string,
): string {
  const hd = dim / heads;
  let qkv = g.op1('MatMul', [x, w.qkvT]);
  if (w.qkvBias !== undefined) qkv = g.op1('Add', [qkv, w.qkvBias]);
  const [q0, k0, v0] = g.op('Split', [qkv, g.int64s([dim, dim, dim])], {
    outputs: 3,
    attrs: { axis: attr.int(-1) },
  });
  let k = k0!;
  let v = v0!;
  if (w.biasK !== undefined && w.biasV !== undefined) {
    k = g.op1('Concat', [k, expandOverBatch(g, w.biasK, x)], { axis: attr.int(1) });
    v = g.op1('Concat', [v, expandOverBatch(g, w.biasV, x)], { axis: attr.int(1) });
  }
  const split = g.int64s([0, 0, heads, hd]);
  const q = g.op1('Transpose', [g.op1('Reshape', [q0!, split])], { perm: attr.ints([0, 2, 1, 3]) });
  const kT = g.op1('Transpose', [g.op1('Reshape', [k, split])], { perm: attr.ints([0, 2, 3, 1]) });
  const vh = g.op1('Transpose', [g.op1('Reshape', [v, split])], { perm: attr.ints([0, 2, 1, 3]) });
  const qs = g.op1('Mul', [q, g.floats([1 / Math.sqrt(hd)], [])]);
  let scores = g.op1('MatMul', [qs, kT]);
  if (mask !== undefined) scores = g.op1('Add', [scores, mask]);
  const probs = g.op1('Softmax', [scores], { axis: attr.int(-1) });
  const o = g.op1('Transpose', [g.op1('MatMul', [probs, vh])], { perm: attr.ints([0, 2, 1, 3]) });
  const merged = g.op1('Reshape', [o, g.int64s([0, 0, dim])]);
  return g.op1('Add', [g.op1('MatMul', [merged, w.outT]), w.outBias]);
}

/**
 * One pre-norm block on x [N, L, D]: x + MHA(LN₁(x)), then + fc2(GELU(fc1(LN₂(x)))).
 */
export async function transformerBlock(
  ctx: EncoderContext,
  x: string,
  prefix: string,
  spec: BlockSpec,
  mask?: string,
): Promise<string> {
  const { g } = ctx;
  const d = spec.dim;
  const pb = spec.layout === 'pointbert';
  const n1 = await ctx.layerNorm(x, `${prefix}.${pb ? 'norm1' : 'norm_1'}`, d, spec.eps);
  const weights: AttentionWeights = pb
    ? {
        qkvT: await ctx.linearT(`${prefix}.attn.qkv.weight`, 3 * d, d),
        outT: await ctx.linearT(`${prefix}.attn.proj.weight`, d, d),
        outBias: await ctx.tensor(`${prefix}.attn.proj.bias`, [d]),
      }
    : {
        qkvT: await ctx.linearT(`${prefix}.attn.in_proj_weight`, 3 * d, d),
        qkvBias: await ctx.tensor(`${prefix}.attn.in_proj_bias`, [3 * d]),
        ...(spec.biasKv === true
          ? {
              biasK: await ctx.tensor(`${prefix}.attn.bias_k`, [1, 1, d]),
              biasV: await ctx.tensor(`${prefix}.attn.bias_v`, [1, 1, d]),
            }
          : {}),
        outT: await ctx.linearT(`${prefix}.attn.out_proj.weight`, d, d),
        outBias: await ctx.tensor(`${prefix}.attn.out_proj.bias`, [d]),
      };
  const h1 = g.op1('Add', [x, selfAttention(g, n1, d, spec.heads, weights, mask)]);
  const n2 = await ctx.layerNorm(h1, `${prefix}.${pb ? 'norm2' : 'norm_2'}`, d, spec.eps);
  const hidden = IMAGEBIND_CONSTANTS.mlpRatio * d;
  const f1 = await ctx.dense(n2, `${prefix}.mlp.fc1`, hidden, d, true);
  const f2 = await ctx.dense(geluErf(g, f1), `${prefix}.mlp.fc2`, d, hidden, true);
  return g.op1('Add', [h1, f2]);
}
