/**
 * Band-limited resampling exactly as `torchaudio.functional.resample` with its defaults
 * (`sinc_interp_hann`, `lowpass_filter_width = 6`, `rolloff = 0.99`), MODEL_SPEC §2.3.2.
 *
 * torchaudio builds, in the waveform's dtype (float32), a kernel `K[k, t]` for each output phase
 * k = 0..n−1 and tap t = 0..2·width+o−1, and runs a strided conv1d over the zero-padded input. Only
 * about 2·width+1 taps of each phase lie inside the window (|τ| < 6); outside it the clamped kernel
 * is cos(π/2)²·sinc(6π) ≈ 1e−23, so those taps are skipped here: the kernel stores a few around the
 * window, and the convolution reads only `liveTaps` of them, the ones with |τ| < 6. Kept taps are
 * computed with the same float32 operation order as torch, and each output is accumulated in
 * float64 and rounded to float32 (torch accumulates in float32 in an unspecified order; the
 * difference is ~1 ulp).
 */

import { mediaNative } from '../native/media-native';

const LOWPASS_FILTER_WIDTH = 6;
const ROLLOFF = 0.99;

const f32 = Math.fround;

export function gcd(a: number, b: number): number {
  let x = Math.abs(a);
  let y = Math.abs(b);
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}

/** Phases and width of the resampling kernel for `origFreq → newFreq` (both reduced by their gcd). */
export interface SincKernel {
  /** Input samples consumed per block (orig / gcd). */
  readonly orig: number;
  /** Output samples produced per block (new / gcd). */
  readonly phases: number;
  readonly width: number;
  /** First tap index (into torch's 0..2·width+o−1 range) stored for each phase. */
  readonly firstTap: Int32Array;
  /** Stored taps per phase. */
  readonly tapsPerPhase: number;
  /** `[phases, tapsPerPhase]` float32 values; phase k, stored tap j is torch tap firstTap[k] + j. */
  readonly taps: Float32Array;
  /** First stored tap of phase k strictly inside the window (|τ| < 6); the convolution starts here. */
  readonly liveFirst: Int32Array;
  /** Number of stored taps of phase k strictly inside the window. */
  readonly liveTaps: Int32Array;
}

function validateFrequency(name: string, v: number): void {
  if (!Number.isInteger(v) || v <= 0)
    throw new RangeError(`resample: ${name} must be a positive integer, got ${v}`);
}

/** torchaudio's `_get_sinc_resample_kernel` in float32, keeping only the taps inside the window. */
export function sincResampleKernel(origFreq: number, newFreq: number): SincKernel {
  validateFrequency('origFreq', origFreq);
  validateFrequency('newFreq', newFreq);
  const g = gcd(origFreq, newFreq);
  const o = origFreq / g;
  const n = newFreq / g;
  // Python float arithmetic: base_freq = min(o, n) * rolloff; width = ceil(lpw * o / base_freq).
  const base = Math.min(o, n) * ROLLOFF;
  const width = Math.ceil((LOWPASS_FILTER_WIDTH * o) / base);
  const baseF = f32(base);
  const totalTaps = 2 * width + o;
  // For phase k the window is centred at tap width + k·o/n and spans ±6·o/base ≤ width taps.
  const tapsPerPhase = Math.min(totalTaps, 2 * width + 3);
  const firstTap = new Int32Array(n);
  const taps = new Float32Array(n * tapsPerPhase);
  const liveFirst = new Int32Array(n).fill(tapsPerPhase);
  const liveTaps = new Int32Array(n);
  const piF = f32(Math.PI);
  for (let k = 0; k < n; k++) {
    const centre = (k * o) / n;
    const start = Math.max(0, Math.min(totalTaps - tapsPerPhase, Math.floor(centre) - 1));
    firstTap[k] = start;
    // torch: t = arange(0, -n, -1)[:, None] / n + arange(-width, width + o) / o, all float32.
    const phaseTerm = f32(-k / n);
    for (let j = 0; j < tapsPerPhase; j++) {
      const idx = f32((start + j - width) / o);
      let t = f32(f32(phaseTerm + idx) * baseF);
      if (t < -LOWPASS_FILTER_WIDTH) t = -LOWPASS_FILTER_WIDTH;
      else if (t > LOWPASS_FILTER_WIDTH) t = LOWPASS_FILTER_WIDTH;
      else if (t !== -LOWPASS_FILTER_WIDTH && t !== LOWPASS_FILTER_WIDTH) {
        // τ rises with j, so the live taps are one run.
        if (liveFirst[k]! > j) liveFirst[k] = j;
        liveTaps[k] = j + 1 - liveFirst[k]!;
      }
      // window = cos(t * pi / lpw / 2) ** 2
      const c = f32(Math.cos(f32(f32(f32(t * piF) / LOWPASS_FILTER_WIDTH) / 2)));
      const window = f32(c * c);
      // t *= pi; kernel = where(t == 0, 1, sin(t) / t); kernel *= window * scale
      const tp = f32(t * piF);
      const sinc = tp === 0 ? 1 : f32(f32(Math.sin(tp)) / tp);
      const scale = f32(base / o);
      taps[k * tapsPerPhase + j] = f32(sinc * f32(window * scale));
    }
  }
  return { orig: o, phases: n, width, firstTap, tapsPerPhase, taps, liveFirst, liveTaps };
}

const kernelCache = new Map<string, SincKernel>();

/** `sincResampleKernel`, built once per rate pair (the kernels are small; callers use few pairs). */
export function cachedSincResampleKernel(origFreq: number, newFreq: number): SincKernel {
  const key = `${origFreq}/${newFreq}`;
  let kernel = kernelCache.get(key);
  if (kernel === undefined) {
    kernel = sincResampleKernel(origFreq, newFreq);
    kernelCache.set(key, kernel);
  }
  return kernel;
}

/** Output length of torchaudio's resample: `ceil(new·N/orig)` with the gcd-reduced rates. */
export function resampledLength(length: number, origFreq: number, newFreq: number): number {
  if (origFreq === newFreq) return length;
  const g = gcd(origFreq, newFreq);
  const o = origFreq / g;
  const n = newFreq / g;
  // Integer ceil division, exact for any length below 2^53 / n.
  return Math.floor((n * length + o - 1) / o);
}

/** Validated `[start, end)` of the full output of length `total`. */
function outputRange(range: { start?: number; end?: number }, total: number): [number, number] {
  const start = range.start ?? 0;
  const end = Math.min(range.end ?? total, total);
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end))
    throw new RangeError(`resample: bad output range [${start}, ${end}) of ${total}`);
  return [start, end];
}

/**
 * The live taps packed per phase as float64 (converted once, not per multiply). Output y = m·n + k
 * reads x_pad[m·o + t] for torch taps t; with x_pad[i] = x[i − width], its live taps start at input
 * index m·o + offset[k] and sit at taps[row[k] .. row[k] + count[k]).
 */
interface LiveLayout {
  readonly offset: Int32Array;
  readonly row: Int32Array;
  readonly count: Int32Array;
  readonly taps: Float64Array;
}

const layoutCache = new WeakMap<SincKernel, LiveLayout>();

function liveLayout(kernel: SincKernel): LiveLayout {
  const cachedLayout = layoutCache.get(kernel);
  if (cachedLayout !== undefined) return cachedLayout;
  const { phases, width, firstTap, tapsPerPhase, liveFirst, liveTaps } = kernel;
  const offset = new Int32Array(phases);
  const row = new Int32Array(phases);
  let total = 0;
  for (let k = 0; k < phases; k++) total += liveTaps[k]!;
  const taps = new Float64Array(total);
  let at = 0;
  for (let k = 0; k < phases; k++) {
    offset[k] = firstTap[k]! + liveFirst[k]! - width;
    row[k] = at;
    const from = k * tapsPerPhase + liveFirst[k]!;
    for (let j = 0; j < liveTaps[k]!; j++) taps[at++] = kernel.taps[from + j]!;
  }
  const layout = { offset, row, count: liveTaps, taps };
  layoutCache.set(kernel, layout);
  return layout;
}

/**
 * The input indices `[from, to)` that outputs `[start, end)` read (resampleSinc and resampledSum
 * alike); may reach below 0 or past the input, where both read zeros. Empty for an empty range.
 */
export function resampleInputSpan(kernel: SincKernel, start: number, end: number): [number, number] {
  if (end <= start) return [0, 0];
  const { orig, phases } = kernel;
  const { offset, count } = liveLayout(kernel);
  let dMin = Infinity;
  let dMax = -Infinity;
  for (let k = 0; k < phases; k++) {
    dMin = Math.min(dMin, offset[k]!);
    dMax = Math.max(dMax, offset[k]! + count[k]!);
  }
  return [Math.floor(start / phases) * orig + dMin, Math.floor((end - 1) / phases) * orig + dMax];
}

/** Σ_j input[base + j]·taps[row + j] over j < count, in float64, reading zeros outside the input. */
function dot(input: Float32Array, base: number, taps: Float64Array, row: number, count: number): number {
  let acc = 0;
  if (base >= 0 && base + count <= input.length) {
    for (let j = 0; j < count; j++) acc += input[base + j]! * taps[row + j]!;
  } else {
    const jFirst = Math.max(0, -base);
    const jLast = Math.min(count, input.length - base);
    for (let j = jFirst; j < jLast; j++) acc += input[base + j]! * taps[row + j]!;
  }
  return acc;
}

/**
 * Resamples one channel from `origFreq` to `newFreq` like `torchaudio.functional.resample`.
 * `start`/`end` select a range of the full output (default: all of it); each output sample depends
 * only on the input, so a range equals the same slice of the full result.
 */
export function resampleSinc(
  input: Float32Array,
  origFreq: number,
  newFreq: number,
  range: { start?: number; end?: number } = {},
  kernel: SincKernel = cachedSincResampleKernel(origFreq, newFreq),
): Float32Array {
  const [start, end] = outputRange(range, resampledLength(input.length, origFreq, newFreq));
  if (origFreq === newFreq) return input.slice(start, end);
  const { orig, phases } = kernel;
  const { offset, row, count, taps } = liveLayout(kernel);
  const out = new Float32Array(end - start);
  const native = mediaNative();
  if (native !== undefined) {
    // The same dot products in C (native/resample.c), same order, same bits.
    native.resampleSinc(input, offset, row, count, taps, orig, start, out);
    return out;
  }
  const m = Math.floor(start / phases);
  let k = start - m * phases;
  let blockBase = m * orig;
  for (let y = start; y < end; y++) {
    out[y - start] = dot(input, blockBase + offset[k]!, taps, row[k]!, count[k]!);
    if (++k === phases) {
      k = 0;
      blockBase += orig;
    }
  }
  return out;
}

/**
 * Σ of `resampleSinc(input, …)[start..end)` without materialising it, in float64: outputs of whole
 * blocks (all n phases of one m) are summed through the kernel's per-input column sums, which costs
 * ~(2·width + o) multiplies per block instead of n·(2·width + 1). Differs from summing the float32
 * outputs only by their rounding (~1e−7 relative).
 */
export function resampledSum(
  input: Float32Array,
  origFreq: number,
  newFreq: number,
  range: { start?: number; end?: number } = {},
  kernel: SincKernel = cachedSincResampleKernel(origFreq, newFreq),
): number {
  const [start, end] = outputRange(range, resampledLength(input.length, origFreq, newFreq));
  if (origFreq === newFreq) {
    let sum = 0;
    for (let i = start; i < end; i++) sum += input[i]!;
    return sum;
  }
  const { orig, phases } = kernel;
  const { offset, row, count, taps } = liveLayout(kernel);
  let sum = 0;
  const partial = (from: number, to: number): void => {
    for (let y = from; y < to; y++) {
      const m = Math.floor(y / phases);
      const k = y - m * phases;
      sum += dot(input, m * orig + offset[k]!, taps, row[k]!, count[k]!);
    }
  };
  const firstBlock = Math.ceil(start / phases);
  const endBlock = Math.floor(end / phases);
  if (firstBlock >= endBlock) {
    partial(start, end);
    return sum;
  }
  partial(start, firstBlock * phases);
  partial(endBlock * phases, end);
  // Column sums over the input offsets d (relative to m·o) that some live tap reads.
  let dMin = Infinity;
  let dMax = -Infinity;
  for (let k = 0; k < phases; k++) {
    dMin = Math.min(dMin, offset[k]!);
    dMax = Math.max(dMax, offset[k]! + count[k]!);
  }
  const columns = new Float64Array(dMax - dMin);
  for (let k = 0; k < phases; k++)
    for (let j = 0; j < count[k]!; j++) columns[offset[k]! - dMin + j]! += taps[row[k]! + j]!;
  for (let m = firstBlock; m < endBlock; m++) sum += dot(input, m * orig + dMin, columns, 0, columns.length);
  return sum;
}
