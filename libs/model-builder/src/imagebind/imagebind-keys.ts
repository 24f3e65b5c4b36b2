import { IMAGEBIND_CONSTANTS, imageBindDerived, type ImageBindConfig } from './imagebind-config';
import { blockKeys, type BlockSpec } from './transformer-block';

export type ImageBindEncoder = 'vision' | 'audio' | 'text' | 'point';

const BLOCK_EPS = IMAGEBIND_CONSTANTS.blockLnEps;

/** Width of the first point positional-embedding layer (Point-BERT hard-codes 128). */
export const POINT_POS_HIDDEN = 128;

/** Trunk block specs of every ImageBind modality (MODEL_SPEC §3.1–§3.5). */
export function imageBindBlockSpec(
  c: ImageBindConfig,
  modality: 'vision' | 'audio' | 'text' | 'depth' | 'thermal' | 'imu',
): BlockSpec {
  const ib = c.imagebind;
  switch (modality) {
    case 'vision':
      return { layout: 'imagebind', dim: ib.vision_embed_dim, heads: ib.vision_num_heads, eps: BLOCK_EPS };
    case 'text':
      return { layout: 'imagebind', dim: ib.text_embed_dim, heads: ib.text_num_heads, eps: BLOCK_EPS };
    case 'audio':
      return {
        layout: 'imagebind',
        dim: ib.audio_embed_dim,
        heads: ib.audio_num_heads,
        eps: BLOCK_EPS,
        biasKv: true,
      };
    case 'depth':
      return {
        layout: 'imagebind',
        dim: ib.depth_embed_dim,
        heads: ib.depth_num_heads,
        eps: BLOCK_EPS,
        biasKv: true,
      };
    case 'thermal':
      return {
        layout: 'imagebind',
        dim: ib.thermal_embed_dim,
        heads: ib.thermal_num_heads,
        eps: BLOCK_EPS,
        biasKv: true,
      };
    case 'imu':
      return {
        layout: 'imagebind',
        dim: ib.imu_embed_dim,
        heads: ib.imu_num_heads,
        eps: BLOCK_EPS,
        biasKv: true,
      };
  }
}

export function pointBlockSpec(c: ImageBindConfig): BlockSpec {
  return {
    layout: 'pointbert',
    dim: c.point.trans_dim,
    heads: c.point.num_heads,
    eps: IMAGEBIND_CONSTANTS.defaultLnEps,
  };
}

function addBlocks(keys: Map<string, number[]>, prefix: string, count: number, spec: BlockSpec): void {
  for (let i = 0; i < count; i++) for (const [k, s] of blockKeys(`${prefix}.${i}`, spec)) keys.set(k, s);
}

function addNorm(keys: Map<string, number[]>, prefix: string, dim: number): void {
  keys.set(`${prefix}.weight`, [dim]);
  keys.set(`${prefix}.bias`, [dim]);
}

/** The keys the vision encoder reads (MODEL_SPEC §3.2, §3.8). */
export function visionKeys(c: ImageBindConfig): Map<string, number[]> {
  const ib = c.imagebind;
  const d = ib.vision_embed_dim;
  const [kt, kh, kw] = ib.kernel_size;
  const keys = new Map<string, number[]>([
    ['modality_preprocessors.vision.cls_token', [1, 1, d]],
    ['modality_preprocessors.vision.rgbt_stem.proj.1.weight', [d, 3, kt, kh, kw]],
    [
      'modality_preprocessors.vision.pos_embedding_helper.pos_embed',
      [1, 1 + imageBindDerived(c).visionTokens, d],
    ],
  ]);
  addNorm(keys, 'modality_trunks.vision.pre_transformer_layer.0', d);
  addBlocks(keys, 'modality_trunks.vision.blocks', ib.vision_num_blocks, imageBindBlockSpec(c, 'vision'));
  addNorm(keys, 'modality_heads.vision.0', d);
  keys.set('modality_heads.vision.2.weight', [ib.out_embed_dim, d]);
  return keys;
}

/** The keys the audio encoder reads (MODEL_SPEC §3.3, §3.8). */
export function audioKeys(c: ImageBindConfig): Map<string, number[]> {
  const ib = c.imagebind;
  const d = ib.audio_embed_dim;
  const k = ib.audio_kernel_size;
  const keys = new Map<string, number[]>([
    ['modality_preprocessors.audio.cls_token', [1, 1, d]],
    ['modality_preprocessors.audio.rgbt_stem.proj.weight', [d, 1, k, k]],
    [
      'modality_preprocessors.audio.pos_embedding_helper.pos_embed',
      [1, 1 + imageBindDerived(c).audioTokens, d],
    ],
  ]);
  addNorm(keys, 'modality_preprocessors.audio.rgbt_stem.norm_layer', d);
  addBlocks(keys, 'modality_trunks.audio.blocks', ib.audio_num_blocks, imageBindBlockSpec(c, 'audio'));
  addNorm(keys, 'modality_heads.audio.0', d);
  keys.set('modality_heads.audio.2.weight', [ib.out_embed_dim, d]);
  keys.set('modality_postprocessors.audio.1.log_logit_scale', []);
  return keys;
}

/** The keys the text encoder reads (MODEL_SPEC §3.4, §3.8). */
export function textKeys(c: ImageBindConfig): Map<string, number[]> {
  const ib = c.imagebind;
  const d = ib.text_embed_dim;
  const ctx = IMAGEBIND_CONSTANTS.textContextLength;
  const keys = new Map<string, number[]>([
    ['modality_preprocessors.text.pos_embed', [1, ctx, d]],
    ['modality_preprocessors.text.mask', [ctx, ctx]],
    ['modality_preprocessors.text.token_embedding.weight', [IMAGEBIND_CONSTANTS.textVocabSize, d]],
  ]);
  addBlocks(keys, 'modality_trunks.text.blocks', ib.text_num_blocks, imageBindBlockSpec(c, 'text'));
  addNorm(keys, 'modality_heads.text.proj.0', d);
  keys.set('modality_heads.text.proj.1.weight', [ib.out_embed_dim, d]);
  keys.set('modality_postprocessors.text.1.log_logit_scale', []);
  return keys;
}

/** The keys the point encoder reads (MODEL_SPEC §3.7, §3.8); `num_batches_tracked` excluded. */
export function pointKeys(c: ImageBindConfig): Map<string, number[]> {
  const p = c.point;
  const t = p.trans_dim;
  const [c0, c1, c2, c3] = p.mini_pointnet_channels;
  const e = 'point_trunk.point_encoder';
  const keys = new Map<string, number[]>([
    ['point_trunk.pc_projection', [...p.pc_projection_shape]],
    [`${e}.cls_token`, [1, 1, t]],
    [`${e}.cls_pos`, [1, 1, t]],
    [`${e}.encoder.first_conv.0.weight`, [c0, 3, 1]],
    [`${e}.encoder.first_conv.0.bias`, [c0]],
    [`${e}.encoder.first_conv.3.weight`, [c1, c0, 1]],
    [`${e}.encoder.first_conv.3.bias`, [c1]],
    [`${e}.encoder.second_conv.0.weight`, [c3, c2, 1]],
    [`${e}.encoder.second_conv.0.bias`, [c3]],
    [`${e}.encoder.second_conv.3.weight`, [p.encoder_dims, c3, 1]],
    [`${e}.encoder.second_conv.3.bias`, [p.encoder_dims]],
    [`${e}.reduce_dim.weight`, [t, p.encoder_dims]],
    [`${e}.reduce_dim.bias`, [t]],
    [`${e}.pos_embed.0.weight`, [POINT_POS_HIDDEN, 3]],
    [`${e}.pos_embed.0.bias`, [POINT_POS_HIDDEN]],
    [`${e}.pos_embed.2.weight`, [t, POINT_POS_HIDDEN]],
    [`${e}.pos_embed.2.bias`, [t]],
  ]);
  for (const [bn, n] of [
    ['first_conv.1', c0],
    ['second_conv.1', c3],
  ] as const) {
    for (const s of ['weight', 'bias', 'running_mean', 'running_var'])
      keys.set(`${e}.encoder.${bn}.${s}`, [n]);
  }
  addBlocks(keys, `${e}.blocks.blocks`, p.depth, pointBlockSpec(c));
  addNorm(keys, `${e}.norm`, t);
  addNorm(keys, 'modality_heads.point.0', p.point_head_dim);
  keys.set('modality_heads.point.2.weight', [c.imagebind.out_embed_dim, p.point_head_dim]);
  keys.set('modality_postprocessors.point.1.log_logit_scale', []);
  return keys;
}

/** The keys one encoder reads. */
export function encoderKeys(c: ImageBindConfig, encoder: ImageBindEncoder): Map<string, number[]> {
  switch (encoder) {
    case 'vision':
      return visionKeys(c);
    case 'audio':
      return audioKeys(c);
    case 'text':
      return textKeys(c);
    case 'point':
      return pointKeys(c);
  }
}

/**
 * Every key of `imagebind_w3D.pth` with its shape (MODEL_SPEC §3.8), including the depth, thermal
 * and IMU towers no graph uses and the BatchNorm `num_batches_tracked` counters, so
 * `validateStateDict(stateDict, imageBindKeys(config))` is the official strict load.
 * imagebind_huge: 1476 keys, 1,223,565,617 elements.
 */
export function imageBindKeys(c: ImageBindConfig): Map<string, number[]> {
  const ib = c.imagebind;
  const derived = imageBindDerived(c);
  const keys = new Map<string, number[]>();
  const merge = (m: Map<string, number[]>): void => {
    for (const [k, s] of m) keys.set(k, s);
  };
  merge(visionKeys(c));
  merge(textKeys(c));
  merge(audioKeys(c));

  const out = ib.out_embed_dim;
  const conv2d = (
    name: 'depth' | 'thermal',
    stem: string,
    dim: number,
    kernel: number,
    tokens: number,
    blocks: number,
  ): void => {
    const pre = `modality_preprocessors.${name}`;
    keys.set(`${pre}.cls_token`, [1, 1, dim]);
    keys.set(`${pre}.${stem}.proj.weight`, [dim, 1, kernel, kernel]);
    addNorm(keys, `${pre}.${stem}.norm_layer`, dim);
    keys.set(`${pre}.pos_embedding_helper.pos_embed`, [1, 1 + tokens, dim]);
    addBlocks(keys, `modality_trunks.${name}.blocks`, blocks, imageBindBlockSpec(c, name));
    addNorm(keys, `modality_heads.${name}.0`, dim);
    keys.set(`modality_heads.${name}.2.weight`, [out, dim]);
    keys.set(`modality_postprocessors.${name}.1.log_logit_scale`, []);
  };
  conv2d(
    'depth',
    'depth_stem',
    ib.depth_embed_dim,
    ib.depth_kernel_size,
    derived.depthTokens,
    ib.depth_num_blocks,
  );
  conv2d(
    'thermal',
    'rgbt_stem',
    ib.thermal_embed_dim,
    ib.thermal_kernel_size,
    derived.thermalTokens,
    ib.thermal_num_blocks,
  );

  const imu = ib.imu_embed_dim;
  keys.set('modality_preprocessors.imu.pos_embed', [1, 1 + derived.imuTokens, imu]);
  keys.set('modality_preprocessors.imu.cls_token', [1, 1, imu]);
  keys.set('modality_preprocessors.imu.imu_stem.proj.weight', [
    imu,
    IMAGEBIND_CONSTANTS.imuChannels * ib.imu_kernel_size,
  ]);
  addNorm(keys, 'modality_preprocessors.imu.imu_stem.norm_layer', imu);
  addBlocks(keys, 'modality_trunks.imu.blocks', ib.imu_num_blocks, imageBindBlockSpec(c, 'imu'));
  addNorm(keys, 'modality_heads.imu.0', imu);
  keys.set('modality_heads.imu.3.weight', [out, imu]);
  keys.set('modality_postprocessors.imu.1.log_logit_scale', []);

  merge(pointKeys(c));
  keys.set('point_trunk.point_encoder.encoder.first_conv.1.num_batches_tracked', []);
  keys.set('point_trunk.point_encoder.encoder.second_conv.1.num_batches_tracked', []);
  return keys;
}
