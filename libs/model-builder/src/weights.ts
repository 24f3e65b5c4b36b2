import { toFloat32, type TensorEntry } from '@imagebind-llm/checkpoint';

/**
 * Named float32 access to checkpoint tensors. Several state dicts are layered: a later one
 * overrides an earlier one (the adapter's norm weights override the base LLaMA's, MODEL_SPEC §6.2).
 * Tensors are read one at a time when asked for, so a builder can stream a model layer by layer.
 */
export class WeightStore {
  private readonly layers: ReadonlyMap<string, TensorEntry>[];
  /**
   * Called with the stored bytes of every tensor read (progress; it may throw to cancel a build:
   * the builder checks its abort signal here, between two tensors).
   */
  onRead: ((bytes: number) => void) | undefined;

  constructor(...layers: ReadonlyMap<string, TensorEntry>[]) {
    this.layers = layers;
  }

  private entry(name: string): TensorEntry | undefined {
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const e = this.layers[i]!.get(name);
      if (e !== undefined) return e;
    }
    return undefined;
  }

  /** Bytes the checkpoint stores for these tensors (the ones present): what reading them costs. */
  storedBytes(names: Iterable<string>): number {
    let n = 0;
    for (const name of new Set(names)) n += this.entry(name)?.byteLength ?? 0;
    return n;
  }

  has(name: string): boolean {
    return this.entry(name) !== undefined;
  }

  shape(name: string): readonly number[] {
    const e = this.entry(name);
    if (e === undefined) throw new Error(`weight ${name} is missing from the checkpoints`);
    return e.shape;
  }

  /** Reads a tensor as float32, checking its shape when one is expected. */
  async f32(name: string, expectedShape?: readonly number[]): Promise<Float32Array> {
    const e = this.entry(name);
    if (e === undefined) throw new Error(`weight ${name} is missing from the checkpoints`);
    if (
      expectedShape !== undefined &&
      (e.shape.length !== expectedShape.length || e.shape.some((d, i) => d !== expectedShape[i]))
    ) {
      throw new Error(
        `weight ${name} has shape [${e.shape.join(', ')}], expected [${expectedShape.join(', ')}]`,
      );
    }
    const raw = await e.read();
    this.onRead?.(e.byteLength);
    return toFloat32(raw);
  }
}

/** Wᵀ of a PyTorch Linear weight stored [out, in]: the [in, out] matrix ONNX MatMul wants. */
export function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) t[c * rows + r] = w[base + c]!;
  }
  return t;
}

/**
 * W + B·A for a LoRA pair (A [rank, in], B [out, rank]; MODEL_SPEC §5.4: no alpha/rank scaling),
 * in place on W [out, in]. The merge is exact in real arithmetic; each merged weight is rounded
 * once to float32, accumulating in double.
 */
export function mergeLora(
  w: Float32Array,
  out: number,
  inn: number,
  a: Float32Array,
  b: Float32Array,
  rank: number,
): void {
  // An all-zero B (a LoRA that was never trained) leaves W as it is: skip the pass over W.
  if (b.every((v) => v === 0)) return;
  const acc = new Float64Array(inn);
  for (let o = 0; o < out; o++) {
    acc.fill(0);
    for (let k = 0; k < rank; k++) {
      const coef = b[o * rank + k]!;
      if (coef === 0) continue;
      const row = k * inn;
      for (let i = 0; i < inn; i++) acc[i]! += coef * a[row + i]!;
    }
    const base = o * inn;
    for (let i = 0; i < inn; i++) w[base + i] = Math.fround(w[base + i]! + acc[i]!);
  }
}
