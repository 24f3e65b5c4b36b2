import { attr, GraphBuilder, OnnxType, type InitializerSink } from '../onnx/onnx-graph';
import type { WeightStore } from '../weights';
import { IMAGEBIND_CONSTANTS, imageBindDerived, type ImageBindConfig } from './imagebind-config';
import { imageBindBlockSpec } from './imagebind-keys';
import {
  EncoderContext,
  type EncoderWeightFormat,
  encoderOutputs,
  meanOverClips,
  postprocess,
  prependToken,
  selectToken,
} from './encoder-ops';
import { transformerBlock } from './transformer-block';

export interface VisionGraphOptions {
  /**
   * `image`: input `image` [batch, 3, 224, 224], each image repeated to a 2-frame clip
   * (PadIm2Video, MODEL_SPEC §3.2). `video`: input `video` [batch, clips, 3, 2, 224, 224]
   * (15 clips from the loader), every clip encoded and postprocessed, then averaged (§3.6).
   */
  readonly input: 'image' | 'video';
  readonly sink?: InitializerSink;
  /** Weight storage (float32 unless `fp16`; the graph computes in float32 either way). */
  readonly format?: EncoderWeightFormat;
}

/**
 * The ImageBind vision encoder (OpenCLIP ViT-H/14 image tower, MODEL_SPEC §3.2): Conv3d patch stem
 * (kernel = stride = [2, 14, 14], no bias), CLS + learned positions, ln_pre, pre-norm blocks, head
 * LayerNorm → CLS → Linear (no bias), postprocessor L2 normalise (no scale).
 * Outputs `embedding` and `head_prenorm`, both [batch, out_embed_dim].
 */
export async function buildVisionGraph(
  weights: WeightStore,
  config: ImageBindConfig,
  options: VisionGraphOptions,
): Promise<GraphBuilder> {
  const ib = config.imagebind;
  const d = ib.vision_embed_dim;
  const out = ib.out_embed_dim;
  const size = IMAGEBIND_CONSTANTS.imageSize;
  const [kt, kh, kw] = ib.kernel_size;
  const frames = ib.video_frames;
  const derived = imageBindDerived(config);
  const g = new GraphBuilder(`imagebind_vision_${options.input}`, options.sink);
  const ctx = new EncoderContext(g, weights, options.format);

  let clips: string;
  let input: string;
  if (options.input === 'image') {
    input = g.input(
      'image',
      OnnxType.FLOAT,
      ['batch', 3, size, size],
      'normalised RGB images (MODEL_SPEC §2.1)',
    );
    // PadIm2Video(repeat, T): a time axis at dim 2, the frame repeated T times.
    const one = g.op1('Unsqueeze', [input, g.int64s([2])]);
    clips = g.op1(
      'Concat',
      Array.from({ length: frames }, () => one),
      { axis: attr.int(2) },
    );
  } else {
    input = g.input(
      'video',
      OnnxType.FLOAT,
      ['batch', 'clips', 3, frames, size, size],
      'normalised video clips (MODEL_SPEC §2.2: 5 clips × 3 spatial crops = 15)',
    );
    clips = g.op1('Reshape', [input, g.int64s([-1, 3, frames, size, size])]);
  }

  const stemW = await ctx.tensor('modality_preprocessors.vision.rgbt_stem.proj.1.weight', [d, 3, kt, kh, kw]);
  const patches = g.op1('Conv', [clips, stemW], {
    kernel_shape: attr.ints([kt, kh, kw]),
    strides: attr.ints([kt, kh, kw]),
  });
  // [N, D, 1, 16, 16] → [N, 256, D], token = 16·row + col
  const tokens = g.op1('Transpose', [g.op1('Reshape', [patches, g.int64s([0, d, -1])])], {
    perm: attr.ints([0, 2, 1]),
  });
  const cls = await ctx.tensor('modality_preprocessors.vision.cls_token', [1, 1, d]);
  const pos = await ctx.tensor('modality_preprocessors.vision.pos_embedding_helper.pos_embed', [
    1,
    1 + derived.visionTokens,
    d,
  ]);
  let x = g.op1('Add', [prependToken(g, tokens, cls), pos]);
  x = await ctx.layerNorm(
    x,
    'modality_trunks.vision.pre_transformer_layer.0',
    d,
    IMAGEBIND_CONSTANTS.blockLnEps,
  );
  const spec = imageBindBlockSpec(config, 'vision');
  for (let i = 0; i < ib.vision_num_blocks; i++) {
    x = await transformerBlock(ctx, x, `modality_trunks.vision.blocks.${i}`, spec);
  }
  // LayerNorm is per token, so taking the CLS token first is the same computation.
  const clsOut = await ctx.layerNorm(
    selectToken(g, x, 0),
    'modality_heads.vision.0',
    d,
    IMAGEBIND_CONSTANTS.blockLnEps,
  );
  const head = await ctx.dense(clsOut, 'modality_heads.vision.2', out, d, false);
  const embedding = postprocess(g, head, undefined);

  if (options.input === 'image') {
    encoderOutputs(g, embedding, head, out);
  } else {
    encoderOutputs(g, meanOverClips(g, embedding, input, out), meanOverClips(g, head, input, out), out);
  }
  return g;
}
