/**
 * Radix-2 real FFT in float64. A real signal of length N is packed into a complex signal of length
 * N/2 (even samples real, odd samples imaginary), transformed with an iterative radix-2
 * decimation-in-time FFT, then split into the N/2 + 1 bins of the real spectrum.
 */
export class RealFft {
  readonly size: number;
  private readonly half: number;
  /** Int32 (indices < 2^30): the native fbank reads the same table. */
  private readonly bitReverse: Int32Array;
  /**
   * Twiddles of the half-size complex FFT laid out per stage: the stage combining spans of s reads
   * e^{−2πi·j/(2s)}, j < s, at offset s. Indices 0 and 1 are unused.
   */
  private readonly cosStage: Float64Array;
  private readonly sinStage: Float64Array;
  /** Twiddles for the split step: e^{−2πi·k/size}, k ≤ half. */
  private readonly cosFull: Float64Array;
  private readonly sinFull: Float64Array;
  private readonly re: Float64Array;
  private readonly im: Float64Array;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 4 || (size & (size - 1)) !== 0)
      throw new RangeError(`RealFft: size must be a power of two ≥ 4, got ${size}`);
    this.size = size;
    const half = size / 2;
    this.half = half;
    const bits = Math.log2(half);
    this.bitReverse = new Int32Array(half);
    for (let i = 0; i < half; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.bitReverse[i] = r;
    }
    this.cosStage = new Float64Array(Math.max(half, 2));
    this.sinStage = new Float64Array(Math.max(half, 2));
    for (let span = 1; span < half; span *= 2) {
      for (let j = 0; j < span; j++) {
        // Same angle as e^{−2πi·(j·half/(2·span))/half}: one table lookup per butterfly group.
        const step = half / (2 * span);
        this.cosStage[span + j] = Math.cos((2 * Math.PI * j * step) / half);
        this.sinStage[span + j] = -Math.sin((2 * Math.PI * j * step) / half);
      }
    }
    this.cosFull = new Float64Array(half + 1);
    this.sinFull = new Float64Array(half + 1);
    for (let k = 0; k <= half; k++) {
      this.cosFull[k] = Math.cos((2 * Math.PI * k) / size);
      this.sinFull[k] = -Math.sin((2 * Math.PI * k) / size);
    }
    this.re = new Float64Array(half);
    this.im = new Float64Array(half);
  }

  /** The tables `transform` reads, for the native fbank (native/fbank.c runs the same steps). */
  tables(): {
    readonly bitReverse: Int32Array;
    readonly cosStage: Float64Array;
    readonly sinStage: Float64Array;
    readonly cosFull: Float64Array;
    readonly sinFull: Float64Array;
  } {
    return {
      bitReverse: this.bitReverse,
      cosStage: this.cosStage,
      sinStage: this.sinStage,
      cosFull: this.cosFull,
      sinFull: this.sinFull,
    };
  }

  /**
   * Spectrum of `input` (its first `size` samples; missing ones are 0). Writes bins 0..size/2 into
   * `outRe`/`outIm` (length ≥ size/2 + 1).
   */
  transform(input: ArrayLike<number>, outRe: Float64Array, outIm: Float64Array): void {
    const { half, re, im, bitReverse, cosStage, sinStage, cosFull, sinFull } = this;
    if (input.length >= this.size) {
      for (let i = 0; i < half; i++) {
        const r = bitReverse[i]!;
        re[r] = input[2 * i]!;
        im[r] = input[2 * i + 1]!;
      }
    } else {
      const n = input.length;
      for (let i = 0; i < half; i++) {
        const r = bitReverse[i]!;
        re[r] = 2 * i < n ? input[2 * i]! : 0;
        im[r] = 2 * i + 1 < n ? input[2 * i + 1]! : 0;
      }
    }
    if (half === 2) {
      const r0 = re[0]!;
      const i0 = im[0]!;
      re[0] = r0 + re[1]!;
      im[0] = i0 + im[1]!;
      re[1] = r0 - re[1]!;
      im[1] = i0 - im[1]!;
    }
    // Spans 1 and 2 together as one radix-4 step: their twiddles are 1 and −i (no multiplies).
    for (let a = 0; half >= 4 && a < half; a += 4) {
      const r0 = re[a]! + re[a + 1]!;
      const i0 = im[a]! + im[a + 1]!;
      const r1 = re[a]! - re[a + 1]!;
      const i1 = im[a]! - im[a + 1]!;
      const r2 = re[a + 2]! + re[a + 3]!;
      const i2 = im[a + 2]! + im[a + 3]!;
      const r3 = re[a + 2]! - re[a + 3]!;
      const i3 = im[a + 2]! - im[a + 3]!;
      re[a] = r0 + r2;
      im[a] = i0 + i2;
      re[a + 2] = r0 - r2;
      im[a + 2] = i0 - i2;
      // (r3 + i·i3)·(−i) = i3 − i·r3
      re[a + 1] = r1 + i3;
      im[a + 1] = i1 - r3;
      re[a + 3] = r1 - i3;
      im[a + 3] = i1 + r3;
    }
    // Two radix-2 stages (spans s and 2s) per pass: for each quartet x0..x3 at stride s, the span-s
    // butterflies use W² = e^{−2πi·j/(2s)} and the span-2s ones W = e^{−2πi·j/(4s)} and W·(−i).
    let span = 4;
    for (; span * 4 <= half; span *= 4) {
      for (let j = 0; j < span; j++) {
        const w2r = cosStage[span + j]!;
        const w2i = sinStage[span + j]!;
        const wr = cosStage[2 * span + j]!;
        const wi = sinStage[2 * span + j]!;
        for (let a0 = j; a0 < half; a0 += 4 * span) {
          const a1 = a0 + span;
          const a2 = a1 + span;
          const a3 = a2 + span;
          const x1r = re[a1]!;
          const x1i = im[a1]!;
          const t1r = x1r * w2r - x1i * w2i;
          const t1i = x1r * w2i + x1i * w2r;
          const x3r = re[a3]!;
          const x3i = im[a3]!;
          const t3r = x3r * w2r - x3i * w2i;
          const t3i = x3r * w2i + x3i * w2r;
          const x0r = re[a0]!;
          const x0i = im[a0]!;
          const x2r = re[a2]!;
          const x2i = im[a2]!;
          const b0r = x0r + t1r;
          const b0i = x0i + t1i;
          const b1r = x0r - t1r;
          const b1i = x0i - t1i;
          const b2r = x2r + t3r;
          const b2i = x2i + t3i;
          const b3r = x2r - t3r;
          const b3i = x2i - t3i;
          const ur = b2r * wr - b2i * wi;
          const ui = b2r * wi + b2i * wr;
          // W·(−i)·b3 = (W·b3)·(−i): (p + iq)(−i) = q − ip
          const pr = b3r * wr - b3i * wi;
          const pi = b3r * wi + b3i * wr;
          re[a0] = b0r + ur;
          im[a0] = b0i + ui;
          re[a2] = b0r - ur;
          im[a2] = b0i - ui;
          re[a1] = b1r + pi;
          im[a1] = b1i - pr;
          re[a3] = b1r - pi;
          im[a3] = b1i + pr;
        }
      }
    }
    for (; span < half; span *= 2) {
      for (let j = 0; j < span; j++) {
        const wr = cosStage[span + j]!;
        const wi = sinStage[span + j]!;
        for (let a = j; a < half; a += 2 * span) {
          const b = a + span;
          const xr = re[b]!;
          const xi = im[b]!;
          const br = xr * wr - xi * wi;
          const bi = xr * wi + xi * wr;
          const ar = re[a]!;
          const ai = im[a]!;
          re[b] = ar - br;
          im[b] = ai - bi;
          re[a] = ar + br;
          im[a] = ai + bi;
        }
      }
    }
    // Split: X[k] = E[k] + W^k·O[k], E = (Z[k] + conj Z[h−k])/2, O = (Z[k] − conj Z[h−k])/(2i).
    // Z[0] serves both k = 0 and k = half (Z is periodic in half).
    outRe[0] = re[0]! + im[0]!;
    outIm[0] = 0;
    outRe[half] = re[0]! - im[0]!;
    outIm[half] = 0;
    for (let k = 1; k < half; k++) {
      const zr = re[k]!;
      const zi = im[k]!;
      const cr = re[half - k]!;
      const ci = -im[half - k]!;
      const er = 0.5 * (zr + cr);
      const ei = 0.5 * (zi + ci);
      // (a + ib)/(2i) = (b − ia)/2 with a + ib = Z[k] − conj Z[h−k]
      const or = 0.5 * (zi - ci);
      const oi = -0.5 * (zr - cr);
      const wr = cosFull[k]!;
      const wi = sinFull[k]!;
      outRe[k] = er + wr * or - wi * oi;
      outIm[k] = ei + wr * oi + wi * or;
    }
  }

  /** `|X[k]|²` for k = 0..size/2 into `out`. */
  powerSpectrum(
    input: ArrayLike<number>,
    out: Float64Array,
    scratchRe?: Float64Array,
    scratchIm?: Float64Array,
  ): void {
    const re = scratchRe ?? new Float64Array(this.half + 1);
    const im = scratchIm ?? new Float64Array(this.half + 1);
    this.transform(input, re, im);
    for (let k = 0; k <= this.half; k++) out[k] = re[k]! * re[k]! + im[k]! * im[k]!;
  }
}
