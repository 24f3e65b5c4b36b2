import { float32ArrayToFloat16 } from '@imagebind-llm/checkpoint';
import { attr, OnnxType, type GraphBuilder } from '../onnx/onnx-graph';
import { layerNorm } from '../onnx/ops';
import { denseFromCheckpoint, type WeightFormat } from '../onnx/linear-weights';
import { transpose, type WeightStore } from '../weights';
import { IMAGEBIND_CONSTANTS } from './imagebind-config';

/** Graph output after the modality postprocessor (normalise, × logit scale, mean over clips). */
export const EMBEDDING_OUTPUT = 'embedding';
/** Graph output before the postprocessor: the head output (mean over clips where there are clips). */
export const HEAD_OUTPUT = 'head_prenorm';

/**
 * How an encoder graph stores its weights: `fp32` exactly as the checkpoint has them; `fp16`
 * stores every matrix (Linear and conv weights, embedding tables, position embeddings, the text
 * mask) as a float16 initializer widened by a Cast, so the files are half the size while the
 * graph computes in float32 as the fp32 build does (onnxruntime's CPU provider folds the Cast of
 * a constant at load). Vectors (norm scales, biases, CLS tokens, bias_k/v) stay float32: they
 * are < 0.1 % of the bytes and rounding them buys nothing.
 */
export type EncoderWeightFormat = Extract<WeightFormat, 'fp32' | 'fp16'>;

export const ENCODER_WEIGHT_FORMATS: readonly EncoderWeightFormat[] = ['fp32', 'fp16'];

/** A matrix or higher: at least two axes longer than 1 (what `fp16` stores as float16). */
function isMatrix(shape: readonly number[]): boolean {
  return shape.filter((d) => d > 1).length >= 2;
}

/**
 * A graph under construction plus the checkpoint it reads: every initializer is named after its
 * state-dict key (`<key>.T` for a transposed Linear weight, `.fp16` appended when stored as
 * float16), and shapes are checked on read.
 */
export class EncoderContext {
  constructor(
    readonly g: GraphBuilder,
    readonly w: WeightStore,
    readonly format: EncoderWeightFormat = 'fp32',
  ) {}

  /**
   * `values` as a float32 value of the graph named `name`: a float32 initializer, or under `fp16`
   * a matrix stored as float16 and Cast to float32.
   */
  constant(name: string, shape: readonly number[], values: Float32Array): string {
    if (this.format === 'fp32' || !isMatrix(shape)) return this.g.floatInit(name, shape, values);
    const half = float32ArrayToFloat16(values);
    const init = this.g.initializer(
      `${name}.fp16`,
      OnnxType.FLOAT16,
      shape,
      new Uint8Array(half.buffer, half.byteOffset, half.byteLength),
    );
    return this.g.op1('Cast', [init], { to: attr.int(OnnxType.FLOAT) });
  }

  /** The tensor `key` as a float32 value of exactly `shape` (see {@link constant}). */
  async tensor(key: string, shape: readonly number[]): Promise<string> {
    return this.constant(key, shape, await this.w.f32(key, shape));
  }

  /** A PyTorch Linear weight [out, in] stored transposed as [in, out] (`<key>.T`). */
  async linearT(key: string, out: number, inn: number): Promise<string> {
    return this.constant(`${key}.T`, [inn, out], transpose(await this.w.f32(key, [out, inn]), out, inn));
  }

  /** x · Wᵀ (+ b) for `<prefix>.weight` [out, in] and, with `bias`, `<prefix>.bias` [out]. */
  async dense(x: string, prefix: string, out: number, inn: number, bias: boolean): Promise<string> {
    return denseFromCheckpoint(this.g, this.w, x, prefix, out, inn, bias, this.format);
  }

  /** LayerNorm over the last axis with `<prefix>.weight` / `<prefix>.bias`. */
  async layerNorm(x: string, prefix: string, dim: number, eps: number): Promise<string> {
    return layerNorm(
      this.g,
      x,
      this.g.floatInit(`${prefix}.weight`, [dim], await this.w.f32(`${prefix}.weight`, [dim])),
      this.g.floatInit(`${prefix}.bias`, [dim], await this.w.f32(`${prefix}.bias`, [dim])),
      eps,
    );
  }

  /** The scalar `key` (a log logit scale) as a JavaScript number. */
  async scalar(key: string): Promise<number> {
    const v = await this.w.f32(key, []);
    return v[0]!;
  }
}

/** Exact GELU, 0.5·x·(1 + erf(x/√2)) (MODEL_SPEC §3.1). */
export function geluErf(g: GraphBuilder, x: string): string {
  const erf = g.op1('Erf', [g.op1('Div', [x, g.floats([Math.SQRT2], [])])]);
  return g.op1('Mul', [g.op1('Mul', [x, g.floats([0.5], [])]), g.op1('Add', [erf, g.floats([1], [])])]);
}

/**
 * Prepends a learned [1, 1, D] token to x [N, L, D] (the CLS token expanded over the batch).
 */
export function prependToken(g: GraphBuilder, x: string, token: string): string {
  const batch = g.op1('Shape', [x], { start: attr.int(0), end: attr.int(1) });
  const expanded = g.op1('Expand', [
    token,
    g.op1('Concat', [batch, g.int64s([1, 1])], { axis: attr.int(0) }),
  ]);
  return g.op1('Concat', [expanded, x], { axis: attr.int(1) });
}

/** Token `index` of x [N, L, D] as [N, D]. */
export function selectToken(g: GraphBuilder, x: string, index: number): string {
  return g.op1('Gather', [x, g.int64s([index], [])], { axis: attr.int(1) });
}

/**
 * The ImageBind postprocessor on [N, E]: `F.normalize(x, dim=-1)` (x / max(‖x‖₂, 1e-12)), then
 * × `scale` when the modality has a logit scale (MODEL_SPEC §3.2–§3.4, §3.7).
 */
export function postprocess(g: GraphBuilder, x: string, scale: number | undefined): string {
  const norm = g.op1('ReduceL2', [x], { axes: attr.ints([-1]), keepdims: attr.int(1) });
  const clamped = g.op1('Max', [norm, g.floats([IMAGEBIND_CONSTANTS.normalizeEps], [])]);
  const unit = g.op1('Div', [x, clamped]);
  return scale === undefined ? unit : g.op1('Mul', [unit, g.floats([scale], [])]);
}

/**
 * `min(exp(log_logit_scale), 100)` as the float32 factor the official LearnableLogitScaling applies
 * (the exponential is taken in float32).
 */
export function logitScale(logLogitScale: number): number {
  return Math.min(Math.fround(Math.exp(Math.fround(logLogitScale))), IMAGEBIND_CONSTANTS.maxLogitScale);
}

/**
 * Multi-clip reduction (MODEL_SPEC §3.6): per-clip rows [B·S, E] back to [B, S, E] (B and S read
 * from `input`'s first two dims) and averaged over S, with no re-normalisation.
 */
export function meanOverClips(g: GraphBuilder, perClip: string, input: string, width: number): string {
  const bs = g.op1('Shape', [input], { start: attr.int(0), end: attr.int(2) });
  const shape = g.op1('Concat', [bs, g.int64s([width])], { axis: attr.int(0) });
  const grouped = g.op1('Reshape', [perClip, shape]);
  return g.op1('ReduceMean', [grouped], { axes: attr.ints([1]), keepdims: attr.int(0) });
}

/** Declares the two encoder outputs, [batch, E] each. */
export function encoderOutputs(g: GraphBuilder, embedding: string, head: string, width: number): void {
  g.output(
    embedding,
    EMBEDDING_OUTPUT,
    OnnxType.FLOAT,
    ['batch', width],
    'ImageBind embedding after the modality postprocessor (normalised, × logit scale, mean over clips)',
  );
  g.output(
    head,
    HEAD_OUTPUT,
    OnnxType.FLOAT,
    ['batch', width],
    'modality head output before the postprocessor (mean over clips)',
  );
}
