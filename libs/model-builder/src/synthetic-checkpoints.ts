import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  shapeNumel,
  writeTorchCheckpoint,
  type DType,
  type StreamedTensor,
  type TorchValue,
} from '@imagebind-llm/checkpoint';
import { bindKeys, type BindConfig } from './bind.builder';
import {
  adapterLlamaKeys,
  ffnHiddenSize,
  llamaBaseKeys,
  type LlamaConfig,
  type LlamaParamsJson,
} from './llama.builder';

/**
 * Random-weight checkpoints in the official formats (MODEL_SPEC §6.1, §6.2): an adapter `7B.pth`
 * and a LLaMA directory, at any size up to the real 7B shapes. They exercise the readers, the
 * builder and the runtime end to end (sizes, memory, external data) where the real weights are not
 * available; the values mean nothing, but their scales keep activations finite and every term of
 * the model (biases, gates, LoRA) non-zero.
 */
export interface SyntheticLanguageOptions {
  readonly dim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly multipleOf: number;
  /** params.json `norm_eps`, the eps of every decoder RMSNorm (1e-6 in LLaMA-1 7B). */
  readonly normEps?: number;
  /** Rows of tok_embeddings / output (32000 for the LLaMA tokenizer; smaller is fine for builds). */
  readonly vocabSize: number;
  readonly loraRank: number;
  /** Hidden width of each bind block (16384 officially). */
  readonly bindHidden: number;
  /** ImageBind embedding width (1024). */
  readonly bindIn?: number;
  /** Rows of prefix_query (32 officially, whatever the number of layers). */
  readonly queryLayer?: number;
  /** The `legacy_bridge` bind network: LayerNorm with bias and biased f1/f2/f3 (MODEL_SPEC §4). */
  readonly legacyBind?: boolean;
  readonly seed: number;
  /** dtype of consolidated.00.pth (officially float16). */
  readonly baseDtype?: 'float16' | 'bfloat16' | 'float32';
  /** Folder under `dir/llama` (`7B`, or `7B_chinese`). */
  readonly llamaType?: string;
  readonly onProgress?: (message: string) => void;
}

/** How one tensor's values are drawn. */
export type SyntheticInit =
  | { readonly kind: 'normal'; readonly mean: number; readonly std: number }
  | { readonly kind: 'rope-freqs'; readonly headDim: number };

export interface SyntheticTensorPlan {
  readonly key: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly init: SyntheticInit;
}

export interface SyntheticLanguagePlan {
  readonly llama: LlamaConfig;
  readonly bind: BindConfig;
  readonly params: LlamaParamsJson;
  /** `7B.pth['model']`, in the official module order. */
  readonly adapter: readonly SyntheticTensorPlan[];
  /** `consolidated.00.pth`, keys without prefix, with `rope.freqs`. */
  readonly base: readonly SyntheticTensorPlan[];
}

export interface SyntheticLanguageCheckpoints {
  readonly plan: SyntheticLanguagePlan;
  /** `dir/7B.pth` */
  readonly adapter: string;
  /** `dir/llama` (copy a tokenizer.model here before building). */
  readonly llamaDir: string;
  readonly llamaType: string;
  /** `dir/llama/<type>/consolidated.00.pth` */
  readonly base: string;
  /** `dir/llama/<type>/params.json` */
  readonly params: string;
  readonly files: readonly { readonly path: string; readonly bytes: number; readonly tensors: number }[];
}

const DEFAULT_NORM_EPS = 1e-6;
/** Scales: biases, gates and LoRA B are small but never zero, so a dropped term shows. */
const BIAS_STD = 0.05;
const GATE_STD = 0.25;
const NORM_JITTER = 0.05;
const LORA_B_STD = 0.1;

function normal(std: number, mean = 0): SyntheticInit {
  return { kind: 'normal', mean, std };
}

/** Values for a key of the official checkpoints, by what the parameter is. */
function initFor(key: string, shape: readonly number[]): SyntheticInit {
  const fanIn = shape[shape.length - 1] ?? 1;
  if (key.endsWith('.gate')) return normal(GATE_STD);
  if (key.endsWith('.bias')) return normal(BIAS_STD);
  if (/norm(_\d+)?\.weight$/.test(key)) return normal(NORM_JITTER, 1);
  // LoRA: A like a linear layer, B (zero at training start) small, so W + BA stays close to W.
  if (/lora_w\w+_l2\.weight$/.test(key)) return normal(LORA_B_STD / Math.sqrt(fanIn));
  // nn.Embedding initialises N(0, 1).
  if (key.endsWith('tok_embeddings.weight') || key === 'prefix_query.weight') return normal(1);
  return normal(1 / Math.sqrt(fanIn));
}

/** What {@link writeSyntheticLanguageCheckpoints} writes, without writing it. */
export function planSyntheticLanguageCheckpoints(options: SyntheticLanguageOptions): SyntheticLanguagePlan {
  const { dim, nLayers, nHeads, multipleOf, vocabSize, loraRank, bindHidden } = options;
  for (const [name, value] of Object.entries({
    dim,
    nLayers,
    nHeads,
    multipleOf,
    vocabSize,
    loraRank,
    bindHidden,
  })) {
    if (!Number.isSafeInteger(value) || value <= 0)
      throw new Error(`${name} must be a positive integer, got ${value}`);
  }
  if (dim % nHeads !== 0 || (dim / nHeads) % 2 !== 0) {
    throw new Error(`dim ${dim} must split into ${nHeads} heads of even width`);
  }
  const normEps = options.normEps ?? DEFAULT_NORM_EPS;
  if (!(normEps > 0 && Number.isFinite(normEps))) throw new Error(`normEps must be positive, got ${normEps}`);
  const llama: LlamaConfig = {
    dim,
    nLayers,
    nHeads,
    headDim: dim / nHeads,
    vocabSize,
    ffnHidden: ffnHiddenSize(dim, multipleOf),
    normEps,
    maxSeqLen: 512,
    ropeTableLen: 1024,
    ropeTheta: 10000,
    loraRank,
    queryLayer: options.queryLayer ?? 32,
  };
  const bind: BindConfig = {
    inDim: options.bindIn ?? 1024,
    dim,
    hidden: bindHidden,
    blocks: 3,
    legacy: options.legacyBind === true,
  };
  // The builder's own key tables (what it validates against), in the module order of the
  // official state_dict: bind network, layers, final norm, prefix_query.
  const llamaKeys = [...adapterLlamaKeys(llama)];
  const tail = new Set(['llama.norm.weight', 'prefix_query.weight']);
  const adapterKeys = [
    ...bindKeys(bind),
    ...llamaKeys.filter(([k]) => !tail.has(k)),
    ...llamaKeys.filter(([k]) => tail.has(k)),
  ];
  const adapter = adapterKeys.map(([key, shape]) => ({
    key,
    shape,
    // Trainable tensors are float32; the gate stayed float16 (MODEL_SPEC §6.2).
    dtype: key.endsWith('.gate') ? ('float16' as const) : ('float32' as const),
    init: initFor(key, shape),
  }));
  const baseDtype = options.baseDtype ?? 'float16';
  const base: SyntheticTensorPlan[] = [...llamaBaseKeys(llama)].map(([key, shape]) => ({
    key,
    shape,
    dtype: baseDtype,
    init: initFor(key, shape),
  }));
  base.push({
    key: 'rope.freqs',
    shape: [llama.headDim / 2],
    dtype: baseDtype,
    init: { kind: 'rope-freqs', headDim: llama.headDim },
  });
  const params: LlamaParamsJson = {
    dim,
    multiple_of: multipleOf,
    n_heads: nHeads,
    n_layers: nLayers,
    norm_eps: normEps,
    vocab_size: -1,
  };
  return { llama, bind, params, adapter, base };
}

/**
 * Writes `dir/7B.pth` (`{'model': adapter state dict}`), `dir/llama/<type>/consolidated.00.pth`
 * and `dir/llama/<type>/params.json` with seeded random weights. Each tensor is generated and
 * written a chunk at a time, so even the full 7B shapes need only a few MB of memory. The same
 * seed gives the same random values on every machine (integer PRNG, exact IEEE arithmetic).
 */
export async function writeSyntheticLanguageCheckpoints(
  dir: string,
  options: SyntheticLanguageOptions,
): Promise<SyntheticLanguageCheckpoints> {
  const plan = planSyntheticLanguageCheckpoints(options);
  const say = options.onProgress ?? (() => undefined);
  const llamaType = options.llamaType ?? '7B';
  const llamaDir = join(dir, 'llama');
  const typeDir = join(llamaDir, llamaType);
  mkdirSync(typeDir, { recursive: true });
  const adapter = join(dir, '7B.pth');
  const base = join(typeDir, 'consolidated.00.pth');
  const params = join(typeDir, 'params.json');
  const tensors = (entries: readonly SyntheticTensorPlan[], prefix: string): Map<string, TorchValue> =>
    new Map(entries.map((t) => [t.key, syntheticTensor(t, options.seed, prefix)]));
  const files: { path: string; bytes: number; tensors: number }[] = [];

  say(`writing ${adapter} (${plan.adapter.length} tensors)`);
  const a = await writeTorchCheckpoint(
    adapter,
    { model: tensors(plan.adapter, 'adapter:') },
    { archiveName: '7B' },
  );
  files.push({ path: adapter, bytes: a.bytes, tensors: a.tensors });
  say(`writing ${base} (${plan.base.length} tensors)`);
  const b = await writeTorchCheckpoint(base, tensors(plan.base, 'base:'), { archiveName: 'consolidated.00' });
  files.push({ path: base, bytes: b.bytes, tensors: b.tensors });
  writeFileSync(params, `${JSON.stringify(plan.params)}\n`);
  return { plan, adapter, llamaDir, llamaType, base, params, files };
}

// ---------------------------------------------------------------------------------------------
// Values

/** Elements generated per chunk: 4 MB of float32. */
const CHUNK = 1 << 20;

/** A tensor generated chunk by chunk when the writer reaches it; values depend on seed and key only. */
export function syntheticTensor(t: SyntheticTensorPlan, seed: number, salt = ''): StreamedTensor {
  const numel = shapeNumel(t.shape);
  return {
    dtype: t.dtype,
    shape: t.shape,
    write: async (sink) => {
      const values = new Float32Array(Math.min(CHUNK, numel));
      const bits = t.dtype === 'float32' ? undefined : new Uint16Array(values.length);
      const convert = t.dtype === 'bfloat16' ? float32ToBfloat16Bits : float32ToFloat16Bits;
      const draw = valueSource(t.init, `${seed}:${salt}${t.key}`);
      for (let start = 0; start < numel; start += values.length) {
        const n = Math.min(values.length, numel - start);
        const chunk = values.subarray(0, n);
        draw(chunk, start);
        if (bits === undefined) {
          await sink.write(chunk);
        } else {
          for (let i = 0; i < n; i++) bits[i] = convert(chunk[i]!);
          await sink.write(bits.subarray(0, n));
        }
      }
    },
  };
}

function valueSource(init: SyntheticInit, streamName: string): (out: Float32Array, start: number) => void {
  if (init.kind === 'rope-freqs') {
    // What LLaMA's checkpoints hold: 1 / 10000^(2i/head_dim) (MODEL_SPEC §5.3).
    return (out, start) => {
      for (let i = 0; i < out.length; i++) out[i] = 1 / 10000 ** ((2 * (start + i)) / init.headDim);
    };
  }
  const rng = new Xoshiro128(streamName);
  const { mean, std } = init;
  return (out) => {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * rng.normalish();
  };
}

/** 1 / std of a sum of four uniform 16-bit integers. */
const IRWIN_HALL_SCALE = 1 / Math.sqrt((4 * (65536 * 65536 - 1)) / 12);
const IRWIN_HALL_MEAN = 2 * 65535;

/** xoshiro128** seeded through splitmix32 from a string: fast, 32-bit integer only, reproducible. */
class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(name: string) {
    // FNV-1a over the UTF-16 code units, then splitmix32 to spread it over the 128-bit state.
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    let x = h | 0;
    const splitmix = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let t = x ^ (x >>> 16);
      t = Math.imul(t, 0x21f0aaad);
      t ^= t >>> 15;
      t = Math.imul(t, 0x735a2d97);
      return (t ^ (t >>> 15)) | 0;
    };
    this.s0 = splitmix();
    this.s1 = splitmix();
    this.s2 = splitmix();
    this.s3 = splitmix();
  }

  next(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /**
   * Approximately standard normal: the centred sum of four uniform 16-bit draws (Irwin–Hall),
   * bounded by ±3.46. Exact integer arithmetic, so identical on every platform.
   */
  normalish(): number {
    const a = this.next();
    const b = this.next();
    const sum = (a & 0xffff) + (a >>> 16) + (b & 0xffff) + (b >>> 16);
    return (sum - IRWIN_HALL_MEAN) * IRWIN_HALL_SCALE;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
