import { mkdirSync } from 'node:fs';
import { basename, dirname, extname } from 'node:path';
import {
  writeTorchCheckpoint,
  type RawTensor,
  type TorchCheckpointWriteResult,
  type TorchValue,
} from '@imagebind-llm/checkpoint';
import { IMAGEBIND_CONSTANTS, imageBindKeys, type ImageBindConfig } from '../imagebind';
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

/**
 * Writes `path` as `torch.save(model.state_dict())` of ImageBind + Point-Bind with `config`'s
 * dimensions and seeded random values (same seed, same file). Tensors are produced while the file
 * is written, so even imagebind_huge's shapes need little memory.
 */
export async function writeSyntheticImageBindCheckpoint(
  path: string,
  config: ImageBindConfig,
  seed: number,
): Promise<TorchCheckpointWriteResult> {
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  const stateDict = new Map<string, TorchValue>();
  for (const [key, shape] of imageBindKeys(config)) stateDict.set(key, imageBindTensor(key, shape, seed));
  mkdirSync(dirname(path), { recursive: true });
  const archiveName = basename(path, extname(path)) || 'archive';
  return writeTorchCheckpoint(path, stateDict, { archiveName });
}
