/**
 * Band-limited resampling exactly as `torchaudio.functional.resample` with its defaults
 * (`sinc_interp_hann`, `lowpass_filter_width = 6`, `rolloff = 0.99`), MODEL_SPEC §2.3.2.
 *
 * torchaudio builds, in the waveform's dtype (float32), a kernel `K[k, t]` for each output phase
 * k = 0..n−1 and tap t = 0..2·width+o−1, and runs a strided conv1d over the zero-padded input. Only
 * about 2·width+1 taps of each phase lie inside the window (|τ| < 6); outside it the clamped kernel
 * is cos(π/2)²·sinc(6π) ≈ 1e−23, so those taps are skipped here. Kept taps are computed with the
 * same float32 operation order as torch, and each output is accumulated in float64 and rounded to
 * float32 (torch accumulates in float32 in an unspecified order; the difference is ~1 ulp).
 */

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
  return { orig: o, phases: n, width, firstTap, tapsPerPhase, taps };
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
  kernel: SincKernel = sincResampleKernel(origFreq, newFreq),
): Float32Array {
  const total = resampledLength(input.length, origFreq, newFreq);
  const start = range.start ?? 0;
  const end = Math.min(range.end ?? total, total);
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end))
    throw new RangeError(`resample: bad output range [${start}, ${end}) of ${total}`);
  if (origFreq === newFreq) return input.slice(start, end);
  const { orig, phases, width, firstTap, tapsPerPhase, taps } = kernel;
  const out = new Float32Array(end - start);
  const len = input.length;
  for (let y = start; y < end; y++) {
    const m = Math.floor(y / phases);
    const k = y - m * phases;
    // Output m·n + k reads x_pad[m·o + t]; x_pad[i] = x[i − width] (zero outside the input).
    const base = m * orig + firstTap[k]! - width;
    const row = k * tapsPerPhase;
    let acc = 0;
    const jFirst = Math.max(0, -base);
    const jLast = Math.min(tapsPerPhase, len - base);
    for (let j = jFirst; j < jLast; j++) acc += input[base + j]! * taps[row + j]!;
    out[y - start] = acc;
  }
  return out;
}
