import { attr, GraphBuilder, OnnxType, type InitializerSink } from '../onnx/onnx-graph';
import type { WeightStore } from '../weights';
import { IMAGEBIND_CONSTANTS, type ImageBindConfig } from './imagebind-config';
import { imageBindBlockSpec } from './imagebind-keys';
import {
  EncoderContext,
  type EncoderWeightFormat,
  encoderOutputs,
  logitScale,
  postprocess,
} from './encoder-ops';
import { transformerBlock } from './transformer-block';

export interface TextGraphOptions {
  readonly sink?: InitializerSink;
  /** Weight storage (float32 unless `fp16`; the graph computes in float32 either way). */
  readonly format?: EncoderWeightFormat;
}

/**
 * The ImageBind text encoder (OpenCLIP text tower, MODEL_SPEC §3.4) on `tokens` [batch, 77] int64
 * (§2.4): token embedding + learned positions, pre-norm blocks under the checkpoint's causal mask,
 * the token at argmax(token ids) per row (the first occurrence of the largest id: the EOT 49407,
 * or wherever the largest id sits when truncation dropped it, B14), head LayerNorm → Linear (no
 * bias), postprocessor L2 normalise × min(exp(log_logit_scale), 100) with the learned scale.
 * Outputs `embedding` and `head_prenorm`, both [batch, out_embed_dim].
 */
export async function buildTextGraph(
  weights: WeightStore,
  config: ImageBindConfig,
  options: TextGraphOptions = {},
): Promise<GraphBuilder> {
  const ib = config.imagebind;
  const d = ib.text_embed_dim;
  const out = ib.out_embed_dim;
  const len = IMAGEBIND_CONSTANTS.textContextLength;
  const g = new GraphBuilder('imagebind_text', options.sink);
  const ctx = new EncoderContext(g, weights, options.format);

  const tokens = g.input(
    'tokens',
    OnnxType.INT64,
    ['batch', len],
    'CLIP BPE token ids, zero-padded (MODEL_SPEC §2.4)',
  );
  const table = await ctx.tensor('modality_preprocessors.text.token_embedding.weight', [
    IMAGEBIND_CONSTANTS.textVocabSize,
    d,
  ]);
  const pos = await ctx.tensor('modality_preprocessors.text.pos_embed', [1, len, d]);
  let x = g.op1('Add', [g.op1('Gather', [table, tokens], { axis: attr.int(0) }), pos]);
  const mask = await ctx.tensor('modality_preprocessors.text.mask', [len, len]);
  const spec = imageBindBlockSpec(config, 'text');
  for (let i = 0; i < ib.text_num_blocks; i++) {
    x = await transformerBlock(ctx, x, `modality_trunks.text.blocks.${i}`, spec, mask);
  }
  // ArgMax picks the first maximum (select_last_index = 0), like torch.argmax on CPU; ids < 2²⁴
  // are exact in int32.
  const eot = g.op1('ArgMax', [g.op1('Cast', [tokens], { to: attr.int(OnnxType.INT32) })], {
    axis: attr.int(1),
    keepdims: attr.int(1),
  });
  const pooled = g.op1('GatherND', [x, eot], { batch_dims: attr.int(1) });
  const normed = await ctx.layerNorm(pooled, 'modality_heads.text.proj.0', d, IMAGEBIND_CONSTANTS.blockLnEps);
  const head = await ctx.dense(normed, 'modality_heads.text.proj.1', out, d, false);
  const scale = logitScale(await ctx.scalar('modality_postprocessors.text.1.log_logit_scale'));
  encoderOutputs(g, postprocess(g, head, scale), head, out);
  return g;
}
