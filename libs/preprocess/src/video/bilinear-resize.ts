/**
 * `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)` without antialiasing, as
 * PyTorch's CPU kernel computes it in float32 (MODEL_SPEC §2.2 step 6), and pytorchvideo's
 * ShortSideScale size rule. Pure; no I/O.
 */

/** Source indices and weights of one output axis. */
export interface LinearAxis {
  readonly i0: Int32Array;
  readonly i1: Int32Array;
  /** Weight of `i0` (`1 − λ`). */
  readonly w0: Float32Array;
  /** Weight of `i1` (`λ`). */
  readonly w1: Float32Array;
}

/**
 * Per output index: `src = max(scale·(i + 0.5) − 0.5, 0)` with `scale = in/out`, everything in
 * float32 as torch's `area_pixel_compute_source_index`; `i1` clamps at the last input index.
 */
export function linearAxis(inSize: number, outSize: number): LinearAxis {
  if (!Number.isInteger(inSize) || !Number.isInteger(outSize) || inSize < 1 || outSize < 1) {
    throw new RangeError(`bilinear resize: bad sizes ${inSize} → ${outSize}`);
  }
  const scale = Math.fround(inSize / outSize);
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w0 = new Float32Array(outSize);
  const w1 = new Float32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    const src = Math.max(Math.fround(Math.fround(scale * Math.fround(i + 0.5)) - 0.5), 0);
    const lo = Math.min(Math.floor(src), inSize - 1);
    const lambda = Math.min(Math.max(Math.fround(src - lo), 0), 1);
    i0[i] = lo;
    i1[i] = lo < inSize - 1 ? lo + 1 : lo;
    w1[i] = lambda;
    w0[i] = Math.fround(1 - lambda);
  }
  return { i0, i1, w0, w1 };
}

/** pytorchvideo `short_side_scale`: the short side becomes `size`, the other `floor(long/short·size)`. */
export function shortSideScaleSize(
  width: number,
  height: number,
  size: number,
): { width: number; height: number } {
  if (width < height) return { width: size, height: Math.floor((height / width) * size) };
  return { width: Math.floor((width / height) * size), height: size };
}

/**
 * Resizes one float32 plane (row-major `height × width`) to `outHeight × outWidth`. The output
 * is `(x[h0][w0]·a0 + x[h0][w1]·a1)·b0 + (x[h1][w0]·a0 + x[h1][w1]·a1)·b1`, the order of torch's
 * two-tap kernel (height outer, width inner), rounded to float32 after every operation.
 */
export function resizeBilinearPlane(
  plane: Float32Array,
  width: number,
  height: number,
  rows: LinearAxis,
  cols: LinearAxis,
  out: Float32Array,
): void {
  const outHeight = rows.i0.length;
  const outWidth = cols.i0.length;
  if (plane.length !== width * height || out.length !== outWidth * outHeight) {
    throw new RangeError('bilinear resize: buffer sizes do not match the geometry');
  }
  const f = Math.fround;
  for (let y = 0; y < outHeight; y++) {
    const r0 = rows.i0[y]! * width;
    const r1 = rows.i1[y]! * width;
    const b0 = rows.w0[y]!;
    const b1 = rows.w1[y]!;
    const o = y * outWidth;
    for (let x = 0; x < outWidth; x++) {
      const c0 = cols.i0[x]!;
      const c1 = cols.i1[x]!;
      const a0 = cols.w0[x]!;
      const a1 = cols.w1[x]!;
      const t0 = f(f(plane[r0 + c0]! * a0) + f(plane[r0 + c1]! * a1));
      const t1 = f(f(plane[r1 + c0]! * a0) + f(plane[r1 + c1]! * a1));
      out[o + x] = f(f(t0 * b0) + f(t1 * b1));
    }
  }
}
