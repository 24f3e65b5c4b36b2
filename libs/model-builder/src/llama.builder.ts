import { float32ArrayToFloat16 } from '@imagebind-llm/checkpoint';
import { STEP_GRAPH_INPUTS } from '@imagebind-llm/inference';
import { linearWeight, QUANT_BLOCK_SIZE, type QuantBlock, type WeightFormat } from './onnx/linear-weights';
import { rmsNorm, silu } from './onnx/ops';
import { attr, GraphBuilder, OnnxType, type InitializerSink } from './onnx/onnx-graph';
import { mergeLora, type WeightStore } from './weights';

/** LLaMA + adapter hyper-parameters, from params.json and the checkpoint shapes (MODEL_SPEC §5.1). */
export interface LlamaConfig {
  readonly dim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly ffnHidden: number;
  readonly normEps: number;
  /** Context length the official code hard-codes (512). */
  readonly maxSeqLen: number;
  /** Rows of the RoPE table (official: max_seq_len · 2). */
  readonly ropeTableLen: number;
  readonly ropeTheta: number;
  readonly loraRank: number;
  /** `query_layer`: how many of the last layers receive the visual term (32 in the official code). */
  readonly queryLayer: number;
}

export interface LlamaParamsJson {
  dim: number;
  multiple_of: number;
  n_heads: number;
  n_layers: number;
  norm_eps: number;
  vocab_size?: number;
}

/** FFN width as LLaMA derives it: int(2·4·dim/3) rounded up to a multiple of `multiple_of`. */
export function ffnHiddenSize(dim: number, multipleOf: number): number {
  const h = Math.floor((2 * 4 * dim) / 3);
  return multipleOf * Math.ceil(h / multipleOf);
}

export function llamaConfigFrom(params: LlamaParamsJson, weights: WeightStore): LlamaConfig {
  for (const key of ['dim', 'multiple_of', 'n_heads', 'n_layers', 'norm_eps'] as const) {
    if (typeof params[key] !== 'number') throw new Error(`params.json: "${key}" must be a number`);
  }
  if (params.dim % params.n_heads !== 0)
    throw new Error(`params.json: dim ${params.dim} is not divisible by n_heads ${params.n_heads}`);
  const emb = weights.shape('llama.tok_embeddings.weight');
  const lora = weights.shape('llama.layers.0.attention.lora_wq_l1.weight');
  const prefix = weights.shape('prefix_query.weight');
  return {
    dim: params.dim,
    nLayers: params.n_layers,
    nHeads: params.n_heads,
    headDim: params.dim / params.n_heads,
    vocabSize: emb[0]!,
    ffnHidden: ffnHiddenSize(params.dim, params.multiple_of),
    normEps: params.norm_eps,
    maxSeqLen: 512,
    ropeTableLen: 1024,
    ropeTheta: 10000,
    loraRank: lora[0]!,
    // prefix_query holds query_layer · query_len rows; query_len is 1 (MODEL_SPEC §4).
    queryLayer: prefix[0]!,
  };
}

/** Index of the prefix_query row layer l uses, or undefined when l gets no visual term (§5.6). */
export function prefixRowOf(c: LlamaConfig, layer: number): number | undefined {
  const first = Math.max(0, c.nLayers - c.queryLayer);
  return layer >= first ? layer - first : undefined;
}

/** Base LLaMA keys (consolidated.00.pth, no prefix), for strict validation. */
export function llamaBaseKeys(c: LlamaConfig): Map<string, readonly number[]> {
  const { dim: d, ffnHidden: f, vocabSize: v } = c;
  const keys = new Map<string, readonly number[]>([
    ['tok_embeddings.weight', [v, d]],
    ['norm.weight', [d]],
    ['output.weight', [v, d]],
  ]);
  for (let i = 0; i < c.nLayers; i++) {
    for (const p of ['wq', 'wk', 'wv', 'wo']) keys.set(`layers.${i}.attention.${p}.weight`, [d, d]);
    keys.set(`layers.${i}.feed_forward.w1.weight`, [f, d]);
    keys.set(`layers.${i}.feed_forward.w2.weight`, [d, f]);
    keys.set(`layers.${i}.feed_forward.w3.weight`, [f, d]);
    keys.set(`layers.${i}.attention_norm.weight`, [d]);
    keys.set(`layers.${i}.ffn_norm.weight`, [d]);
  }
  return keys;
}

/** LLaMA keys of the adapter checkpoint (`llama.` prefix, MODEL_SPEC §6.2), bind network excluded. */
export function adapterLlamaKeys(c: LlamaConfig): Map<string, readonly number[]> {
  const { dim: d, ffnHidden: f, loraRank: r, nHeads: h } = c;
  const keys = new Map<string, readonly number[]>([
    ['prefix_query.weight', [c.queryLayer, d]],
    ['llama.norm.weight', [d]],
  ]);
  for (let i = 0; i < c.nLayers; i++) {
    const a = `llama.layers.${i}.attention`;
    const ff = `llama.layers.${i}.feed_forward`;
    keys.set(`${a}.gate`, [1, h, 1, 1]);
    keys.set(`${a}.wq.bias`, [d]);
    keys.set(`${a}.wo.bias`, [d]);
    for (const p of ['q', 'k', 'v', 'o']) {
      keys.set(`${a}.lora_w${p}_l1.weight`, [r, d]);
      keys.set(`${a}.lora_w${p}_l2.weight`, [d, r]);
    }
    keys.set(`${ff}.w1.bias`, [f]);
    keys.set(`${ff}.w2.bias`, [d]);
    keys.set(`${ff}.w3.bias`, [f]);
    keys.set(`${ff}.lora_w1_l1.weight`, [r, d]);
    keys.set(`${ff}.lora_w1_l2.weight`, [f, r]);
    keys.set(`${ff}.lora_w2_l1.weight`, [r, f]);
    keys.set(`${ff}.lora_w2_l2.weight`, [d, r]);
    keys.set(`${ff}.lora_w3_l1.weight`, [r, d]);
    keys.set(`${ff}.lora_w3_l2.weight`, [f, r]);
    keys.set(`llama.layers.${i}.attention_norm.weight`, [d]);
    keys.set(`llama.layers.${i}.ffn_norm.weight`, [d]);
  }
  return keys;
}

/**
 * RoPE tables in the interleaved ("complex") form, float32 as the official code builds them
 * (MODEL_SPEC §5.3): θ_i = 1 / 10000^(2i/hd), angle = m·θ_i rounded to float32, then cos and sin.
 */
export function ropeTables(c: LlamaConfig): { cos: Float32Array; sin: Float32Array } {
  const half = c.headDim / 2;
  const theta = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const exponent = Math.fround(Math.fround(2 * i) / c.headDim);
    theta[i] = Math.fround(1 / Math.fround(Math.pow(c.ropeTheta, exponent)));
  }
  const cos = new Float32Array(c.ropeTableLen * half);
  const sin = new Float32Array(c.ropeTableLen * half);
  for (let m = 0; m < c.ropeTableLen; m++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(m * theta[i]!);
      cos[m * half + i] = Math.cos(angle);
      sin[m * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** W + B·A for a base weight and its LoRA pair, in PyTorch's [out, in] layout. */
async function merged(
  w: WeightStore,
  base: string,
  loraPrefix: string,
  out: number,
  inn: number,
  rank: number,
): Promise<Float32Array> {
  const weight = await w.f32(base, [out, inn]);
  const a = await w.f32(`${loraPrefix}_l1.weight`, [rank, inn]);
  const b = await w.f32(`${loraPrefix}_l2.weight`, [out, rank]);
  mergeLora(weight, out, inn, a, b, rank);
  return weight;
}

/** Stacks [out_i, in] matrices into one [Σ out_i, in] matrix (fused projections). */
function stackRows(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The token embedding table: float32, or float16 + Cast when weights are stored compressed. */
function embeddingLookup(
  g: GraphBuilder,
  table: Float32Array,
  rows: number,
  cols: number,
  ids: string,
  format: WeightFormat,
): string {
  if (format === 'fp32')
    return g.op1('Gather', [g.floatInit('tok_embeddings', [rows, cols], table), ids], { axis: attr.int(0) });
  const half = float32ArrayToFloat16(table);
  const init = g.initializer(
    'tok_embeddings.fp16',
    OnnxType.FLOAT16,
    [rows, cols],
    new Uint8Array(half.buffer, half.byteOffset, half.byteLength),
  );
  return g.op1('Cast', [g.op1('Gather', [init, ids], { axis: attr.int(0) })], {
    to: attr.int(OnnxType.FLOAT),
  });
}

/**
 * Interleaved-pair RoPE (MODEL_SPEC §5.3) on heads-first x [batch, heads, seq, hd] at positions
 * pos [batch, seq]: onnxruntime's RotaryEmbedding (com.microsoft) with `interleaved`, which looks
 * up rows of the [positions, hd/2] cos/sin tables itself and computes, per pair, e·cos − o·sin and
 * e·sin + o·cos in float32 — one kernel per use instead of the thirteen reshape/split/multiply/
 * concat nodes the same arithmetic takes in plain ONNX. `name` names its output.
 */
function rope(
  g: GraphBuilder,
  x: string,
  pos: string,
  cos: string,
  sin: string,
  c: LlamaConfig,
  name?: string,
): string {
  return g.op('RotaryEmbedding', [x, pos, cos, sin], {
    attrs: { interleaved: attr.int(1), num_heads: attr.int(c.nHeads) },
    domain: 'com.microsoft',
    ...(name === undefined ? {} : { outputs: [name] }),
  })[0]!;
}

export interface DecoderGraphOptions {
  /** Storage of the linear weights (float32 by default). */
  readonly format?: WeightFormat;
  /** Called after each layer is written, for progress output on long builds. */
  readonly onLayer?: (layer: number) => void;
  /** Element type of the slot KV cache (float32 by default: exact; float16 halves its memory). */
  readonly kvDtype?: KvDtype;
  /** fp16 weights multiplied in float16 (GPU deployments; see linearWeight). */
  readonly halfCompute?: boolean;
  /** int8/int4: inputs per quantization block (QUANT_BLOCK_SIZES; default QUANT_BLOCK_SIZE). */
  readonly quantBlock?: QuantBlock;
}

export type KvDtype = 'float32' | 'float16';

export const KV_ONNX_TYPE: Readonly<Record<KvDtype, OnnxType>> = {
  float32: OnnxType.FLOAT,
  float16: OnnxType.FLOAT16,
};

/**
 * decoder.onnx, one step of LLaMA with the visual term as a per-layer residual offset
 * (MODEL_SPEC §5, §7). Works for prefill (seq > 1) and decode (seq = 1) and for a batch of rows
 * with different lengths and different visual vectors, over a slot KV cache that the engine owns
 * and the graph updates in place:
 *
 * - input_ids, position_ids [batch, seq]: tokens and their RoPE positions;
 * - past_lengths [batch]: cache positions row b attends to (its slot's [0, past_b)); the step reads
 *   `width` = max past_b positions of every row, masked per row;
 * - new_lengths [batch]: real tokens among row b's `seq` new ones (the rest is right padding); new
 *   token j is visible to query q when j ≤ q and j < new_b, so a padding query still sees its row's
 *   real tokens and no softmax row is empty. The mask is built in the graph from these two per-row
 *   numbers: what the host sends per row and step does not grow with the context;
 * - past_key_l / past_value_l [slots, heads, capacity, hd]: what the attention reads (post-RoPE
 *   keys), float32 or float16 (`kvDtype`). Row b reads slot b's positions [0, width): a decode step
 *   runs over slots [0, span) in slot order; a prefill reads one position, masked out (width ≥ 1);
 * - cache_key_l / cache_value_l [slots, heads, capacity, hd]: where the new K/V are scattered;
 * - kv_write_index [batch, heads, seq, 3]: (slot, head, position) where each new K/V vector goes;
 * - layer_offsets [batch, layers, dim]: c_l per row (visual.onnx), zeros for no visual signal;
 * - gather_rows [batch]: flat row (b·seq + t) whose logits to return;
 * → logits [batch, vocab], and next_token [batch] int64, their ArgMax (a greedy step fetches only
 *   that); present_key_l / present_value_l: cache_key_l with the new positions scattered in
 *   (ScatterND);
 * → new_key_l / new_value_l [batch, heads, seq, hd] in the cache's type: only the positions this
 *   step made.
 *
 * On a device the engine feeds one slot buffer as both past_key_l and cache_key_l and binds
 * present_key_l to it, so the scatter writes in place and nothing of the cache is copied or crosses
 * host↔device: per step only ids, lengths, write indices and the logits (greedy: the ids) do. The attention never
 * concatenates the cache with the new keys: it scores the two parts apart, softmaxes them together
 * and sums the two weighted values, so no step copies the cache but the one Slice that cuts the
 * rows' window out of the slot buffers (window_key_l / window_value_l).
 *
 * In host memory the session runs hostDecoderGraph instead, this graph with the windows as inputs:
 * the engine feeds each row's [0, width) positions compacted as window_key_l, as cache_key_l a
 * scratch of just the new positions (the scatter, which onnxruntime runs whether or not its output
 * is fetched, then copies nothing of the cache), and copies new_key_l into the slots itself.
 *
 * LoRA is merged into every base weight (exact up to float32 rounding); the visual path uses the
 * base W_v and lives in visual.onnx.
 */
export async function buildDecoderGraph(
  w: WeightStore,
  c: LlamaConfig,
  sink?: InitializerSink,
  options: DecoderGraphOptions = {},
): Promise<GraphBuilder> {
  const g = new GraphBuilder('imagebind_llm_decoder', sink);
  const format = options.format ?? 'fp32';
  const half = options.halfCompute === true;
  const block = options.quantBlock ?? QUANT_BLOCK_SIZE;
  const { dim: d, ffnHidden: f, loraRank: r, nHeads: nh, headDim: hd } = c;
  const ids = g.input('input_ids', OnnxType.INT64, ['batch', 'seq']);
  const pos = g.input('position_ids', OnnxType.INT64, ['batch', 'seq']);
  const pastLengths = g.input('past_lengths', OnnxType.INT64, ['batch']);
  const newLengths = g.input('new_lengths', OnnxType.INT64, ['batch']);
  const offsets = g.input('layer_offsets', OnnxType.FLOAT, ['batch', c.nLayers, d]);
  const gatherRows = g.input('gather_rows', OnnxType.INT64, ['batch']);
  const kvDtype = options.kvDtype ?? 'float32';
  const kvType = KV_ONNX_TYPE[kvDtype];
  const writeIndex = g.input('kv_write_index', OnnxType.INT64, ['batch', nh, 'seq', 3]);
  const caches: { k: string; v: string; pastK: string; pastV: string }[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    caches.push({
      pastK: g.input(`past_key_${l}`, kvType, ['slots', nh, 'capacity', hd]),
      pastV: g.input(`past_value_${l}`, kvType, ['slots', nh, 'capacity', hd]),
      k: g.input(`cache_key_${l}`, kvType, ['slots', nh, 'capacity', hd]),
      v: g.input(`cache_value_${l}`, kvType, ['slots', nh, 'capacity', hd]),
    });
  }
  const batch = g.op1('Shape', [ids], { start: attr.int(0), end: attr.int(1) });
  const seqLen = g.op1('Shape', [ids], { start: attr.int(1), end: attr.int(2) });
  // width: the longest row's cache positions, at least one; every row reads [0, width) of its
  // slot, masked to its own past (a prefill reads one position, masked out: a softmax weight of
  // exactly 0 on a finite value adds exactly nothing, and no MatMul runs with an empty inner
  // dimension, which the WebGPU provider does not survive).
  const width = g.op1('Max', [g.op1('ReduceMax', [pastLengths], { keepdims: attr.int(1) }), g.int64s([1])]);
  const range = (n: string): string =>
    g.op1('Range', [g.int64s([0], []), g.op1('Squeeze', [n, g.int64s([0])]), g.int64s([1], [])]);
  const cachePos = g.op1('Unsqueeze', [range(width), g.int64s([0])]); // [1, width]
  const cacheVisible = g.op1('Less', [cachePos, g.op1('Unsqueeze', [pastLengths, g.int64s([1])])]); // [b, width]
  const newPos = range(seqLen);
  const causal = g.op1('LessOrEqual', [
    g.op1('Unsqueeze', [newPos, g.int64s([0])]),
    g.op1('Unsqueeze', [newPos, g.int64s([1])]),
  ]); // [q, j]
  const realNew = g.op1('Less', [
    g.op1('Unsqueeze', [newPos, g.int64s([0, 1])]),
    g.op1('Unsqueeze', [newLengths, g.int64s([1, 2])]),
  ]); // [b, 1, j]
  const newVisible = g.op1('And', [g.op1('Unsqueeze', [causal, g.int64s([0])]), realNew]); // [b, q, j]
  const cacheShape = g.op1('Concat', [batch, g.int64s([1]), seqLen, width], { axis: attr.int(0) });
  // The additive mask, 0 where visible and −∞ elsewhere, made from each part in float32 before the
  // parts are joined: a Concat of booleans runs on the CPU under the WebGPU provider (it has no
  // boolean Concat), which read the expanded cache part back from the device in the middle of
  // every step (two device → host copies, each a wait for the device); float parts join there.
  const maskBias = (visibleBool: string): string =>
    g.op1('Where', [visibleBool, g.floats([0], []), g.floats([-Infinity], [])]);
  const bias = g.op1(
    'Concat',
    [
      g.op1('Expand', [maskBias(g.op1('Unsqueeze', [cacheVisible, g.int64s([1, 2])])), cacheShape]),
      maskBias(g.op1('Unsqueeze', [newVisible, g.int64s([1])])),
    ],
    { axis: attr.int(3) },
  ); // [b, 1, q, width + seq]
  // Rows [0, batch) and positions [0, width) of the slot buffer, the window the rows read: the one
  // copy of the cache a step makes (MatMul needs the keys dense), widened to float32 when the cache
  // is float16. Its value is named window_key_l / window_value_l: the host graph
  // (hostDecoderGraph) takes it as an input, so there the Slice is left out.
  const readEnds = g.op1('Concat', [batch, width], { axis: attr.int(0) });
  const readCache = (x: string, window: string): string => {
    const [part] = g.op('Slice', [x, g.int64s([0, 0]), readEnds, g.int64s([0, 2])], { outputs: [window] });
    return kvDtype === 'float32' ? part! : g.op1('Cast', [part!], { to: attr.int(OnnxType.FLOAT) });
  };
  const present: { k: string; v: string }[] = [];
  // The new K/V go to the cache in its type under the names the host graph's engine fetches
  // (new_key_l / new_value_l): with a float32 cache the node that makes the heads-first value
  // carries the name (no Identity copies it out: one more kernel on a GPU), with float16 the Cast.
  const f32Kv = kvDtype === 'float32';
  const kvName = (name: string): string => (f32Kv ? name : g.uniqueName('heads'));
  const toCache = (heads: string, name: string): string =>
    f32Kv ? heads : g.op('Cast', [heads], { outputs: [name], attrs: { to: attr.int(kvType) } })[0]!;
  // The softmax weights of the cache part, [0, width), and of the new tokens, [width, width + seq).
  const cachePart = (x: string): string => g.op1('Slice', [x, g.int64s([0]), width, g.int64s([3])]);
  const total = g.op1('Add', [width, seqLen]);
  const newPart = (x: string): string => g.op1('Slice', [x, width, total, g.int64s([3])]);
  // present_key_l / present_value_l are the ScatterND outputs themselves (a renamed graph output
  // would be one more Identity node).
  const writeCache = (cache: string, fresh: string, name: string): string =>
    g.op('ScatterND', [cache, writeIndex, fresh], { outputs: [name] })[0]!;

  let h = embeddingLookup(
    g,
    await w.f32('llama.tok_embeddings.weight', [c.vocabSize, d]),
    c.vocabSize,
    d,
    ids,
    format,
  );
  const tables = ropeTables(c);
  const cosT = g.floatInit('rope_cos', [c.ropeTableLen, hd / 2], tables.cos);
  const sinT = g.floatInit('rope_sin', [c.ropeTableLen, hd / 2], tables.sin);
  const scale = g.floats([Math.sqrt(hd)], []);
  // Each layer's c_l [batch, 1, dim]: one Split of layer_offsets for all layers (one kernel, where
  // a Gather per layer is one each).
  const layerOffsets =
    c.nLayers === 1
      ? [offsets]
      : g.op('Split', [offsets], { outputs: c.nLayers, attrs: { axis: attr.int(1) } });
  // The residual stream and the branch output still to be added to it. The add is done by the
  // norm that reads the sum (SkipSimplifiedLayerNormalization: h + pending, then RMSNorm of it, in
  // one kernel that also returns the sum as the new h).
  let pending: string | undefined;
  const addThenNorm = (gamma: string): string => {
    if (pending === undefined) return rmsNorm(g, h, gamma, c.normEps);
    const [normed, , , sum] = g.op('SkipSimplifiedLayerNormalization', [h, pending, gamma], {
      outputs: 4,
      attrs: { epsilon: attr.float(c.normEps) },
      domain: 'com.microsoft',
    });
    h = sum!;
    pending = undefined;
    return normed!;
  };

  for (let l = 0; l < c.nLayers; l++) {
    const p = `llama.layers.${l}`;
    // attention: fused QKV with merged LoRA; wk and wv have no bias, so their part of bqkv is 0
    const attnNorm = g.floatInit(`${p}.attention_norm`, [d], await w.f32(`${p}.attention_norm.weight`, [d]));
    const wqkv = stackRows([
      await merged(w, `${p}.attention.wq.weight`, `${p}.attention.lora_wq`, d, d, r),
      await merged(w, `${p}.attention.wk.weight`, `${p}.attention.lora_wk`, d, d, r),
      await merged(w, `${p}.attention.wv.weight`, `${p}.attention.lora_wv`, d, d, r),
    ]);
    const qkvBias = new Float32Array(3 * d);
    qkvBias.set(await w.f32(`${p}.attention.wq.bias`, [d]));
    const bqkv = g.floatInit(`${p}.attention.bqkv`, [3 * d], qkvBias);
    const xn = addThenNorm(attnNorm);
    const qkv = g.mark(
      `qkv_${l}`,
      linearWeight(g, xn, `${p}.attention.wqkv`, wqkv, 3 * d, d, format, half, block, bqkv),
    );
    // q, k and v heads-first in one Transpose, [b, seq, 3·heads, hd] → [b, 3·heads, seq, hd],
    // then split by heads; RoPE works on the heads-first q and k as they are.
    const heads3 = g.op1('Transpose', [g.op1('Reshape', [qkv, g.int64s([0, 0, 3 * nh, hd])])], {
      perm: attr.ints([0, 2, 1, 3]),
    });
    const [qh, kh, vh] = g.op('Split', [heads3, g.int64s([nh, nh, nh])], {
      outputs: [g.uniqueName('q_heads'), g.uniqueName('k_heads'), kvName(`new_value_${l}`)],
      attrs: { axis: attr.int(1) },
    });
    const kr = rope(g, kh!, pos, cosT, sinT, c, kvName(`new_key_${l}`));
    // q transposed, [b, h, hd, seq]: the scores are computed transposed, keys times queries, so
    // the window of cached keys is read as it lies (no transpose of it).
    const qT = g.op1('Transpose', [rope(g, qh!, pos, cosT, sinT, c)], { perm: attr.ints([0, 1, 3, 2]) });
    const kNew = { heads: kr, cache: toCache(kr, `new_key_${l}`) };
    const vNew = { heads: vh!, cache: toCache(vh!, `new_value_${l}`) };
    present.push({
      k: writeCache(caches[l]!.k, kNew.cache, `present_key_${l}`),
      v: writeCache(caches[l]!.v, vNew.cache, `present_value_${l}`),
    });
    // scores against the cache [b, h, q, width] and the new keys [b, h, q, seq], one softmax over
    // both, then the two weighted sums of values added: nothing concatenates the cache itself.
    // (onnxruntime's fused MultiHeadAttention would take this in one node, but on the WebGPU
    // provider of 1.30 it gave wrong outputs — errors of ~1e-2 against float64 — once 32 or more
    // queries attend, with or without a past and a bias, as a prefill does; and it concatenates
    // the window with the new keys, a copy of the cache per layer that this form avoids.)
    const pastScoresT = g.op1('MatMul', [readCache(caches[l]!.pastK, windowNames(l).key), qT]);
    const newScoresT = g.op1('MatMul', [kNew.heads, qT]);
    const scoresT = g.op1('Concat', [pastScoresT, newScoresT], { axis: attr.int(2) }); // [b, h, width + seq, q]
    const scores = g.op1('Add', [
      g.op1('Div', [g.op1('Transpose', [scoresT], { perm: attr.ints([0, 1, 3, 2]) }), scale]),
      bias,
    ]);
    const probs = g.op1('Softmax', [scores], { axis: attr.int(-1) });
    const mixed = g.op1('Add', [
      g.op1('MatMul', [cachePart(probs), readCache(caches[l]!.pastV, windowNames(l).value)]),
      g.op1('MatMul', [newPart(probs), vNew.heads]),
    ]);
    // the heads joined again, [b, seq, dim]: named, as the step graph makes it another way
    const [o] = g.op(
      'Reshape',
      [g.op1('Transpose', [mixed], { perm: attr.ints([0, 2, 1, 3]) }), g.int64s([0, 0, d])],
      { outputs: [attentionName(l)] },
    );
    const wo = await merged(w, `${p}.attention.wo.weight`, `${p}.attention.lora_wo`, d, d, r);
    const bo = g.floatInit(`${p}.attention.wo.bias`, [d], await w.f32(`${p}.attention.wo.bias`, [d]));
    const attnOut = linearWeight(g, o!, `${p}.attention.wo`, wo, d, d, format, half, block, bo);
    // the visual term: c_l added to every position right after the attention block (§7)
    pending = g.op1('Add', [attnOut, layerOffsets[l]!]);

    // SwiGLU FFN with biases and merged LoRA, w1 and w3 fused
    const ffnNorm = g.floatInit(`${p}.ffn_norm`, [d], await w.f32(`${p}.ffn_norm.weight`, [d]));
    const w13 = stackRows([
      await merged(w, `${p}.feed_forward.w1.weight`, `${p}.feed_forward.lora_w1`, f, d, r),
      await merged(w, `${p}.feed_forward.w3.weight`, `${p}.feed_forward.lora_w3`, f, d, r),
    ]);
    const b13v = new Float32Array(2 * f);
    b13v.set(await w.f32(`${p}.feed_forward.w1.bias`, [f]));
    b13v.set(await w.f32(`${p}.feed_forward.w3.bias`, [f]), f);
    const b13 = g.floatInit(`${p}.feed_forward.b13`, [2 * f], b13v);
    const y = addThenNorm(ffnNorm);
    const gates = linearWeight(g, y, `${p}.feed_forward.w13`, w13, 2 * f, d, format, half, block, b13);
    const [g1, g3] = g.op('Split', [gates, g.int64s([f, f])], { outputs: 2, attrs: { axis: attr.int(-1) } });
    const w2 = await merged(w, `${p}.feed_forward.w2.weight`, `${p}.feed_forward.lora_w2`, d, f, r);
    const b2 = g.floatInit(`${p}.feed_forward.w2.bias`, [d], await w.f32(`${p}.feed_forward.w2.bias`, [d]));
    const ffOut = linearWeight(
      g,
      g.op1('Mul', [silu(g, g1!), g3!]),
      `${p}.feed_forward.w2`,
      w2,
      d,
      f,
      format,
      half,
      block,
      b2,
    );
    pending = ffOut;
    options.onLayer?.(l);
  }

  const finalNorm = g.floatInit('llama.norm', [d], await w.f32('llama.norm.weight', [d]));
  const hn = addThenNorm(finalNorm);
  const rows = g.op1('Gather', [g.op1('Reshape', [hn, g.int64s([-1, d])]), gatherRows], {
    axis: attr.int(0),
  });
  const logits = linearWeight(
    g,
    rows,
    'output',
    await w.f32('llama.output.weight', [c.vocabSize, d]),
    c.vocabSize,
    d,
    format,
    half,
    block,
  );
  g.output(logits, 'logits', OnnxType.FLOAT, ['batch', c.vocabSize]);
  // The greedy pick where the session runs (first index on ties, as torch.argmax): a greedy step
  // fetches these 8 bytes per row instead of the logits.
  g.op('ArgMax', [logits], {
    outputs: ['next_token'],
    attrs: { axis: attr.int(-1), keepdims: attr.int(0), select_last_index: attr.int(0) },
  });
  g.output('next_token', 'next_token', OnnxType.INT64, ['batch']);
  for (let l = 0; l < c.nLayers; l++) {
    g.output(present[l]!.k, `present_key_${l}`, kvType, ['slots', nh, 'capacity', hd]);
    g.output(present[l]!.v, `present_value_${l}`, kvType, ['slots', nh, 'capacity', hd]);
  }
  for (let l = 0; l < c.nLayers; l++) {
    g.output(`new_key_${l}`, `new_key_${l}`, kvType, ['batch', nh, 'seq', hd]);
    g.output(`new_value_${l}`, `new_value_${l}`, kvType, ['batch', nh, 'seq', hd]);
  }
  return g;
}

/** Layer l's window values: the [batch, heads, width, hd] cache positions the rows read. */
export const windowNames = (l: number): { key: string; value: string } => ({
  key: `window_key_${l}`,
  value: `window_value_${l}`,
});

/**
 * model.host.onnx, the decoder for a session whose slot KV cache stays in host memory: `decoder`
 * (buildDecoderGraph, built with `kvDtype`) with each layer's window taken as inputs
 * window_key_l / window_value_l [batch, heads, width, hd], in the cache's type, where the device
 * graph slices it out of past_key_l / past_value_l (those inputs and the Slices are left out).
 * width is still max(past_lengths, 1); the rows are the batch. The engine feeds each row's first
 * width positions compacted from its host slots, which the Slice would copy once more (in an
 * onnxruntime profile of a 16-row step at dim 1024, context 64: 4 of 60 ms, though without it the
 * attention's MatMuls read the window cold and take back most of that). The rest is the device
 * graph's nodes and initializers themselves, so the two graphs compute the same and, written side
 * by side (writeGraph's variants), point at one external-data file when the weights are external.
 */
export function hostDecoderGraph(
  decoder: GraphBuilder,
  c: LlamaConfig,
  kvDtype: KvDtype = 'float32',
): GraphBuilder {
  const window = (name: string) => ({
    name,
    elemType: KV_ONNX_TYPE[kvDtype],
    dims: ['batch', c.nHeads, 'width', c.headDim],
  });
  return decoder.feeding(
    Array.from({ length: c.nLayers }, (_, l) => [
      window(windowNames(l).key),
      window(windowNames(l).value),
    ]).flat(),
    'imagebind_llm_decoder_host',
  );
}

/** Layer l's attention output with the heads joined, [batch, seq, dim]: what wo multiplies. */
const attentionName = (l: number): string => `attention_${l}`;

/**
 * model.step.onnx, the decoder's one-token step for a session whose slot KV cache is on the device:
 * `decoder` (buildDecoderGraph, built with `kvDtype`) with each layer's attention as one
 * `com.microsoft` GroupQueryAttention over the slot buffers, which takes the fused q/k/v
 * projection, applies RoPE (interleaved, at each row's own position), writes the new K/V into the
 * cache and attends over the row's [0, length] positions. Fed the first `batch` slots of each
 * buffer as past_key_l / past_value_l with present_key_l / present_value_l bound to the same views,
 * it writes the cache in place (onnxruntime's shared past/present buffer): no window is sliced out
 * of the cache, nothing is scattered, and the mask, the RoPE nodes and the two-part softmax of the
 * general graph are left out (about 20 of its 38 WebGPU kernels per layer).
 *
 * Inputs: input_ids [batch, 1], layer_offsets, gather_rows (0 … batch − 1), past_key_l /
 * past_value_l [batch, heads, capacity, hd] (slot b is row b), seqlens_k int32 [batch] (row b's
 * cache length: its new token goes to that position), total_sequence_length int32 scalar (the
 * largest seqlens_k + 1). Outputs: logits, next_token, present_key_l / present_value_l. Only for
 * one new token per row (GroupQueryAttention's prefill form is wrong on the WebGPU provider of
 * onnxruntime 1.30 once 32 or more queries attend: errors of ~5e-2 against a float64 reference on
 * lavapipe, as MultiHeadAttention's); prefills run the general graph. With float16 KV the
 * attention computes in float16 (its type is the cache's); with float32 KV in float32.
 */
export function stepDecoderGraph(
  decoder: GraphBuilder,
  c: LlamaConfig,
  kvDtype: KvDtype = 'float32',
): GraphBuilder {
  return decoder.rewriting('imagebind_llm_decoder_step', (g) => {
    const kvType = KV_ONNX_TYPE[kvDtype];
    const same = kvDtype === 'float32';
    const toKv = (x: string): string => (same ? x : g.op1('Cast', [x], { to: attr.int(kvType) }));
    const seqlens = g.input(STEP_GRAPH_INPUTS.seqlens, OnnxType.INT32, ['batch'], 'cache length of each row');
    const total = g.input(STEP_GRAPH_INPUTS.total, OnnxType.INT32, [], 'largest cache length + 1');
    // the RoPE tables in the cache's type (a Cast of an initializer: folded when the session loads)
    const cos = toKv('rope_cos');
    const sin = toKv('rope_sin');
    const layers = Array.from({ length: c.nLayers }, (_, l) => l);
    g.redefine(layers.flatMap((l) => [attentionName(l), `present_key_${l}`, `present_value_${l}`]));
    g.dropOutputs(layers.flatMap((l) => [`new_key_${l}`, `new_value_${l}`]));
    for (const l of layers) {
      const [out] = g.op(
        'GroupQueryAttention',
        [toKv(g.marked(`qkv_${l}`)), '', '', `past_key_${l}`, `past_value_${l}`, seqlens, total, cos, sin],
        {
          outputs: [
            same ? attentionName(l) : g.uniqueName('attention_kv'),
            `present_key_${l}`,
            `present_value_${l}`,
          ],
          attrs: {
            num_heads: attr.int(c.nHeads),
            kv_num_heads: attr.int(c.nHeads),
            do_rotary: attr.int(1),
            rotary_interleaved: attr.int(1),
          },
          domain: 'com.microsoft',
        },
      );
      if (!same)
        g.op('Cast', [out!], { outputs: [attentionName(l)], attrs: { to: attr.int(OnnxType.FLOAT) } });
    }
  });
}

/**
 * visual.onnx: visual_query v [batch, dim] → layer_offsets [batch, layers, dim], the per-layer
 * residual offsets of MODEL_SPEC §7: c_l = (W_o + B_o A_o) · headwise(tanh(g_l) ⊙ W_v (v + P_l)),
 * with the base W_v (no LoRA, no bias) as in the official adapter path. Layers before the last
 * query_layer get zeros.
 */
export async function buildVisualGraph(
  w: WeightStore,
  c: LlamaConfig,
  sink?: InitializerSink,
  format: WeightFormat = 'fp32',
  quantBlock: QuantBlock = QUANT_BLOCK_SIZE,
): Promise<GraphBuilder> {
  const g = new GraphBuilder('imagebind_llm_visual_offsets', sink);
  const { dim: d, nHeads: nh, headDim: hd, loraRank: r } = c;
  const v = g.input('visual_query', OnnxType.FLOAT, ['batch', d], 'bind network output v');
  const prefix = await w.f32('prefix_query.weight', [c.queryLayer, d]);
  const perLayer: string[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const row = prefixRowOf(c, l);
    if (row === undefined) {
      perLayer.push(g.op1('Mul', [v, g.floats([0], [])]));
      continue;
    }
    const p = `llama.layers.${l}`;
    const a = g.op1('Add', [
      v,
      g.floatInit(`prefix_query.${row}`, [d], prefix.slice(row * d, (row + 1) * d)),
    ]);
    const gate = g.floatInit(
      `${p}.attention.gate`,
      [nh, 1],
      await w.f32(`${p}.attention.gate`, [1, nh, 1, 1]),
    );
    const wv = await w.f32(`${p}.attention.wv.weight`, [d, d]);
    const u = g.op1('Reshape', [
      linearWeight(g, a, `${p}.attention.wv.base`, wv, d, d, format, false, quantBlock),
      g.int64s([0, nh, hd]),
    ]);
    const delta = g.op1('Reshape', [g.op1('Mul', [u, g.op1('Tanh', [gate])]), g.int64s([0, d])]);
    const wo = await merged(w, `${p}.attention.wo.weight`, `${p}.attention.lora_wo`, d, d, r);
    perLayer.push(linearWeight(g, delta, `${p}.attention.wo`, wo, d, d, format, false, quantBlock));
  }
  const stacked = g.op1(
    'Concat',
    perLayer.map((x) => g.op1('Unsqueeze', [x, g.int64s([1])])),
    { axis: attr.int(1) },
  );
  g.output(stacked, 'layer_offsets', OnnxType.FLOAT, ['batch', c.nLayers, d]);
  return g;
}

/**
 * state.onnx, what a worker session on a GPU provider needs to keep state buffers on the device
 * (onnxruntime-node has no other way to make or write a device buffer):
 * - `shape` [1] → `zeros_float32` / `zeros_float16` [n]: a zeroed buffer of n elements, made on the
 *   device (the slot KV cache is born there and never uploaded);
 * - `rows` [r, w] (bound in place), `row_index` [1, 1], `row_values` [1, w] → `rows_out`: one row
 *   written (each slot's visual offsets at its join).
 * onnxruntime runs every node of a graph whatever outputs a run asks for, so each use feeds the
 * other's inputs with one-element placeholders.
 */
export function buildStateGraph(): GraphBuilder {
  const g = new GraphBuilder('imagebind_llm_state');
  const shape = g.input('shape', OnnxType.INT64, [1], 'number of elements');
  const zeros = g.op1('ConstantOfShape', [shape]);
  g.output(zeros, 'zeros_float32', OnnxType.FLOAT, ['n']);
  g.output(g.op1('Cast', [zeros], { to: attr.int(OnnxType.FLOAT16) }), 'zeros_float16', OnnxType.FLOAT16, [
    'n',
  ]);
  const rows = g.input('rows', OnnxType.FLOAT, ['r', 'w'], 'the buffer, viewed as rows');
  const index = g.input('row_index', OnnxType.INT64, [1, 1]);
  const values = g.input('row_values', OnnxType.FLOAT, [1, 'w']);
  g.output(g.op1('ScatterND', [rows, index, values]), 'rows_out', OnnxType.FLOAT, ['r', 'w']);
  return g;
}
