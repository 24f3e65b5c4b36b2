/**
 * pytorchvideo's ConstantClipsPerVideoSampler as ImageBind's audio loader drives it (MODEL_SPEC
 * §2.2.2 and §2.3.3): duration `D = N/sr` is a Python float, `M = max(D − c, 0)` is that float's
 * exact binary value (a Fraction), `start_i = i·M/(clips−1)`, `end_i = start_i + c`, and the sample
 * range is `[int(start_i·sr), int(end_i·sr))` with `int` flooring the exact rational. Python slicing
 * then clamps the end to N.
 */

/** `[start, end)` in samples. */
export type SampleRange = readonly [number, number];

/** Splits a finite non-negative double into `mantissa · 2^exponent` with an integer mantissa. */
function exactParts(x: number): { mantissa: bigint; exponent: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  const fraction = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  if (biased === 0) return { mantissa: fraction, exponent: -1074 };
  return { mantissa: fraction | (1n << 52n), exponent: biased - 1075 };
}

/** `floor(x · num / den)` computed exactly for a non-negative double x and positive integers. */
function floorExact(x: number, num: number, den: number): number {
  if (x === 0) return 0;
  const { mantissa, exponent } = exactParts(x);
  let n = mantissa * BigInt(num);
  let d = BigInt(den);
  if (exponent >= 0) n <<= BigInt(exponent);
  else d <<= BigInt(-exponent);
  return Number(n / d);
}

export interface ClipSamplerOptions {
  /** Clip length in seconds (ImageBind: 2). */
  readonly clipDurationSeconds?: number;
  /** Clips per input (ImageBind audio: 3). */
  readonly clipsPerInput?: number;
  /** Sample rate the ranges are expressed in (ImageBind audio: 16000). */
  readonly sampleRate?: number;
}

/** Sample ranges of the clips for a waveform of `length` samples, clamped to the waveform. */
export function audioClipRanges(length: number, options: ClipSamplerOptions = {}): SampleRange[] {
  const c = options.clipDurationSeconds ?? 2;
  const clips = options.clipsPerInput ?? 3;
  const sr = options.sampleRate ?? 16000;
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`clip sampler: bad length ${length}`);
  if (
    !Number.isInteger(c) ||
    c <= 0 ||
    !Number.isInteger(clips) ||
    clips <= 0 ||
    !Number.isInteger(sr) ||
    sr <= 0
  )
    throw new RangeError('clip sampler: clip duration, clip count and sample rate must be positive integers');
  const duration = length / sr; // Python float division
  const maxStart = Math.max(duration - c, 0); // exact for duration ≥ c (same binade or below)
  const divisions = Math.max(clips - 1, 1);
  const ranges: SampleRange[] = [];
  for (let i = 0; i < clips; i++) {
    // int(i·M/divisions · sr) and int((i·M/divisions + c) · sr) = the former + c·sr.
    const start = floorExact(maxStart, i * sr, divisions);
    const end = start + c * sr;
    ranges.push([Math.min(start, length), Math.min(end, length)]);
  }
  return ranges;
}
