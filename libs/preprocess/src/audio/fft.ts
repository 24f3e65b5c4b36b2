/**
 * Radix-2 real FFT in float64. A real signal of length N is packed into a complex signal of length
 * N/2 (even samples real, odd samples imaginary), transformed with an iterative radix-2
 * decimation-in-time FFT, then split into the N/2 + 1 bins of the real spectrum.
 */
export class RealFft {
  readonly size: number;
  private readonly half: number;
  private readonly bitReverse: Uint32Array;
  /** Twiddles for the half-size complex FFT: e^{−2πi·j/half}, j < half/2. */
  private readonly cosHalf: Float64Array;
  private readonly sinHalf: Float64Array;
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
    this.bitReverse = new Uint32Array(half);
    for (let i = 0; i < half; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.bitReverse[i] = r;
    }
    this.cosHalf = new Float64Array(half / 2);
    this.sinHalf = new Float64Array(half / 2);
    for (let j = 0; j < half / 2; j++) {
      this.cosHalf[j] = Math.cos((2 * Math.PI * j) / half);
      this.sinHalf[j] = -Math.sin((2 * Math.PI * j) / half);
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

  /**
   * Spectrum of `input` (its first `size` samples; missing ones are 0). Writes bins 0..size/2 into
   * `outRe`/`outIm` (length ≥ size/2 + 1).
   */
  transform(input: ArrayLike<number>, outRe: Float64Array, outIm: Float64Array): void {
    const { half, re, im, bitReverse } = this;
    const n = Math.min(input.length, this.size);
    for (let i = 0; i < half; i++) {
      const r = bitReverse[i]!;
      re[r] = 2 * i < n ? input[2 * i]! : 0;
      im[r] = 2 * i + 1 < n ? input[2 * i + 1]! : 0;
    }
    for (let span = 1; span < half; span *= 2) {
      const step = half / (2 * span);
      for (let blockStart = 0; blockStart < half; blockStart += 2 * span) {
        for (let j = 0; j < span; j++) {
          const wr = this.cosHalf[j * step]!;
          const wi = this.sinHalf[j * step]!;
          const a = blockStart + j;
          const b = a + span;
          const br = re[b]! * wr - im[b]! * wi;
          const bi = re[b]! * wi + im[b]! * wr;
          re[b] = re[a]! - br;
          im[b] = im[a]! - bi;
          re[a] = re[a]! + br;
          im[a] = im[a]! + bi;
        }
      }
    }
    // Split: X[k] = E[k] + W^k·O[k], E = (Z[k] + conj Z[h−k])/2, O = (Z[k] − conj Z[h−k])/(2i).
    for (let k = 0; k <= half; k++) {
      const zr = re[k % half]!;
      const zi = im[k % half]!;
      const cr = re[(half - k) % half]!;
      const ci = -im[(half - k) % half]!;
      const er = 0.5 * (zr + cr);
      const ei = 0.5 * (zi + ci);
      // (a + ib)/(2i) = (b − ia)/2 with a + ib = Z[k] − conj Z[h−k]
      const or = 0.5 * (zi - ci);
      const oi = -0.5 * (zr - cr);
      const wr = this.cosFull[k]!;
      const wi = this.sinFull[k]!;
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
