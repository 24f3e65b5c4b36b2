/**
 * ImageBind + Point-Bind dimensions, in the JSON layout of the golden `imagebind_config.json`
 * (`imagebind`: ImageBindModel constructor arguments; `point`: Point-BERT's yaml model section plus
 * the projection/head widths). The real `imagebind_w3D.pth` carries no config: its values are
 * imagebind_huge()'s (MODEL_SPEC §3, §3.7), which {@link defaultImageBindConfig} returns.
 */
export interface ImageBindModelArgs {
  readonly video_frames: number;
  /** Vision Conv3d kernel = stride, [time, height, width]. */
  readonly kernel_size: readonly [number, number, number];
  readonly audio_kernel_size: number;
  readonly audio_stride: number;
  readonly out_embed_dim: number;
  readonly vision_embed_dim: number;
  readonly vision_num_blocks: number;
  readonly vision_num_heads: number;
  readonly audio_embed_dim: number;
  readonly audio_num_blocks: number;
  readonly audio_num_heads: number;
  readonly audio_num_mel_bins: number;
  readonly audio_target_len: number;
  readonly audio_drop_path: number;
  readonly text_embed_dim: number;
  readonly text_num_blocks: number;
  readonly text_num_heads: number;
  readonly depth_embed_dim: number;
  readonly depth_kernel_size: number;
  readonly depth_num_blocks: number;
  readonly depth_num_heads: number;
  readonly depth_drop_path: number;
  readonly thermal_embed_dim: number;
  readonly thermal_kernel_size: number;
  readonly thermal_num_blocks: number;
  readonly thermal_num_heads: number;
  readonly thermal_drop_path: number;
  readonly imu_embed_dim: number;
  readonly imu_kernel_size: number;
  readonly imu_num_blocks: number;
  readonly imu_num_heads: number;
  readonly imu_drop_path: number;
}

export interface PointBertArgs {
  readonly trans_dim: number;
  readonly depth: number;
  readonly num_heads: number;
  readonly encoder_dims: number;
  readonly group_size: number;
  readonly num_group: number;
  readonly drop_path_rate: number;
  readonly cls_dim: number;
  readonly npoints: number;
  /** `point_trunk.pc_projection`: [2·trans_dim, point_head_dim]. */
  readonly pc_projection_shape: readonly [number, number];
  /** Width of the point head's LayerNorm (the projection output). */
  readonly point_head_dim: number;
  /**
   * Mini-PointNet widths: first_conv 3→c0→c1, second_conv (2·c1 = c2)→c3→encoder_dims.
   */
  readonly mini_pointnet_channels: readonly [number, number, number, number];
}

export interface ImageBindConfig {
  readonly imagebind: ImageBindModelArgs;
  readonly point: PointBertArgs;
}

/** Fixed by the preprocessing (MODEL_SPEC §2) and the model code, not by the config. */
export const IMAGEBIND_CONSTANTS = {
  imageSize: 224,
  textContextLength: 77,
  textVocabSize: 49408,
  imuChannels: 6,
  imuLength: 2000,
  /** Block LayerNorm eps of the ImageBind trunks and heads. */
  blockLnEps: 1e-6,
  /** PyTorch's default LayerNorm eps: the audio/depth/thermal/imu stems and all of Point-BERT. */
  defaultLnEps: 1e-5,
  batchNormEps: 1e-5,
  normalizeEps: 1e-12,
  maxLogitScale: 100,
  mlpRatio: 4,
} as const;

/** imagebind_huge() + Point-BERT `PointTransformer_8192point.yaml` (MODEL_SPEC §3, §3.7). */
export function defaultImageBindConfig(): ImageBindConfig {
  return {
    imagebind: {
      video_frames: 2,
      kernel_size: [2, 14, 14],
      audio_kernel_size: 16,
      audio_stride: 10,
      out_embed_dim: 1024,
      vision_embed_dim: 1280,
      vision_num_blocks: 32,
      vision_num_heads: 16,
      audio_embed_dim: 768,
      audio_num_blocks: 12,
      audio_num_heads: 12,
      audio_num_mel_bins: 128,
      audio_target_len: 204,
      audio_drop_path: 0.1,
      text_embed_dim: 1024,
      text_num_blocks: 24,
      text_num_heads: 16,
      depth_embed_dim: 384,
      depth_kernel_size: 16,
      depth_num_blocks: 12,
      depth_num_heads: 8,
      depth_drop_path: 0.0,
      thermal_embed_dim: 768,
      thermal_kernel_size: 16,
      thermal_num_blocks: 12,
      thermal_num_heads: 12,
      thermal_drop_path: 0.0,
      imu_embed_dim: 512,
      imu_kernel_size: 8,
      imu_num_blocks: 6,
      imu_num_heads: 8,
      imu_drop_path: 0.7,
    },
    point: {
      trans_dim: 384,
      depth: 12,
      num_heads: 6,
      encoder_dims: 256,
      group_size: 32,
      num_group: 512,
      drop_path_rate: 0.1,
      cls_dim: 40,
      npoints: 8192,
      pc_projection_shape: [768, 512],
      point_head_dim: 512,
      mini_pointnet_channels: [128, 256, 512, 512],
    },
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function readNumber(section: Record<string, unknown>, where: string, key: string, fallback?: number): number {
  const v = section[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}.${key} must be a number`);
  return v;
}

function readInts(
  section: Record<string, unknown>,
  where: string,
  key: string,
  length: number,
  fallback?: readonly number[],
): number[] {
  const v = section[key];
  if (v === undefined && fallback !== undefined) return [...fallback];
  if (
    !Array.isArray(v) ||
    v.length !== length ||
    v.some((x) => typeof x !== 'number' || !Number.isInteger(x))
  ) {
    throw new Error(`${where}.${key} must be an array of ${length} integers`);
  }
  return v as number[];
}

/**
 * Reads the JSON layout of `imagebind_config.json` (`{ imagebind: {...}, point: {...} }`; other
 * top-level keys such as `note` or `reference_huge` are ignored). Missing `imagebind` keys are an
 * error; missing point keys that Point-BERT's yaml fixes (group sizes, projection, mini-PointNet
 * widths) take the imagebind_huge values, with `pc_projection_shape` derived from `trans_dim`.
 */
export function parseImageBindConfig(json: unknown): ImageBindConfig {
  if (!isRecord(json) || !isRecord(json['imagebind']) || !isRecord(json['point'])) {
    throw new Error('ImageBind config must be an object with "imagebind" and "point" sections');
  }
  const ib = json['imagebind'];
  const pt = json['point'];
  const defaults = defaultImageBindConfig();
  const n = (key: keyof ImageBindModelArgs): number => readNumber(ib, 'imagebind', key);
  const kernel = readInts(ib, 'imagebind', 'kernel_size', 3);
  const imagebind: ImageBindModelArgs = {
    video_frames: n('video_frames'),
    kernel_size: [kernel[0]!, kernel[1]!, kernel[2]!],
    audio_kernel_size: n('audio_kernel_size'),
    audio_stride: n('audio_stride'),
    out_embed_dim: n('out_embed_dim'),
    vision_embed_dim: n('vision_embed_dim'),
    vision_num_blocks: n('vision_num_blocks'),
    vision_num_heads: n('vision_num_heads'),
    audio_embed_dim: n('audio_embed_dim'),
    audio_num_blocks: n('audio_num_blocks'),
    audio_num_heads: n('audio_num_heads'),
    audio_num_mel_bins: n('audio_num_mel_bins'),
    audio_target_len: n('audio_target_len'),
    audio_drop_path: n('audio_drop_path'),
    text_embed_dim: n('text_embed_dim'),
    text_num_blocks: n('text_num_blocks'),
    text_num_heads: n('text_num_heads'),
    depth_embed_dim: n('depth_embed_dim'),
    depth_kernel_size: n('depth_kernel_size'),
    depth_num_blocks: n('depth_num_blocks'),
    depth_num_heads: n('depth_num_heads'),
    depth_drop_path: n('depth_drop_path'),
    thermal_embed_dim: n('thermal_embed_dim'),
    thermal_kernel_size: n('thermal_kernel_size'),
    thermal_num_blocks: n('thermal_num_blocks'),
    thermal_num_heads: n('thermal_num_heads'),
    thermal_drop_path: n('thermal_drop_path'),
    imu_embed_dim: n('imu_embed_dim'),
    imu_kernel_size: n('imu_kernel_size'),
    imu_num_blocks: n('imu_num_blocks'),
    imu_num_heads: n('imu_num_heads'),
    imu_drop_path: n('imu_drop_path'),
  };
  const d = defaults.point;
  const p = (key: keyof PointBertArgs, fallback?: number): number => readNumber(pt, 'point', key, fallback);
  const transDim = p('trans_dim');
  const headDim = p('point_head_dim', d.point_head_dim);
  const proj = readInts(pt, 'point', 'pc_projection_shape', 2, [2 * transDim, headDim]);
  const mini = readInts(pt, 'point', 'mini_pointnet_channels', 4, d.mini_pointnet_channels);
  const point: PointBertArgs = {
    trans_dim: transDim,
    depth: p('depth'),
    num_heads: p('num_heads'),
    encoder_dims: p('encoder_dims'),
    group_size: p('group_size', d.group_size),
    num_group: p('num_group', d.num_group),
    drop_path_rate: p('drop_path_rate', d.drop_path_rate),
    cls_dim: p('cls_dim', d.cls_dim),
    npoints: p('npoints', d.npoints),
    pc_projection_shape: [proj[0]!, proj[1]!],
    point_head_dim: headDim,
    mini_pointnet_channels: [mini[0]!, mini[1]!, mini[2]!, mini[3]!],
  };
  const config: ImageBindConfig = { imagebind, point };
  checkImageBindConfig(config);
  return config;
}

/** Rejects configs the graphs cannot be built from (non-divisible heads, inconsistent widths). */
export function checkImageBindConfig(c: ImageBindConfig): void {
  const ib = c.imagebind;
  const heads: [string, number, number][] = [
    ['vision', ib.vision_embed_dim, ib.vision_num_heads],
    ['audio', ib.audio_embed_dim, ib.audio_num_heads],
    ['text', ib.text_embed_dim, ib.text_num_heads],
    ['depth', ib.depth_embed_dim, ib.depth_num_heads],
    ['thermal', ib.thermal_embed_dim, ib.thermal_num_heads],
    ['imu', ib.imu_embed_dim, ib.imu_num_heads],
    ['point', c.point.trans_dim, c.point.num_heads],
  ];
  for (const [name, dim, h] of heads) {
    if (!(h > 0) || dim % h !== 0)
      throw new Error(`${name}: embed dim ${dim} is not divisible by ${h} heads`);
  }
  const [kt, kh, kw] = ib.kernel_size;
  if (kt !== ib.video_frames) {
    throw new Error(`kernel_size[0] (${kt}) must equal video_frames (${ib.video_frames})`);
  }
  const size = IMAGEBIND_CONSTANTS.imageSize;
  if (size % kh !== 0 || size % kw !== 0) throw new Error(`kernel ${kh}×${kw} does not tile ${size}²`);
  const p = c.point;
  const [c0, c1, c2, c3] = p.mini_pointnet_channels;
  if (c2 !== 2 * c1 || !(c0 > 0) || !(c3 > 0)) {
    throw new Error(`mini_pointnet_channels [${c0}, ${c1}, ${c2}, ${c3}] must have c2 = 2·c1`);
  }
  if (p.pc_projection_shape[0] !== 2 * p.trans_dim || p.pc_projection_shape[1] !== p.point_head_dim) {
    throw new Error(
      `pc_projection_shape [${p.pc_projection_shape.join(', ')}] must be [2·trans_dim, point_head_dim]`,
    );
  }
}

/** Patch grid and token counts the checkpoint shapes follow. */
export interface ImageBindDerived {
  /** Vision patches per clip (16·16 = 256 for ViT-H/14). */
  readonly visionGrid: readonly [number, number];
  readonly visionTokens: number;
  /** Audio conv output grid [freq rows, time cols] (12 × 19) and token count (228). */
  readonly audioGrid: readonly [number, number];
  readonly audioTokens: number;
  readonly depthTokens: number;
  readonly thermalTokens: number;
  readonly imuTokens: number;
}

export function imageBindDerived(c: ImageBindConfig): ImageBindDerived {
  const ib = c.imagebind;
  const size = IMAGEBIND_CONSTANTS.imageSize;
  const visionGrid: [number, number] = [size / ib.kernel_size[1], size / ib.kernel_size[2]];
  const conv = (n: number): number => Math.floor((n - ib.audio_kernel_size) / ib.audio_stride) + 1;
  const audioGrid: [number, number] = [conv(ib.audio_num_mel_bins), conv(ib.audio_target_len)];
  return {
    visionGrid,
    visionTokens: visionGrid[0] * visionGrid[1],
    audioGrid,
    audioTokens: audioGrid[0] * audioGrid[1],
    depthTokens: (size / ib.depth_kernel_size) ** 2,
    thermalTokens: (size / ib.thermal_kernel_size) ** 2,
    imuTokens: Math.floor(IMAGEBIND_CONSTANTS.imuLength / ib.imu_kernel_size),
  };
}
