import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  parseImageBindConfig,
  type ImageBindConfig,
  type ImageBindModelArgs,
  type PointBertArgs,
} from '../imagebind';
import { writeSyntheticLanguageCheckpoints, type SyntheticLanguagePlan } from '../synthetic-checkpoints';
import { randomUnitVectors, writeFaissFlatIndex } from './faiss-index.writer';
import { writeSyntheticImageBindCheckpoint } from './imagebind-checkpoint.writer';
import { writeSentencePieceModel, type SentencePieceModelSummary } from './sentencepiece-model.writer';

/**
 * A complete set of tiny random-weight checkpoints in the official file formats (MODEL_SPEC §6.1),
 * generated here rather than copied: `imagebind_w3D.pth` + its `imagebind_config.json`, the adapter
 * `7B.pth`, `llama/7B/{consolidated.00.pth, params.json}`, `llama/tokenizer.model` and `knn.index`.
 * `ibllm models build` turns them into a working model repository; the answers are meaningless.
 */

/**
 * The LLaMA side of a demo model: what `params.json` says (MODEL_SPEC §5.1; the rest of the
 * decoder, such as the RoPE base and the LoRA rank 16, is fixed by the official code) plus the
 * width of the bind blocks, which the builder reads from the adapter's shapes.
 */
export interface DemoLlamaShape {
  readonly dim: number;
  readonly nHeads: number;
  readonly nLayers: number;
  readonly multipleOf: number;
  /** params.json `norm_eps`: every decoder RMSNorm (the bind network's stays 1e-6, MODEL_SPEC §4). */
  readonly normEps: number;
  /** Hidden width of each bind block (officially 16384 = 4·4096). */
  readonly bindHidden: number;
}

/** The golden tiny-a LLaMA shape, which `ibllm models demo` writes by default. */
export const DEMO_LLAMA_SHAPE: DemoLlamaShape = {
  dim: 64,
  nHeads: 4,
  nLayers: 2,
  multipleOf: 32,
  normEps: 1e-6,
  bindHidden: 256,
};

/**
 * What a demo model may change from the default tiny shapes: only what the official formats let
 * vary (params.json; ImageBindModel's constructor arguments; Point-BERT's yaml model section).
 * LayerNorm and BatchNorm eps values are fixed by the official model code and are not settable.
 */
export interface DemoShape {
  readonly llama?: Partial<DemoLlamaShape>;
  readonly imagebind?: Partial<ImageBindModelArgs>;
  readonly point?: Partial<PointBertArgs>;
}

export interface DemoCheckpointOptions {
  readonly seed?: number;
  /** Shapes other than the default tiny ones (64 wide, 4 heads, 2 layers everywhere). */
  readonly shape?: DemoShape;
  /** SentencePiece pieces = LLaMA vocabulary rows (default 512). */
  readonly vocabSize?: number;
  /** Visual-cache vectors (default 1024). */
  readonly knnCount?: number;
  readonly onProgress?: (message: string) => void;
}

export interface DemoCheckpoints {
  readonly dir: string;
  readonly imagebind: string;
  readonly imagebindConfig: string;
  readonly config: ImageBindConfig;
  readonly adapter: string;
  readonly llamaDir: string;
  readonly llamaType: string;
  readonly tokenizer: string;
  readonly tokenizerSummary: SentencePieceModelSummary;
  readonly knn: string;
  readonly language: SyntheticLanguagePlan;
  readonly files: readonly { readonly path: string; readonly bytes: number }[];
}

/** ImageBind's fixed embedding width (the knn vectors and the bind network input). */
const EMBED_DIM = 1024;

/**
 * Tiny ImageBind dimensions, in the JSON layout of the golden `imagebind_config.json`; `shape`
 * overrides single values (a `point.trans_dim` without `pc_projection_shape` gets [2·trans_dim, 512]).
 */
export function demoImageBindConfigJson(shape: DemoShape = {}): Record<string, unknown> {
  const blocks = { embed: 64, blocks: 2, heads: 4 };
  const json = {
    note:
      'Tiny random-weight ImageBind + Point-Bind written by `ibllm models demo`: ImageBindModel ' +
      'constructor arguments (imagebind) and Point-BERT model settings (point). Not a real model.',
    imagebind: {
      video_frames: 2,
      kernel_size: [2, 14, 14],
      audio_kernel_size: 16,
      audio_stride: 10,
      out_embed_dim: EMBED_DIM,
      vision_embed_dim: blocks.embed,
      vision_num_blocks: blocks.blocks,
      vision_num_heads: blocks.heads,
      audio_embed_dim: blocks.embed,
      audio_num_blocks: blocks.blocks,
      audio_num_heads: blocks.heads,
      audio_num_mel_bins: 128,
      audio_target_len: 204,
      audio_drop_path: 0.1,
      text_embed_dim: blocks.embed,
      text_num_blocks: blocks.blocks,
      text_num_heads: blocks.heads,
      depth_embed_dim: blocks.embed,
      depth_kernel_size: 16,
      depth_num_blocks: blocks.blocks,
      depth_num_heads: blocks.heads,
      depth_drop_path: 0.0,
      thermal_embed_dim: blocks.embed,
      thermal_kernel_size: 16,
      thermal_num_blocks: blocks.blocks,
      thermal_num_heads: blocks.heads,
      thermal_drop_path: 0.0,
      imu_embed_dim: blocks.embed,
      imu_kernel_size: 8,
      imu_num_blocks: blocks.blocks,
      imu_num_heads: blocks.heads,
      imu_drop_path: 0.7,
    },
    point: {
      trans_dim: blocks.embed,
      depth: blocks.blocks,
      num_heads: blocks.heads,
      encoder_dims: blocks.embed,
      group_size: 32,
      num_group: 512,
      drop_path_rate: 0.1,
      cls_dim: 40,
      npoints: 8192,
      pc_projection_shape: [2 * blocks.embed, 512],
      point_head_dim: 512,
      mini_pointnet_channels: [128, 256, 512, 512],
    },
  };
  const point: Record<string, unknown> = { ...json.point, ...shape.point };
  if (shape.point?.trans_dim !== undefined && shape.point.pc_projection_shape === undefined) {
    point['pc_projection_shape'] = [2 * shape.point.trans_dim, point['point_head_dim']];
  }
  return { ...json, imagebind: { ...json.imagebind, ...shape.imagebind }, point };
}

/**
 * Writes the demo checkpoints under `dir` (created if needed). The same seed writes the same files
 * (the tokenizer does not depend on it). Takes a few seconds and about 40 MB.
 */
export async function writeDemoCheckpoints(
  dir: string,
  options: DemoCheckpointOptions = {},
): Promise<DemoCheckpoints> {
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new Error(`seed must be a non-negative integer, got ${seed}`);
  const vocabSize = options.vocabSize ?? 512;
  const knnCount = options.knnCount ?? 1024;
  const say = options.onProgress ?? (() => undefined);
  mkdirSync(dir, { recursive: true });
  const files: { path: string; bytes: number }[] = [];

  const configJson = demoImageBindConfigJson(options.shape);
  const llama = { ...DEMO_LLAMA_SHAPE, ...options.shape?.llama };
  const config = parseImageBindConfig(configJson);
  const imagebindConfig = join(dir, 'imagebind_config.json');
  writeFileSync(imagebindConfig, `${JSON.stringify(configJson, null, 1)}\n`);
  files.push({ path: imagebindConfig, bytes: statSync(imagebindConfig).size });

  const imagebind = join(dir, 'imagebind_w3D.pth');
  say(`writing ${imagebind}`);
  const ib = await writeSyntheticImageBindCheckpoint(imagebind, { config, seed });
  files.push({ path: imagebind, bytes: ib.bytes });

  say('writing the adapter and LLaMA checkpoints');
  const language = await writeSyntheticLanguageCheckpoints(dir, {
    dim: llama.dim,
    nLayers: llama.nLayers,
    nHeads: llama.nHeads,
    multipleOf: llama.multipleOf,
    normEps: llama.normEps,
    vocabSize,
    // lora_rank = 16 is hard-coded in the official ModelArgs, whatever params.json says.
    loraRank: 16,
    bindHidden: llama.bindHidden,
    bindIn: EMBED_DIM,
    seed,
    onProgress: say,
  });
  files.push(...language.files.map((f) => ({ path: f.path, bytes: f.bytes })));
  files.push({ path: language.params, bytes: statSync(language.params).size });

  const tokenizer = join(language.llamaDir, 'tokenizer.model');
  say(`writing ${tokenizer}`);
  const tokenizerSummary = writeSentencePieceModel(tokenizer, { vocabSize });
  files.push({ path: tokenizer, bytes: statSync(tokenizer).size });

  const knn = join(dir, 'knn.index');
  say(`writing ${knn} (${knnCount} random unit vectors)`);
  const index = writeFaissFlatIndex(knn, randomUnitVectors(knnCount, EMBED_DIM, seed), EMBED_DIM, 'IxFI');
  files.push({ path: knn, bytes: index.bytes });

  return {
    dir,
    imagebind,
    imagebindConfig,
    config,
    adapter: language.adapter,
    llamaDir: language.llamaDir,
    llamaType: language.llamaType,
    tokenizer,
    tokenizerSummary,
    knn,
    language: language.plan,
    files,
  };
}
