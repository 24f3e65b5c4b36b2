import { mkdirSync } from 'node:fs';
import { basename, dirname, extname } from 'node:path';
import {
  planTorchCheckpoint,
  shapeNumel,
  writeTorchCheckpoint,
  type RawTensor,
  type TorchCheckpointWriteResult,
  type TorchValue,
} from '@imagebind-llm/checkpoint';
import {
  checkImageBindConfig,
  defaultImageBindConfig,
  IMAGEBIND_CONSTANTS,
  imageBindKeys,
  type ImageBindConfig,
} from '../imagebind';
import { syntheticTensor } from '../synthetic-checkpoints';

/**
 * A random-weight `imagebind_w3D.pth` (MODEL_SPEC §3.8): a plain state dict (OrderedDict) with
 * exactly the keys and shapes of `imageBindKeys(config)`, so the strict load accepts it. Values
 * are drawn per key from a seeded generator at scales that keep every encoder's activations
 * finite; the fixed buffers hold what the official module puts there (the causal text mask, the
 * logit scales), and the BatchNorm statistics are plausible (positive variances).
 */

/** Fixed log logit scales of the postprocessors (MODEL_SPEC §3.8: buffers ln 20, ln 5, ln 10, ln 5, 0). */
const FIXED_LOG_LOGIT_SCALE: Readonly<Record<string, number>> = {
  audio: Math.log(20),
  depth: Math.log(5),
  thermal: Math.log(10),
  imu: Math.log(5),
  point: 0,
};
/** The text scale is a learnt parameter, initialised to ln(1 / 0.07) as in CLIP. */
const TEXT_LOG_LOGIT_SCALE = Math.log(1 / 0.07);
const BIAS_STD = 0.05;
const NORM_JITTER = 0.05;
const TOKEN_STD = 0.5;
const POS_EMBED_STD = 0.2;
/** What the counters of a trained BatchNorm hold (any non-negative count is valid). */
const NUM_BATCHES_TRACKED = 2500n;

function float32Scalar(value: number): RawTensor {
  return { dtype: 'float32', shape: [], data: new Uint8Array(Float32Array.of(value).buffer) };
}

function int64Scalar(value: bigint): RawTensor {
  return { dtype: 'int64', shape: [], data: new Uint8Array(BigInt64Array.of(value).buffer) };
}

/** CLIP's causal attention mask: 0 on and below the diagonal, −inf above. */
function causalMask(n: number): RawTensor {
  const values = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) values[i * n + j] = -Infinity;
  return { dtype: 'float32', shape: [n, n], data: new Uint8Array(values.buffer) };
}

/** Mean and standard deviation of a key's random values, by what the parameter is. */
function normalInit(key: string, shape: readonly number[]): { mean: number; std: number } {
  const last = key.slice(key.lastIndexOf('.') + 1);
  // 1-D weights in this model are all LayerNorm / BatchNorm scales.
  if (last === 'weight' && shape.length === 1) return { mean: 1, std: NORM_JITTER };
  if (last === 'bias' || last === 'in_proj_bias') return { mean: 0, std: BIAS_STD };
  if (last === 'running_mean') return { mean: 0, std: BIAS_STD };
  // Irwin–Hall draws stay within ±3.46 std, so 1 ± 0.25·3.46 is always positive.
  if (last === 'running_var') return { mean: 1, std: 0.25 };
  if (last === 'cls_token' || last === 'cls_pos' || last === 'bias_k' || last === 'bias_v') {
    return { mean: 0, std: TOKEN_STD };
  }
  if (last === 'pos_embed') return { mean: 0, std: POS_EMBED_STD };
  if (key.endsWith('token_embedding.weight')) return { mean: 0, std: 1 };
  // pc_projection is applied as x @ W ([in, out]); every other matrix as W @ x ([out, in, ...]).
  const fanIn =
    key === 'point_trunk.pc_projection' ? (shape[0] ?? 1) : shape.slice(1).reduce((n, d) => n * d, 1);
  return { mean: 0, std: 1 / Math.sqrt(Math.max(1, fanIn)) };
}

/** The value of one key of the ImageBind state dict. */
function imageBindTensor(key: string, shape: readonly number[], seed: number): TorchValue {
  if (key === 'modality_preprocessors.text.mask') return causalMask(IMAGEBIND_CONSTANTS.textContextLength);
  if (key.endsWith('.num_batches_tracked')) return int64Scalar(NUM_BATCHES_TRACKED);
  const logit = /^modality_postprocessors\.(\w+)\.1\.log_logit_scale$/.exec(key);
  if (logit !== null) {
    const modality = logit[1]!;
    return float32Scalar(modality === 'text' ? TEXT_LOG_LOGIT_SCALE : (FIXED_LOG_LOGIT_SCALE[modality] ?? 0));
  }
  const { mean, std } = normalInit(key, shape);
  return syntheticTensor(
    { key, dtype: 'float32', shape, init: { kind: 'normal', mean, std } },
    seed,
    'imagebind:',
  );
}

export interface SyntheticImageBindOptions {
  /** Same seed, same values (and, at the same file name, the same bytes). */
  readonly seed: number;
  /**
   * The dimensions: imagebind_huge + Point-Bind (`defaultImageBindConfig()`, ≈ 1.22 B parameters,
   * 4.9 GB) when absent. A dry run passes a smaller one, e.g. the huge widths with fewer blocks.
   */
  readonly config?: ImageBindConfig;
  /** A line when the write starts, then about every 5 % of the bytes. */
  readonly onProgress?: (message: string) => void;
}

export interface SyntheticImageBindPlan {
  readonly config: ImageBindConfig;
  /** State-dict keys (1476 for imagebind_huge). */
  readonly tensors: number;
  /** Elements of all tensors (1,223,565,617 for imagebind_huge). */
  readonly parameters: number;
  /** Bytes of the tensor data (float32, the two BatchNorm counters int64). */
  readonly tensorBytes: number;
  /** The exact size of the file at `path` (the zip's top folder is the file's stem). */
  readonly bytes: number;
}

export interface SyntheticImageBindResult extends TorchCheckpointWriteResult {
  readonly path: string;
  readonly parameters: number;
}

function stateDict(config: ImageBindConfig, seed: number): Map<string, TorchValue> {
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  const dict = new Map<string, TorchValue>();
  for (const [key, shape] of imageBindKeys(config)) dict.set(key, imageBindTensor(key, shape, seed));
  return dict;
}

const archiveNameOf = (path: string): string => basename(path, extname(path)) || 'archive';

/**
 * The size of what {@link writeSyntheticImageBindCheckpoint} writes, without generating anything:
 * callers print the disk space needed before a multi-GB write. `path` only names the zip's top
 * folder (`imagebind_w3D.pth` when absent); the seed does not change any size.
 */
export function planSyntheticImageBindCheckpoint(
  options: { readonly config?: ImageBindConfig; readonly seed?: number; readonly path?: string } = {},
): SyntheticImageBindPlan {
  const config = options.config ?? defaultImageBindConfig();
  checkImageBindConfig(config);
  const dict = stateDict(config, options.seed ?? 0);
  let parameters = 0;
  for (const shape of imageBindKeys(config).values()) parameters += shapeNumel(shape);
  const plan = planTorchCheckpoint(dict, { archiveName: archiveNameOf(options.path ?? 'imagebind_w3D.pth') });
  return { config, tensors: dict.size, parameters, tensorBytes: plan.tensorBytes, bytes: plan.bytes };
}

/**
 * Writes `path` as `torch.save(model.state_dict())` of ImageBind + Point-Bind (MODEL_SPEC §3.8)
 * with seeded random values, at imagebind_huge's shapes unless `config` says otherwise. Tensors are
 * generated a 4 MB chunk at a time while the file is written, so memory stays at a few MB whatever
 * the size; the file appears under its name only once complete.
 */
export async function writeSyntheticImageBindCheckpoint(
  path: string,
  options: SyntheticImageBindOptions,
): Promise<SyntheticImageBindResult> {
  const plan = planSyntheticImageBindCheckpoint({ ...options, path });
  const say = options.onProgress ?? (() => undefined);
  const gb = (n: number): string => `${(n / 1e9).toFixed(2)} GB`;
  say(`writing ${path}: ${plan.tensors} tensors, ${plan.parameters} parameters, ${gb(plan.bytes)}`);
  mkdirSync(dirname(path), { recursive: true });
  const step = Math.max(1, plan.tensorBytes / 20);
  let done = 0;
  let count = 0;
  let next = step;
  const result = await writeTorchCheckpoint(path, stateDict(plan.config, options.seed), {
    archiveName: archiveNameOf(path),
    onTensor: (_key, byteLength) => {
      done += byteLength;
      count++;
      if (done >= next || count === plan.tensors) {
        say(`${basename(path)}: ${gb(done)} of ${gb(plan.tensorBytes)} (${count}/${plan.tensors} tensors)`);
        while (next <= done) next += step;
      }
    },
  });
  return { ...result, path, parameters: plan.parameters };
}
