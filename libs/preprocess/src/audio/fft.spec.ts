import { describe, expect, it } from 'vitest';

import { RealFft } from './fft';

function naiveDft(x: ArrayLike<number>, n: number): { re: number[]; im: number[] } {
  const re: number[] = [];
  const im: number[] = [];
  for (let k = 0; k <= n / 2; k++) {
    let r = 0;
    let i = 0;
    for (let t = 0; t < Math.min(n, x.length); t++) {
      r += x[t]! * Math.cos((2 * Math.PI * k * t) / n);
      i -= x[t]! * Math.sin((2 * Math.PI * k * t) / n);
    }
    re.push(r);
    im.push(i);
  }
  return { re, im };
}

describe('RealFft', () => {
  it.each([4, 8, 64, 512])('matches a direct DFT at size %i', (n) => {
    const x = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 1.7) + 0.3 * Math.cos(i * 0.2) - 0.1);
    const fft = new RealFft(n);
    const re = new Float64Array(n / 2 + 1);
    const im = new Float64Array(n / 2 + 1);
    fft.transform(x, re, im);
    const ref = naiveDft(x, n);
    for (let k = 0; k <= n / 2; k++) {
      expect(Math.abs(re[k]! - ref.re[k]!)).toBeLessThan(1e-9 * n);
      expect(Math.abs(im[k]! - ref.im[k]!)).toBeLessThan(1e-9 * n);
    }
  });

  it('zero-pads a shorter input (400-sample frame in a 512-point FFT)', () => {
    const x = Float32Array.from({ length: 400 }, (_, i) => Math.cos(i * 0.05));
    const power = new Float64Array(257);
    new RealFft(512).powerSpectrum(x, power);
    const ref = naiveDft(x, 512);
    for (let k = 0; k <= 256; k++) {
      const expected = ref.re[k]! ** 2 + ref.im[k]! ** 2;
      expect(Math.abs(power[k]! - expected)).toBeLessThan(1e-8 * Math.max(1, expected));
    }
  });

  it('puts a bin-centred cosine in its bin and nowhere else', () => {
    const n = 512;
    const x = Float64Array.from({ length: n }, (_, i) => Math.cos((2 * Math.PI * 32 * i) / n));
    const power = new Float64Array(n / 2 + 1);
    new RealFft(n).powerSpectrum(x, power);
    expect(power[32]).toBeCloseTo((n / 2) ** 2, 6);
    expect(power[31]! + power[33]!).toBeLessThan(1e-12);
  });

  it('rejects sizes that are not powers of two', () => {
    expect(() => new RealFft(400)).toThrow(RangeError);
  });
});
