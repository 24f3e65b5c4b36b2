import { attr, GraphBuilder, OnnxType, type InitializerSink } from '../onnx/onnx-graph';
import type { WeightStore } from '../weights';
import { IMAGEBIND_CONSTANTS, imageBindDerived, type ImageBindConfig } from './imagebind-config';
import { imageBindBlockSpec } from './imagebind-keys';
import {
  EncoderContext,
  type EncoderWeightFormat,
  encoderOutputs,
  logitScale,
  meanOverClips,
  postprocess,
  prependToken,
  selectToken,
} from './encoder-ops';
import { transformerBlock } from './transformer-block';

export interface AudioGraphOptions {
  readonly sink?: InitializerSink;
  /** Weight storage (float32 unless `fp16`; the graph computes in float32 either way). */
  readonly format?: EncoderWeightFormat;
}

/**
 * The ImageBind audio encoder (MODEL_SPEC §3.3) on `audio` [batch, clips, 1, 128, 204] (3 clips
 * from the loader, §2.3): Conv2d patch stem (kernel 16, stride 10, no bias) → 228 tokens →
 * LayerNorm(eps 1e-5), CLS + learned positions, pre-norm blocks with add_bias_kv, head LayerNorm →
 * CLS → Linear (no bias), postprocessor L2 normalise × min(exp(log_logit_scale), 100) = 20; every
 * clip is encoded on its own and the clips are averaged (§3.6).
 * Outputs `embedding` and `head_prenorm`, both [batch, out_embed_dim].
 */
export async function buildAudioGraph(
  weights: WeightStore,
  config: ImageBindConfig,
  options: AudioGraphOptions = {},
): Promise<GraphBuilder> {
  const ib = config.imagebind;
  const d = ib.audio_embed_dim;
  const out = ib.out_embed_dim;
  const k = ib.audio_kernel_size;
  const stride = ib.audio_stride;
  const mels = ib.audio_num_mel_bins;
  const frames = ib.audio_target_len;
  const derived = imageBindDerived(config);
  const g = new GraphBuilder('imagebind_audio', options.sink);
  const ctx = new EncoderContext(g, weights, options.format);

  const input = g.input(
    'audio',
    OnnxType.FLOAT,
    ['batch', 'clips', 1, mels, frames],
    'normalised log-mel clips (MODEL_SPEC §2.3)',
  );
  const clips = g.op1('Reshape', [input, g.int64s([-1, 1, mels, frames])]);
  const stemW = await ctx.tensor('modality_preprocessors.audio.rgbt_stem.proj.weight', [d, 1, k, k]);
  const patches = g.op1('Conv', [clips, stemW], {
    kernel_shape: attr.ints([k, k]),
    strides: attr.ints([stride, stride]),
  });
  // [N, D, 12, 19] → [N, 228, D], token = 19·freq_row + time_col
  const tokens = g.op1('Transpose', [g.op1('Reshape', [patches, g.int64s([0, d, -1])])], {
    perm: attr.ints([0, 2, 1]),
  });
  const normed = await ctx.layerNorm(
    tokens,
    'modality_preprocessors.audio.rgbt_stem.norm_layer',
    d,
    IMAGEBIND_CONSTANTS.defaultLnEps,
  );
  const cls = await ctx.tensor('modality_preprocessors.audio.cls_token', [1, 1, d]);
  const pos = await ctx.tensor('modality_preprocessors.audio.pos_embedding_helper.pos_embed', [
    1,
    1 + derived.audioTokens,
    d,
  ]);
  let x = g.op1('Add', [prependToken(g, normed, cls), pos]);
  const spec = imageBindBlockSpec(config, 'audio');
  for (let i = 0; i < ib.audio_num_blocks; i++) {
    x = await transformerBlock(ctx, x, `modality_trunks.audio.blocks.${i}`, spec);
  }
  const clsOut = await ctx.layerNorm(
    selectToken(g, x, 0),
    'modality_heads.audio.0',
    d,
    IMAGEBIND_CONSTANTS.blockLnEps,
  );
  const head = await ctx.dense(clsOut, 'modality_heads.audio.2', out, d, false);
  const scale = logitScale(await ctx.scalar('modality_postprocessors.audio.1.log_logit_scale'));
  const embedding = postprocess(g, head, scale);
  encoderOutputs(g, meanOverClips(g, embedding, input, out), meanOverClips(g, head, input, out), out);
  return g;
}
