// A deliberately plain second implementation of ImageBind-LLM's forward pass, in float64, straight
// from the official checkpoint tensors and MODEL_SPEC (§3 encoders, §4 bind network, §5 decoder
// with the literal per-head visual injection). It shares no code with the graph builders or the
// engine: loops over rows and columns, no fused or merged weights, no §7 offset algebra. Slow, but
// the test shapes are tiny. Test-only.
import { openTorchCheckpoint, toFloat32 } from '@imagebind-llm/checkpoint';

export type Vec = Float64Array;

/** Every tensor of a checkpoint (or of one sub-dict), widened to float64. */
export class Tensors {
  private constructor(private readonly values: Map<string, { shape: readonly number[]; data: Vec }>) {}

  static async load(path: string, path2: readonly string[] = []): Promise<Tensors> {
    const ckpt = await openTorchCheckpoint(path);
    try {
      const values = new Map<string, { shape: readonly number[]; data: Vec }>();
      for (const [key, entry] of ckpt.stateDict(path2)) {
        if (entry.dtype === 'int64') continue;
        values.set(key, { shape: entry.shape, data: Float64Array.from(toFloat32(await entry.read())) });
      }
      return new Tensors(values);
    } finally {
      await ckpt.close();
    }
  }

  /** Later sources override earlier ones (the adapter's norms override LLaMA's, MODEL_SPEC §6.2). */
  static merge(...sources: readonly [Tensors, string][]): Tensors {
    const values = new Map<string, { shape: readonly number[]; data: Vec }>();
    for (const [t, prefix] of sources) for (const [k, v] of t.values) values.set(`${prefix}${k}`, v);
    return new Tensors(values);
  }

  has(key: string): boolean {
    return this.values.has(key);
  }

  get(key: string): Vec {
    const v = this.values.get(key);
    if (v === undefined) throw new Error(`reference: no tensor ${key}`);
    return v.data;
  }

  shape(key: string): readonly number[] {
    const v = this.values.get(key);
    if (v === undefined) throw new Error(`reference: no tensor ${key}`);
    return v.shape;
  }
}

// ---------------------------------------------------------------------------------------------
// Elementary operations on row-major [rows, cols] matrices

/** y = x·Wᵀ (+ b): x [n, inn], W [out, inn] as PyTorch stores Linear weights. */
export function linear(x: Vec, n: number, inn: number, w: Vec, out: number, b?: Vec): Vec {
  const y = new Float64Array(n * out);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < out; o++) {
      let s = b === undefined ? 0 : b[o]!;
      for (let i = 0; i < inn; i++) s += x[r * inn + i]! * w[o * inn + i]!;
      y[r * out + o] = s;
    }
  }
  return y;
}

export function layerNorm(x: Vec, n: number, d: number, gamma: Vec, beta: Vec, eps: number): Vec {
  const y = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i]!;
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = (x[r * d + i]! - mean) * inv * gamma[i]! + beta[i]!;
  }
  return y;
}

export function rmsNorm(x: Vec, n: number, d: number, gamma: Vec, eps: number): Vec {
  const y = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    let ms = 0;
    for (let i = 0; i < d; i++) ms += x[r * d + i]! ** 2;
    const inv = 1 / Math.sqrt(ms / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = x[r * d + i]! * inv * gamma[i]!;
  }
  return y;
}

/** erf to float64 accuracy: Maclaurin series for |z| ≤ 3, the erfc continued fraction beyond. */
export function erf(z: number): number {
  const a = Math.abs(z);
  if (a <= 3) {
    let term = a;
    let sum = a;
    for (let k = 1; k < 80; k++) {
      term *= (-a * a) / k;
      sum += term / (2 * k + 1);
    }
    return Math.sign(z) * ((2 / Math.sqrt(Math.PI)) * sum);
  }
  // erfc(a) = exp(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + …)))))
  let f = a;
  for (let k = 60; k >= 1; k--) f = a + k / 2 / f;
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(z) * (1 - erfc);
}

const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));
const silu = (x: number): number => x / (1 + Math.exp(-x));

function mapInPlace(x: Vec, f: (v: number) => number): Vec {
  for (let i = 0; i < x.length; i++) x[i] = f(x[i]!);
  return x;
}

function add(a: Vec, b: Vec): Vec {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i]! + b[i]!;
  return y;
}

/** x / max(‖x‖, 1e-12), as torch.nn.functional.normalize. */
export function normalize(x: Vec): Vec {
  let s = 0;
  for (const v of x) s += v * v;
  const n = Math.max(Math.sqrt(s), 1e-12);
  return x.map((v) => v / n);
}

function softmaxInPlace(row: Vec): void {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    row[i] = row[i] === -Infinity ? 0 : Math.exp(row[i]! - max);
    sum += row[i]!;
  }
  for (let i = 0; i < row.length; i++) row[i] = row[i]! / sum;
}

/**
 * Multi-head attention over already projected q [n, d], k and v [m, d]: per head h of width d/H,
 * softmax(q_h·k_hᵀ/√(d/H) + mask) · v_h, heads concatenated. `masked(i, j)` hides key j from query i.
 */
function attention(
  q: Vec,
  k: Vec,
  v: Vec,
  n: number,
  m: number,
  d: number,
  heads: number,
  masked?: (i: number, j: number) => boolean,
): Vec {
  const hd = d / heads;
  const o = new Float64Array(n * d);
  const scores = new Float64Array(m);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        if (masked?.(i, j) === true) {
          scores[j] = -Infinity;
          continue;
        }
        let s = 0;
        for (let c = 0; c < hd; c++) s += q[i * d + h * hd + c]! * k[j * d + h * hd + c]!;
        scores[j] = s / Math.sqrt(hd);
      }
      softmaxInPlace(scores);
      for (let j = 0; j < m; j++) {
        const p = scores[j]!;
        if (p === 0) continue;
        for (let c = 0; c < hd; c++)
          o[i * d + h * hd + c] = o[i * d + h * hd + c]! + p * v[j * d + h * hd + c]!;
      }
    }
  }
  return o;
}

function rows(x: Vec, d: number, from: number, to: number): Vec {
  return x.slice(from * d, to * d);
}

// ---------------------------------------------------------------------------------------------
// ImageBind encoders (MODEL_SPEC §3)

/** MODEL_SPEC §3.1: eps 1e-6 everywhere in the blocks; §3.3: the stems' LayerNorm keeps 1e-5. */
const BLOCK_EPS = 1e-6;
const STEM_EPS = 1e-5;
/** Point-BERT's LayerNorms and BatchNorms (§3.7). */
const POINT_EPS = 1e-5;

/** An ImageBind `BlockWithMasking` over nn.MultiheadAttention (§3.1), on x [n, d]. */
function imageBindBlock(
  t: Tensors,
  p: string,
  x: Vec,
  n: number,
  d: number,
  heads: number,
  opts: { biasKv?: boolean; causal?: boolean } = {},
): Vec {
  const h = layerNorm(x, n, d, t.get(`${p}.norm_1.weight`), t.get(`${p}.norm_1.bias`), BLOCK_EPS);
  const qkv = linear(h, n, d, t.get(`${p}.attn.in_proj_weight`), 3 * d, t.get(`${p}.attn.in_proj_bias`));
  const q = new Float64Array(n * d);
  let k = new Float64Array(n * d);
  let v = new Float64Array(n * d);
  for (let r = 0; r < n; r++) {
    q.set(qkv.subarray(r * 3 * d, r * 3 * d + d), r * d);
    k.set(qkv.subarray(r * 3 * d + d, r * 3 * d + 2 * d), r * d);
    v.set(qkv.subarray(r * 3 * d + 2 * d, r * 3 * d + 3 * d), r * d);
  }
  let m = n;
  if (opts.biasKv === true) {
    // add_bias_kv: one learned key and value appended after the sequence.
    const k2 = new Float64Array((n + 1) * d);
    k2.set(k);
    k2.set(t.get(`${p}.attn.bias_k`), n * d);
    const v2 = new Float64Array((n + 1) * d);
    v2.set(v);
    v2.set(t.get(`${p}.attn.bias_v`), n * d);
    k = k2;
    v = v2;
    m = n + 1;
  }
  const o = attention(q, k, v, n, m, d, heads, opts.causal === true ? (i, j) => j > i : undefined);
  const attn = linear(o, n, d, t.get(`${p}.attn.out_proj.weight`), d, t.get(`${p}.attn.out_proj.bias`));
  const x1 = add(x, attn);
  const h2 = layerNorm(x1, n, d, t.get(`${p}.norm_2.weight`), t.get(`${p}.norm_2.bias`), BLOCK_EPS);
  const f1 = mapInPlace(
    linear(h2, n, d, t.get(`${p}.mlp.fc1.weight`), 4 * d, t.get(`${p}.mlp.fc1.bias`)),
    gelu,
  );
  return add(x1, linear(f1, n, 4 * d, t.get(`${p}.mlp.fc2.weight`), d, t.get(`${p}.mlp.fc2.bias`)));
}

export interface EncoderDims {
  readonly dim: number;
  readonly heads: number;
  readonly blocks: number;
}

/** Head LayerNorm on token 0 → Linear (no bias), postprocessor normalise × min(exp(s), 100). */
function headOf(t: Tensors, modality: string, cls: Vec, d: number, lnKey: string, projKey: string): Vec {
  const out = t.shape(projKey)[0]!;
  const ln = layerNorm(cls, 1, d, t.get(`${lnKey}.weight`), t.get(`${lnKey}.bias`), BLOCK_EPS);
  const e = normalize(linear(ln, 1, d, t.get(projKey), out));
  if (modality === 'vision') return e;
  const scale = Math.min(Math.exp(t.get(`modality_postprocessors.${modality}.1.log_logit_scale`)[0]!), 100);
  return e.map((x) => x * scale);
}

/**
 * Vision (§3.2) on one clip [3, frames, 224, 224] (an image is the same frame repeated): Conv3d
 * patches, CLS + positions, ln_pre, blocks, head, normalise.
 */
export function visionClip(
  t: Tensors,
  dims: EncoderDims,
  clip: Float32Array,
  kernel: readonly number[],
): Vec {
  const [kt, kh, kw] = kernel as [number, number, number];
  const d = dims.dim;
  const size = 224;
  const gh = size / kh;
  const gw = size / kw;
  const w = t.get('modality_preprocessors.vision.rgbt_stem.proj.1.weight');
  const n = 1 + gh * gw;
  const x = new Float64Array(n * d);
  x.set(t.get('modality_preprocessors.vision.cls_token'), 0);
  for (let r = 0; r < gh; r++) {
    for (let c = 0; c < gw; c++) {
      const tok = 1 + r * gw + c;
      for (let o = 0; o < d; o++) {
        let s = 0;
        for (let ch = 0; ch < 3; ch++) {
          for (let f = 0; f < kt; f++) {
            for (let i = 0; i < kh; i++) {
              for (let j = 0; j < kw; j++) {
                const px = clip[((ch * kt + f) * size + r * kh + i) * size + c * kw + j]!;
                s += px * w[(((o * 3 + ch) * kt + f) * kh + i) * kw + j]!;
              }
            }
          }
        }
        x[tok * d + o] = s;
      }
    }
  }
  let h = add(x, t.get('modality_preprocessors.vision.pos_embedding_helper.pos_embed'));
  const pre = 'modality_trunks.vision.pre_transformer_layer.0';
  h = layerNorm(h, n, d, t.get(`${pre}.weight`), t.get(`${pre}.bias`), BLOCK_EPS);
  for (let b = 0; b < dims.blocks; b++)
    h = imageBindBlock(t, `modality_trunks.vision.blocks.${b}`, h, n, d, dims.heads);
  return headOf(
    t,
    'vision',
    rows(h, d, 0, 1),
    d,
    'modality_heads.vision.0',
    'modality_heads.vision.2.weight',
  );
}

/** An image [3, 224, 224] as the 2-frame clip PadIm2Video makes of it. */
export function imageAsClip(image: Float32Array, frames: number): Float32Array {
  const plane = 224 * 224;
  const clip = new Float32Array(3 * frames * plane);
  for (let ch = 0; ch < 3; ch++) {
    for (let f = 0; f < frames; f++)
      clip.set(image.subarray(ch * plane, (ch + 1) * plane), (ch * frames + f) * plane);
  }
  return clip;
}

/** Audio (§3.3) on one clip [1, mel, frames]: Conv2d stem, LN 1e-5, CLS + positions, bias_kv blocks. */
export function audioClip(
  t: Tensors,
  dims: EncoderDims,
  clip: Float32Array,
  mel: number,
  frames: number,
  kernel: number,
  stride: number,
): Vec {
  const d = dims.dim;
  const gh = Math.floor((mel - kernel) / stride) + 1;
  const gw = Math.floor((frames - kernel) / stride) + 1;
  const w = t.get('modality_preprocessors.audio.rgbt_stem.proj.weight');
  const patches = new Float64Array(gh * gw * d);
  for (let r = 0; r < gh; r++) {
    for (let c = 0; c < gw; c++) {
      for (let o = 0; o < d; o++) {
        let s = 0;
        for (let i = 0; i < kernel; i++) {
          for (let j = 0; j < kernel; j++)
            s += clip[(r * stride + i) * frames + c * stride + j]! * w[(o * kernel + i) * kernel + j]!;
        }
        patches[(r * gw + c) * d + o] = s;
      }
    }
  }
  const stem = 'modality_preprocessors.audio.rgbt_stem.norm_layer';
  const normed = layerNorm(patches, gh * gw, d, t.get(`${stem}.weight`), t.get(`${stem}.bias`), STEM_EPS);
  const n = 1 + gh * gw;
  const x = new Float64Array(n * d);
  x.set(t.get('modality_preprocessors.audio.cls_token'), 0);
  x.set(normed, d);
  let h = add(x, t.get('modality_preprocessors.audio.pos_embedding_helper.pos_embed'));
  for (let b = 0; b < dims.blocks; b++) {
    h = imageBindBlock(t, `modality_trunks.audio.blocks.${b}`, h, n, d, dims.heads, { biasKv: true });
  }
  return headOf(t, 'audio', rows(h, d, 0, 1), d, 'modality_heads.audio.0', 'modality_heads.audio.2.weight');
}

/** Text (§3.4) on CLIP token ids [77]: causal blocks, pooled at argmax(ids), LN, Linear, scale. */
export function textEncoder(t: Tensors, dims: EncoderDims, ids: readonly number[]): Vec {
  const d = dims.dim;
  const n = ids.length;
  const emb = t.get('modality_preprocessors.text.token_embedding.weight');
  const x = new Float64Array(n * d);
  ids.forEach((id, i) => x.set(emb.subarray(id * d, (id + 1) * d), i * d));
  let h = add(x, t.get('modality_preprocessors.text.pos_embed'));
  for (let b = 0; b < dims.blocks; b++) {
    h = imageBindBlock(t, `modality_trunks.text.blocks.${b}`, h, n, d, dims.heads, { causal: true });
  }
  let at = 0;
  ids.forEach((id, i) => {
    if (id > ids[at]!) at = i;
  });
  return headOf(
    t,
    'text',
    rows(h, d, at, at + 1),
    d,
    'modality_heads.text.proj.0',
    'modality_heads.text.proj.1.weight',
  );
}

export interface PointDims extends EncoderDims {
  readonly encoderDims: number;
}

/** Eval BatchNorm over the channels of x [n, c]. */
function batchNorm(t: Tensors, p: string, x: Vec, n: number, c: number): Vec {
  const [g, b, mean, v] = ['weight', 'bias', 'running_mean', 'running_var'].map((k) => t.get(`${p}.${k}`));
  const y = new Float64Array(n * c);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < c; i++)
      y[r * c + i] = ((x[r * c + i]! - mean![i]!) / Math.sqrt(v![i]! + POINT_EPS)) * g![i]! + b![i]!;
  }
  return y;
}

/** A Conv1d with kernel 1 ([out, in, 1]) is a Linear over the points. */
function pointwise(t: Tensors, p: string, x: Vec, n: number, inn: number): Vec {
  const out = t.shape(`${p}.weight`)[0]!;
  return linear(x, n, inn, t.get(`${p}.weight`), out, t.get(`${p}.bias`));
}

function maxOverRows(x: Vec, n: number, c: number): Vec {
  const y = new Float64Array(c).fill(-Infinity);
  for (let r = 0; r < n; r++) for (let i = 0; i < c; i++) y[i] = Math.max(y[i]!, x[r * c + i]!);
  return y;
}

/**
 * Point-BERT + Point-Bind (§3.7) on grouped input: neighbourhoods [G, K, 3] (points minus their
 * centre) and centres [G, 3].
 */
export function pointEncoder(
  t: Tensors,
  dims: PointDims,
  neighborhood: Float32Array,
  center: Float32Array,
  numGroup: number,
  groupSize: number,
): Vec {
  const d = dims.dim;
  const e = 'point_trunk.point_encoder';
  const tokens = new Float64Array(numGroup * dims.encoderDims);
  for (let g = 0; g < numGroup; g++) {
    const pts = Float64Array.from(neighborhood.subarray(g * groupSize * 3, (g + 1) * groupSize * 3));
    let f = pointwise(t, `${e}.encoder.first_conv.0`, pts, groupSize, 3);
    const c0 = t.shape(`${e}.encoder.first_conv.0.weight`)[0]!;
    f = mapInPlace(batchNorm(t, `${e}.encoder.first_conv.1`, f, groupSize, c0), (v) => Math.max(0, v));
    f = pointwise(t, `${e}.encoder.first_conv.3`, f, groupSize, c0);
    const c1 = t.shape(`${e}.encoder.first_conv.3.weight`)[0]!;
    const global = maxOverRows(f, groupSize, c1);
    // global feature first, then the per-point one
    const cat = new Float64Array(groupSize * 2 * c1);
    for (let r = 0; r < groupSize; r++) {
      cat.set(global, r * 2 * c1);
      cat.set(f.subarray(r * c1, (r + 1) * c1), r * 2 * c1 + c1);
    }
    let s = pointwise(t, `${e}.encoder.second_conv.0`, cat, groupSize, 2 * c1);
    const c3 = t.shape(`${e}.encoder.second_conv.0.weight`)[0]!;
    s = mapInPlace(batchNorm(t, `${e}.encoder.second_conv.1`, s, groupSize, c3), (v) => Math.max(0, v));
    s = pointwise(t, `${e}.encoder.second_conv.3`, s, groupSize, c3);
    tokens.set(maxOverRows(s, groupSize, dims.encoderDims), g * dims.encoderDims);
  }
  const reduced = pointwise(t, `${e}.reduce_dim`, tokens, numGroup, dims.encoderDims);
  const centers = Float64Array.from(center);
  const posHidden = mapInPlace(pointwise(t, `${e}.pos_embed.0`, centers, numGroup, 3), gelu);
  const pos = pointwise(t, `${e}.pos_embed.2`, posHidden, numGroup, t.shape(`${e}.pos_embed.0.weight`)[0]!);
  const n = numGroup + 1;
  let x: Vec = new Float64Array(n * d);
  x.set(t.get(`${e}.cls_token`), 0);
  x.set(reduced, d);
  const posAll = new Float64Array(n * d);
  posAll.set(t.get(`${e}.cls_pos`), 0);
  posAll.set(pos, d);
  for (let b = 0; b < dims.blocks; b++) {
    // the positions are re-added before every block
    const p = `${e}.blocks.blocks.${b}`;
    const xin = add(x, posAll);
    const h = layerNorm(xin, n, d, t.get(`${p}.norm1.weight`), t.get(`${p}.norm1.bias`), POINT_EPS);
    const qkv = linear(h, n, d, t.get(`${p}.attn.qkv.weight`), 3 * d);
    const q = new Float64Array(n * d);
    const k = new Float64Array(n * d);
    const v = new Float64Array(n * d);
    for (let r = 0; r < n; r++) {
      q.set(qkv.subarray(r * 3 * d, r * 3 * d + d), r * d);
      k.set(qkv.subarray(r * 3 * d + d, r * 3 * d + 2 * d), r * d);
      v.set(qkv.subarray(r * 3 * d + 2 * d, r * 3 * d + 3 * d), r * d);
    }
    const o = attention(q, k, v, n, n, d, dims.heads);
    const x1 = add(xin, linear(o, n, d, t.get(`${p}.attn.proj.weight`), d, t.get(`${p}.attn.proj.bias`)));
    const h2 = layerNorm(x1, n, d, t.get(`${p}.norm2.weight`), t.get(`${p}.norm2.bias`), POINT_EPS);
    const f1 = mapInPlace(
      linear(h2, n, d, t.get(`${p}.mlp.fc1.weight`), 4 * d, t.get(`${p}.mlp.fc1.bias`)),
      gelu,
    );
    x = add(x1, linear(f1, n, 4 * d, t.get(`${p}.mlp.fc2.weight`), d, t.get(`${p}.mlp.fc2.bias`)));
  }
  x = layerNorm(x, n, d, t.get(`${e}.norm.weight`), t.get(`${e}.norm.bias`), POINT_EPS);
  const feat = new Float64Array(2 * d);
  feat.set(x.subarray(0, d));
  feat.set(maxOverRows(x.subarray(d), numGroup, d), d);
  // pc_projection is a raw [2·trans_dim, 512] matrix applied as feat · P
  const proj = t.get('point_trunk.pc_projection');
  const width = t.shape('point_trunk.pc_projection')[1]!;
  const embed = new Float64Array(width);
  for (let o = 0; o < width; o++)
    for (let i = 0; i < 2 * d; i++) embed[o] = embed[o]! + feat[i]! * proj[i * width + o]!;
  return headOf(t, 'point', embed, width, 'modality_heads.point.0', 'modality_heads.point.2.weight');
}

/** The mean over clips of per-clip postprocessed embeddings, without re-normalising (§3.6). */
export function meanOf(vectors: readonly Vec[]): Vec {
  const y = new Float64Array(vectors[0]!.length);
  for (const v of vectors) for (let i = 0; i < y.length; i++) y[i] = y[i]! + v[i]! / vectors.length;
  return y;
}

// ---------------------------------------------------------------------------------------------
// Bind network (§4) and LLaMA with the adapter (§5)

/** The bind network's RMSNorm is RMSNorm(4096) with the class default eps, whatever params.json says. */
const BIND_EPS = 1e-6;

export function bindNetwork(t: Tensors, q: Float32Array): Vec {
  const [dim, inn] = t.shape('image_bind_proj.weight') as [number, number];
  let x = linear(
    Float64Array.from(q),
    1,
    inn,
    t.get('image_bind_proj.weight'),
    dim,
    t.get('image_bind_proj.bias'),
  );
  for (let k = 1; t.has(`image_bind_norm_${k}.weight`); k++) {
    const hidden = t.shape(`image_bind_f1_${k}.weight`)[0]!;
    const n = rmsNorm(x, 1, dim, t.get(`image_bind_norm_${k}.weight`), BIND_EPS);
    const a = mapInPlace(linear(n, 1, dim, t.get(`image_bind_f1_${k}.weight`), hidden), silu);
    const b = linear(n, 1, dim, t.get(`image_bind_f3_${k}.weight`), hidden);
    for (let i = 0; i < hidden; i++) a[i] = a[i]! * b[i]!;
    x = add(x, linear(a, 1, hidden, t.get(`image_bind_f2_${k}.weight`), dim));
  }
  return x;
}

export interface LlamaParams {
  readonly dim: number;
  readonly n_heads: number;
  readonly n_layers: number;
  readonly multiple_of: number;
  readonly norm_eps: number;
}

/** x·Wᵀ (+ b) + (x·Aᵀ)·Bᵀ with LoRA A = `<lora>_l1`, B = `<lora>_l2` (no α/r scaling, §5.4). */
function loraLinear(t: Tensors, x: Vec, n: number, inn: number, w: string, lora: string, bias?: string): Vec {
  const out = t.shape(w)[0]!;
  const rank = t.shape(`${lora}_l1.weight`)[0]!;
  const y = linear(x, n, inn, t.get(w), out, bias === undefined ? undefined : t.get(bias));
  const low = linear(x, n, inn, t.get(`${lora}_l1.weight`), rank);
  return add(y, linear(low, n, rank, t.get(`${lora}_l2.weight`), out));
}

/** Interleaved-pair RoPE on x [n, d] (heads of hd), angles built in float32 as the official code (§5.3). */
function rope(x: Vec, n: number, d: number, hd: number, positions: readonly number[]): Vec {
  const y = new Float64Array(x);
  for (let i = 0; i < hd / 2; i++) {
    const theta = Math.fround(1 / Math.fround(10000 ** Math.fround((2 * i) / hd)));
    for (let r = 0; r < n; r++) {
      const angle = Math.fround(positions[r]! * theta);
      const cos = Math.cos(angle);
      const sin = Math.sin(angle);
      for (let h = 0; h < d / hd; h++) {
        const at = r * d + h * hd + 2 * i;
        const e = x[at]!;
        const o = x[at + 1]!;
        y[at] = e * cos - o * sin;
        y[at + 1] = e * sin + o * cos;
      }
    }
  }
  return y;
}

/**
 * LLaMA forward over the whole token sequence at once (causal), with the official per-head
 * injection in every layer that `prefix_query` reaches (§5.4, §5.6): O_h += tanh(g_h)·(W_v a_l)_h,
 * a_l = v + prefix_query[row], before W_o. Returns the logits of every position [n, vocab].
 * `t` holds the base weights under `llama.` and the adapter's keys (norms overriding).
 */
export function llamaLogits(
  t: Tensors,
  params: LlamaParams,
  ids: readonly number[],
  visual: Vec | undefined,
  normEps = params.norm_eps,
): Vec {
  const d = params.dim;
  const heads = params.n_heads;
  const hd = d / heads;
  const n = ids.length;
  const emb = t.get('llama.tok_embeddings.weight');
  const vocab = t.shape('llama.tok_embeddings.weight')[0]!;
  let x: Vec = new Float64Array(n * d);
  ids.forEach((id, i) => x.set(emb.subarray(id * d, (id + 1) * d), i * d));
  const positions = ids.map((_, i) => i);
  const queryLayer = t.shape('prefix_query.weight')[0]!;
  const prefix = t.get('prefix_query.weight');
  const first = Math.max(0, params.n_layers - queryLayer);
  for (let l = 0; l < params.n_layers; l++) {
    const p = `llama.layers.${l}`;
    const a = `${p}.attention`;
    const h = rmsNorm(x, n, d, t.get(`${p}.attention_norm.weight`), normEps);
    const q = rope(
      loraLinear(t, h, n, d, `${a}.wq.weight`, `${a}.lora_wq`, `${a}.wq.bias`),
      n,
      d,
      hd,
      positions,
    );
    const k = rope(loraLinear(t, h, n, d, `${a}.wk.weight`, `${a}.lora_wk`), n, d, hd, positions);
    const v = loraLinear(t, h, n, d, `${a}.wv.weight`, `${a}.lora_wv`);
    const o = attention(q, k, v, n, n, d, heads, (i, j) => j > i);
    if (visual !== undefined && l >= first) {
      const row = l - first;
      const adapter = visual.map((value, i) => value + prefix[row * d + i]!);
      // base W_v only: no LoRA, no bias
      const u = linear(adapter, 1, d, t.get(`${a}.wv.weight`), d);
      const gate = t.get(`${a}.gate`);
      for (let r = 0; r < n; r++) {
        for (let i = 0; i < d; i++)
          o[r * d + i] = o[r * d + i]! + Math.tanh(gate[Math.floor(i / hd)]!) * u[i]!;
      }
    }
    x = add(x, loraLinear(t, o, n, d, `${a}.wo.weight`, `${a}.lora_wo`, `${a}.wo.bias`));
    const ff = `${p}.feed_forward`;
    const y = rmsNorm(x, n, d, t.get(`${p}.ffn_norm.weight`), normEps);
    const hidden = t.shape(`${ff}.w1.weight`)[0]!;
    const g1 = mapInPlace(loraLinear(t, y, n, d, `${ff}.w1.weight`, `${ff}.lora_w1`, `${ff}.w1.bias`), silu);
    const g3 = loraLinear(t, y, n, d, `${ff}.w3.weight`, `${ff}.lora_w3`, `${ff}.w3.bias`);
    for (let i = 0; i < g1.length; i++) g1[i] = g1[i]! * g3[i]!;
    x = add(x, loraLinear(t, g1, n, hidden, `${ff}.w2.weight`, `${ff}.lora_w2`, `${ff}.w2.bias`));
  }
  const final = rmsNorm(x, n, d, t.get('llama.norm.weight'), normEps);
  return linear(final, n, d, t.get('llama.output.weight'), vocab);
}

/**
 * The §7 per-layer residual offsets c_l = (W_o + B_o·A_o)·δ_l, δ_l,h = tanh(g_l,h)·(W_v·a_l)_h,
 * [layers, dim]: what the injection adds after each attention block, for a diagnostic comparison.
 */
export function visualOffsets(t: Tensors, params: LlamaParams, visual: Vec): Vec {
  const d = params.dim;
  const hd = d / params.n_heads;
  const queryLayer = t.shape('prefix_query.weight')[0]!;
  const first = Math.max(0, params.n_layers - queryLayer);
  const prefix = t.get('prefix_query.weight');
  const out = new Float64Array(params.n_layers * d);
  for (let l = first; l < params.n_layers; l++) {
    const a = `llama.layers.${l}.attention`;
    const adapter = visual.map((value, i) => value + prefix[(l - first) * d + i]!);
    const u = linear(adapter, 1, d, t.get(`${a}.wv.weight`), d);
    const gate = t.get(`${a}.gate`);
    const delta = u.map((value, i) => Math.tanh(gate[Math.floor(i / hd)]!) * value);
    const c = loraLinear(t, delta, 1, d, `${a}.wo.weight`, `${a}.lora_wo`);
    out.set(c, l * d);
  }
  return out;
}

/** log softmax of one row. */
export function logSoftmax(logits: Vec): Vec {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return logits.map((v) => v - lse);
}

/**
 * Point-BERT's grouping (§3.7 steps 1–2) with a deterministic FPS start at point 0 (B10): `numGroup`
 * farthest-point centres in selection order, then each centre's `groupSize` nearest points, as
 * neighbourhoods relative to the centre [G, K, 3] and centres [G, 3].
 */
export function groupPoints(
  cloud: Float32Array,
  numGroup: number,
  groupSize: number,
): { neighborhood: Float32Array; center: Float32Array } {
  const count = cloud.length / 3;
  const dist = new Float64Array(count).fill(1e10);
  const center = new Float32Array(numGroup * 3);
  let far = 0;
  for (let g = 0; g < numGroup; g++) {
    center.set(cloud.subarray(far * 3, far * 3 + 3), g * 3);
    let best = 0;
    for (let j = 0; j < count; j++) {
      let s = 0;
      for (let a = 0; a < 3; a++) s += (cloud[j * 3 + a]! - cloud[far * 3 + a]!) ** 2;
      dist[j] = Math.min(dist[j]!, s);
      if (dist[j]! > dist[best]!) best = j;
    }
    far = best;
  }
  const neighborhood = new Float32Array(numGroup * groupSize * 3);
  const d2 = new Float64Array(count);
  const order = Array.from({ length: count }, (_, j) => j);
  for (let g = 0; g < numGroup; g++) {
    for (let j = 0; j < count; j++) {
      let s = 0;
      for (let a = 0; a < 3; a++) s += (cloud[j * 3 + a]! - center[g * 3 + a]!) ** 2;
      d2[j] = s;
    }
    order.sort((x, y) => d2[x]! - d2[y]! || x - y);
    for (let k = 0; k < groupSize; k++) {
      const j = order[k]!;
      for (let a = 0; a < 3; a++)
        neighborhood[(g * groupSize + k) * 3 + a] = cloud[j * 3 + a]! - center[g * 3 + a]!;
    }
  }
  return { neighborhood, center };
}
