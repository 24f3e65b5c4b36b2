import { attr, GraphBuilder, OnnxType, type InitializerSink } from '../onnx/onnx-graph';
import { transpose, type WeightStore } from '../weights';
import { IMAGEBIND_CONSTANTS, type ImageBindConfig } from './imagebind-config';
import { POINT_POS_HIDDEN, pointBlockSpec } from './imagebind-keys';
import {
  EncoderContext,
  type EncoderWeightFormat,
  encoderOutputs,
  geluErf,
  logitScale,
  postprocess,
  prependToken,
  selectToken,
} from './encoder-ops';
import { transformerBlock } from './transformer-block';

export interface PointGraphOptions {
  readonly sink?: InitializerSink;
  /** Weight storage (float32 unless `fp16`; the graph computes in float32 either way). */
  readonly format?: EncoderWeightFormat;
}

const ENC = 'point_trunk.point_encoder';

/**
 * A pointwise Conv1d (`weight` [out, in, 1], `bias` [out]) followed by an eval-mode BatchNorm1d
 * folded into it: with s = γ / √(running_var + eps), W′ = s·W and b′ = s·(b − running_mean) + β.
 * Returns W′ transposed to [in, out] and b′, each rounded once to float32 from double.
 */
async function convBatchNorm(
  w: WeightStore,
  conv: string,
  bn: string,
  out: number,
  inn: number,
): Promise<{ weightT: Float32Array; bias: Float32Array }> {
  const weight = await w.f32(`${conv}.weight`, [out, inn, 1]);
  const bias = await w.f32(`${conv}.bias`, [out]);
  const gamma = await w.f32(`${bn}.weight`, [out]);
  const beta = await w.f32(`${bn}.bias`, [out]);
  const mean = await w.f32(`${bn}.running_mean`, [out]);
  const variance = await w.f32(`${bn}.running_var`, [out]);
  const folded = new Float32Array(out * inn);
  const foldedBias = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    const s = gamma[o]! / Math.sqrt(variance[o]! + IMAGEBIND_CONSTANTS.batchNormEps);
    for (let i = 0; i < inn; i++) folded[o * inn + i] = s * weight[o * inn + i]!;
    foldedBias[o] = s * (bias[o]! - mean[o]!) + beta[o]!;
  }
  return { weightT: transpose(folded, out, inn), bias: foldedBias };
}

/**
 * The Point-Bind point encoder (Point-BERT PointTransformer + projection + head, MODEL_SPEC §3.7)
 * from the grouped cloud:
 * - `neighborhood` [batch, num_group, group_size, 3]: the group_size nearest points of each
 *   centre **minus that centre** (`X[idx] − center`); the order of points inside a group is free;
 * - `center` [batch, num_group, 3]: the FPS centres in selection order.
 * FPS and kNN (§3.7 steps 1–2) are done by the caller. The graph runs the mini-PointNet (BatchNorm
 * folded into its convolutions), reduce_dim, the positional MLP, CLS token/position, the blocks
 * with the position re-added before each, the final LayerNorm, [CLS ‖ max over groups],
 * `pc_projection`, the point head (LayerNorm eps 1e-6 → Linear, no bias) and the postprocessor
 * (L2 normalise × exp(log_logit_scale) = 1).
 * Outputs `embedding` and `head_prenorm`, both [batch, out_embed_dim].
 */
export async function buildPointGraph(
  weights: WeightStore,
  config: ImageBindConfig,
  options: PointGraphOptions = {},
): Promise<GraphBuilder> {
  const p = config.point;
  const t = p.trans_dim;
  const out = config.imagebind.out_embed_dim;
  const [c0, c1, c2, c3] = p.mini_pointnet_channels;
  const [projIn, projOut] = p.pc_projection_shape;
  const g = new GraphBuilder('imagebind_point', options.sink);
  const ctx = new EncoderContext(g, weights, options.format);
  const lnEps = IMAGEBIND_CONSTANTS.defaultLnEps;

  const neighborhood = g.input(
    'neighborhood',
    OnnxType.FLOAT,
    ['batch', p.num_group, p.group_size, 3],
    'kNN groups relative to their centre (X[idx] − center, MODEL_SPEC §3.7 step 2)',
  );
  const center = g.input(
    'center',
    OnnxType.FLOAT,
    ['batch', p.num_group, 3],
    'FPS centres (MODEL_SPEC §3.7 step 1)',
  );

  // mini-PointNet on [B, G, K, C] (channels last; every Conv1d is a pointwise linear)
  const first = await convBatchNorm(
    weights,
    `${ENC}.encoder.first_conv.0`,
    `${ENC}.encoder.first_conv.1`,
    c0,
    3,
  );
  const h1 = g.op1('Relu', [
    g.op1('Add', [
      g.op1('MatMul', [neighborhood, ctx.constant(`${ENC}.encoder.first_conv.01.T`, [3, c0], first.weightT)]),
      g.floatInit(`${ENC}.encoder.first_conv.01.bias`, [c0], first.bias),
    ]),
  ]);
  const f = g.op1('Add', [
    g.op1('MatMul', [
      h1,
      ctx.constant(
        `${ENC}.encoder.first_conv.3.weight.T`,
        [c0, c1],
        transpose(await weights.f32(`${ENC}.encoder.first_conv.3.weight`, [c1, c0, 1]), c1, c0),
      ),
    ]),
    await ctx.tensor(`${ENC}.encoder.first_conv.3.bias`, [c1]),
  ]);
  const fMax = g.op1('ReduceMax', [f], { axes: attr.ints([2]), keepdims: attr.int(1) });
  // second_conv.0 on concat([global, f]) = global · W[:, :c1]ᵀ + f · W[:, c1:]ᵀ (global first);
  // the global half is computed once per group and broadcast over its points.
  const second = await convBatchNorm(
    weights,
    `${ENC}.encoder.second_conv.0`,
    `${ENC}.encoder.second_conv.1`,
    c3,
    c2,
  );
  const wGlobalT = second.weightT.slice(0, c1 * c3);
  const wLocalT = second.weightT.slice(c1 * c3, c2 * c3);
  const globalPart = g.op1('Add', [
    g.op1('MatMul', [fMax, ctx.constant(`${ENC}.encoder.second_conv.01.global.T`, [c1, c3], wGlobalT)]),
    g.floatInit(`${ENC}.encoder.second_conv.01.bias`, [c3], second.bias),
  ]);
  const h2 = g.op1('Relu', [
    g.op1('Add', [
      g.op1('MatMul', [f, ctx.constant(`${ENC}.encoder.second_conv.01.local.T`, [c1, c3], wLocalT)]),
      globalPart,
    ]),
  ]);
  const f2 = g.op1('Add', [
    g.op1('MatMul', [
      h2,
      ctx.constant(
        `${ENC}.encoder.second_conv.3.weight.T`,
        [c3, p.encoder_dims],
        transpose(
          await weights.f32(`${ENC}.encoder.second_conv.3.weight`, [p.encoder_dims, c3, 1]),
          p.encoder_dims,
          c3,
        ),
      ),
    ]),
    await ctx.tensor(`${ENC}.encoder.second_conv.3.bias`, [p.encoder_dims]),
  ]);
  const groupFeatures = g.op1('ReduceMax', [f2], { axes: attr.ints([2]), keepdims: attr.int(0) });
  const tokens = await ctx.dense(groupFeatures, `${ENC}.reduce_dim`, t, p.encoder_dims, true);

  const posHidden = await ctx.dense(center, `${ENC}.pos_embed.0`, POINT_POS_HIDDEN, 3, true);
  const pos = await ctx.dense(geluErf(g, posHidden), `${ENC}.pos_embed.2`, t, POINT_POS_HIDDEN, true);

  let x = prependToken(g, tokens, await ctx.tensor(`${ENC}.cls_token`, [1, 1, t]));
  const posAll = prependToken(g, pos, await ctx.tensor(`${ENC}.cls_pos`, [1, 1, t]));
  const spec = pointBlockSpec(config);
  for (let i = 0; i < p.depth; i++) {
    x = await transformerBlock(ctx, g.op1('Add', [x, posAll]), `${ENC}.blocks.blocks.${i}`, spec);
  }
  x = await ctx.layerNorm(x, `${ENC}.norm`, t, lnEps);
  const rest = g.op1('Slice', [x, g.int64s([1]), g.int64s([Number.MAX_SAFE_INTEGER]), g.int64s([1])]);
  const feat = g.op1(
    'Concat',
    [selectToken(g, x, 0), g.op1('ReduceMax', [rest], { axes: attr.ints([1]), keepdims: attr.int(0) })],
    { axis: attr.int(-1) },
  );
  // pc_projection is a raw [2·trans_dim, 512] matrix: feat · P, not transposed.
  const pc = g.op1('MatMul', [feat, await ctx.tensor('point_trunk.pc_projection', [projIn, projOut])]);
  const normed = await ctx.layerNorm(pc, 'modality_heads.point.0', projOut, IMAGEBIND_CONSTANTS.blockLnEps);
  const head = await ctx.dense(normed, 'modality_heads.point.2', out, projOut, false);
  const scale = logitScale(await ctx.scalar('modality_postprocessors.point.1.log_logit_scale'));
  encoderOutputs(g, postprocess(g, head, scale), head, out);
  return g;
}
