import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseImageBindConfig, type ImageBindConfig } from '../imagebind';
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

export interface DemoCheckpointOptions {
  readonly seed?: number;
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

/** Tiny ImageBind dimensions, in the JSON layout of the golden `imagebind_config.json`. */
export function demoImageBindConfigJson(): Record<string, unknown> {
  const blocks = { embed: 64, blocks: 2, heads: 4 };
  return {
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

  const configJson = demoImageBindConfigJson();
  const config = parseImageBindConfig(configJson);
  const imagebindConfig = join(dir, 'imagebind_config.json');
  writeFileSync(imagebindConfig, `${JSON.stringify(configJson, null, 1)}\n`);
  files.push({ path: imagebindConfig, bytes: statSync(imagebindConfig).size });

  const imagebind = join(dir, 'imagebind_w3D.pth');
  say(`writing ${imagebind}`);
  const ib = await writeSyntheticImageBindCheckpoint(imagebind, config, seed);
  files.push({ path: imagebind, bytes: ib.bytes });

  say('writing the adapter and LLaMA checkpoints');
  const language = await writeSyntheticLanguageCheckpoints(dir, {
    dim: 64,
    nLayers: 2,
    nHeads: 4,
    multipleOf: 32,
    vocabSize,
    loraRank: 16,
    bindHidden: 256,
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
