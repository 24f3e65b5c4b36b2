import { describe, expect, it } from 'vitest';

import {
  cachedSincResampleKernel,
  gcd,
  resampledLength,
  resampledSum,
  resampleSinc,
  sincResampleKernel,
} from './sinc-resample';

function sine(freq: number, rate: number, length: number, amplitude = 0.5): Float32Array {
  return Float32Array.from({ length }, (_, i) => amplitude * Math.sin((2 * Math.PI * freq * i) / rate));
}

/** Least-squares amplitude and phase of a sinusoid of known frequency over x[from..to). */
function fitSine(
  x: Float32Array,
  freq: number,
  rate: number,
  from: number,
  to: number,
): { amplitude: number; residual: number } {
  let ss = 0;
  let sc = 0;
  let cc = 0;
  let xs = 0;
  let xc = 0;
  for (let i = from; i < to; i++) {
    const s = Math.sin((2 * Math.PI * freq * i) / rate);
    const c = Math.cos((2 * Math.PI * freq * i) / rate);
    ss += s * s;
    sc += s * c;
    cc += c * c;
    xs += x[i]! * s;
    xc += x[i]! * c;
  }
  const det = ss * cc - sc * sc;
  const a = (xs * cc - xc * sc) / det;
  const b = (xc * ss - xs * sc) / det;
  let residual = 0;
  for (let i = from; i < to; i++) {
    const model =
      a * Math.sin((2 * Math.PI * freq * i) / rate) + b * Math.cos((2 * Math.PI * freq * i) / rate);
    residual = Math.max(residual, Math.abs(x[i]! - model));
  }
  return { amplitude: Math.hypot(a, b), residual };
}

describe('sinc resampling (torchaudio.functional.resample defaults)', () => {
  it('reduces the rates by their gcd and sizes the kernel as MODEL_SPEC §2.3 works out for 22050 Hz', () => {
    expect(gcd(22050, 16000)).toBe(50);
    const k = sincResampleKernel(22050, 16000);
    expect(k.orig).toBe(441);
    expect(k.phases).toBe(320);
    expect(k.width).toBe(9);
    // torch's kernel has 2·width + o = 459 taps per phase; only the window's ≤ 2·width + 3 are kept.
    expect(2 * k.width + k.orig).toBe(459);
    expect(k.tapsPerPhase).toBe(21);
    // Phase 0 is centred on tap `width`: the centre tap is sinc(0)·cos(0)²·base/o = 0.99·320/441.
    const centre = k.taps[0 * k.tapsPerPhase + (k.width - k.firstTap[0]!)]!;
    expect(centre).toBe(Math.fround(Math.fround((320 * 0.99) / 441)));
    // The kept taps of every phase sum to ≈ 1 (unit DC gain) within the passband ripple.
    for (let p = 0; p < k.phases; p += 37) {
      let sum = 0;
      for (let j = 0; j < k.tapsPerPhase; j++) sum += k.taps[p * k.tapsPerPhase + j]!;
      expect(Math.abs(sum - 1)).toBeLessThan(2e-3);
    }
  });

  it('output length is ceil(new·N/orig) with reduced rates (girl_bgm: 382500 → 277552)', () => {
    expect(resampledLength(382500, 22050, 16000)).toBe(277552);
    expect(resampledLength(1, 22050, 16000)).toBe(1);
    expect(resampledLength(441, 22050, 16000)).toBe(320);
    expect(resampledLength(442, 22050, 16000)).toBe(321);
    expect(resampledLength(100, 8000, 16000)).toBe(200);
    expect(resampledLength(100, 16000, 16000)).toBe(100);
    expect(resampleSinc(new Float32Array(382500), 22050, 16000)).toHaveLength(277552);
  });

  it('keeps a 1 kHz sine at its amplitude and frequency when downsampling 22050 → 16000', () => {
    const x = sine(1000, 22050, 22050);
    const y = resampleSinc(x, 22050, 16000);
    expect(y).toHaveLength(16000);
    const fit = fitSine(y, 1000, 16000, 200, 15800); // away from the zero-padded edges
    expect(Math.abs(fit.amplitude - 0.5)).toBeLessThan(5e-4);
    expect(fit.residual).toBeLessThan(2e-3);
  });

  it('removes a tone well above the new Nyquist (10 kHz at 44.1 kHz → 16 kHz)', () => {
    const y = resampleSinc(sine(10000, 44100, 44100), 44100, 16000);
    let peak = 0;
    for (let i = 200; i < y.length - 200; i++) peak = Math.max(peak, Math.abs(y[i]!));
    // The Hann-windowed sinc (6 zero crossings) leaves 2.7e-3 of the 0.5 amplitude at 10 kHz.
    expect(peak).toBeLessThan(5e-3);
  });

  it('upsamples 8 kHz → 16 kHz keeping the sine', () => {
    const y = resampleSinc(sine(440, 8000, 8000, 0.8), 8000, 16000);
    expect(y).toHaveLength(16000);
    const fit = fitSine(y, 440, 16000, 200, 15800);
    expect(Math.abs(fit.amplitude - 0.8)).toBeLessThan(1e-3);
    expect(fit.residual).toBeLessThan(3e-3);
  });

  it('an output range equals the same slice of the full output', () => {
    const x = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i * 0.37) * Math.cos(i * 0.011));
    for (const [from, to] of [
      [44100, 16000],
      [22050, 16000],
      [11025, 16000],
      [48000, 16000],
    ] as const) {
      const full = resampleSinc(x, from, to);
      const start = 123;
      const end = full.length - 77;
      expect(Array.from(resampleSinc(x, from, to, { start, end }))).toEqual(
        Array.from(full.subarray(start, end)),
      );
    }
  });

  it('same rate is the identity; coprime rates keep only the window taps per phase', () => {
    const x = Float32Array.from([0.1, -0.2, 0.3]);
    expect(Array.from(resampleSinc(x, 16000, 16000))).toEqual(Array.from(x));
    const k = sincResampleKernel(44101, 16000); // gcd 1: 16000 phases
    expect(k.phases).toBe(16000);
    expect(k.tapsPerPhase).toBe(2 * k.width + 3);
    expect(() => sincResampleKernel(0, 16000)).toThrow(RangeError);
  });
});

describe('clip-range helpers', () => {
  const x = Float32Array.from({ length: 7000 }, (_, i) => Math.sin(i * 0.37) * Math.cos(i * 0.011) + 0.2);

  it('resampledSum equals the sum of the resampled range (blocks through column sums)', () => {
    for (const [from, to] of [
      [22050, 16000],
      [44100, 16000],
      [48000, 16000],
      [8000, 16000],
      [16000, 16000],
    ] as const) {
      const full = resampleSinc(x, from, to);
      // Whole output, a range inside one block, ranges crossing the zero-padded edges.
      for (const [start, end] of [
        [0, full.length],
        [5, 17],
        [311, full.length - 3],
        [0, 1000],
      ] as const) {
        let expected = 0;
        for (let i = start; i < end; i++) expected += full[i]!;
        const sum = resampledSum(x, from, to, { start, end });
        // The float32 rounding of each output is the only difference: ≤ ~6e-8 per sample.
        expect(Math.abs(sum - expected)).toBeLessThan(1e-7 * (end - start) + 1e-12);
      }
    }
  });

  it('live taps are the stored taps with |τ| < 6, the rest ~1e-23 (22050 → 16000)', () => {
    const k = sincResampleKernel(22050, 16000);
    for (let p = 0; p < k.phases; p++) {
      const lo = k.liveFirst[p]!;
      const hi = lo + k.liveTaps[p]!;
      expect(k.liveTaps[p]).toBeGreaterThanOrEqual(16);
      for (let j = 0; j < k.tapsPerPhase; j++) {
        const v = Math.abs(k.taps[p * k.tapsPerPhase + j]!);
        if (j < lo || j >= hi) expect(v).toBeLessThan(1e-20);
      }
    }
    expect(cachedSincResampleKernel(22050, 16000)).toBe(cachedSincResampleKernel(22050, 16000));
  });
});
