import { describe, expect, it } from 'vitest';

import { axisCoefficients, bicubicKernel, pillowResizeBicubic, type PixelImage } from './pillow-resize';

function grey(width: number, height: number, fill: (x: number, y: number) => number): PixelImage {
  const data = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data[y * width + x] = fill(x, y);
  return { width, height, channels: 1, data };
}

function row(values: number[]): PixelImage {
  return { width: values.length, height: 1, channels: 1, data: Uint8Array.from(values) };
}

/** Deterministic pseudo-random bytes (xorshift32). */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
}

describe('bicubicKernel (a = −0.5)', () => {
  it('has the known values', () => {
    expect(bicubicKernel(0)).toBe(1);
    expect(Math.abs(bicubicKernel(1))).toBe(0);
    expect(Math.abs(bicubicKernel(-1))).toBe(0);
    expect(bicubicKernel(2)).toBe(0);
    expect(bicubicKernel(3)).toBe(0);
    expect(bicubicKernel(0.5)).toBe(0.5625);
    expect(bicubicKernel(-0.5)).toBe(0.5625);
    expect(bicubicKernel(1.5)).toBe(-0.0625);
    expect(bicubicKernel(0.25)).toBe(0.8671875);
    expect(bicubicKernel(1.75)).toBe(-0.0234375);
  });
});

describe('axisCoefficients', () => {
  it('quantised weights sum to 2^22 (within rounding) and stay inside the input', () => {
    for (const [nin, nout] of [
      [374, 336],
      [249, 224],
      [1, 224],
      [3, 7],
      [1000, 224],
    ] as const) {
      const { taps, start, length, weights } = axisCoefficients(nin, nout);
      for (let i = 0; i < nout; i++) {
        const s = start[i]!;
        const n = length[i]!;
        expect(s).toBeGreaterThanOrEqual(0);
        expect(s + n).toBeLessThanOrEqual(nin);
        expect(n).toBeLessThanOrEqual(taps);
        let sum = 0;
        for (let j = 0; j < n; j++) sum += weights[i * taps + j]!;
        expect(Math.abs(sum - 2 ** 22)).toBeLessThanOrEqual(n);
      }
    }
  });

  it('is the identity when the size is unchanged', () => {
    const { taps, start, length, weights } = axisCoefficients(5, 5);
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < length[i]!; j++) {
        expect(weights[i * taps + j]).toBe(start[i]! + j === i ? 2 ** 22 : 0);
      }
    }
  });

  it('rejects bad sizes and ranges', () => {
    expect(() => axisCoefficients(0, 4)).toThrow(RangeError);
    expect(() => axisCoefficients(4, 0)).toThrow(RangeError);
    expect(() => axisCoefficients(4, 4, 2, 3)).toThrow(RangeError);
  });
});

describe('pillowResizeBicubic', () => {
  it('keeps a constant image constant, up and down, including 1×1', () => {
    for (const [w, h, ow, oh] of [
      [37, 23, 224, 138],
      [374, 249, 336, 224],
      [1, 1, 224, 224],
      [2, 900, 224, 100800],
    ] as const) {
      const img: PixelImage = { width: w, height: h, channels: 3, data: new Uint8Array(w * h * 3).fill(0) };
      for (let i = 0; i < img.data.length; i += 3) img.data.set([7, 128, 251], i);
      const region = {
        left: 0,
        top: Math.max(0, Math.floor((oh - 224) / 2)),
        width: ow,
        height: Math.min(oh, 224),
      };
      const out = pillowResizeBicubic(img, ow, oh, region);
      expect(out.width).toBe(ow);
      expect(out.height).toBe(region.height);
      let wrong = 0;
      for (let i = 0; i < out.data.length; i += 3) {
        if (out.data[i] !== 7 || out.data[i + 1] !== 128 || out.data[i + 2] !== 251) wrong++;
      }
      expect(wrong).toBe(0);
    }
  });

  it('downscales 1-pixel stripes by 2 as Pillow does (asymmetric window included)', () => {
    const stripes = row(Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? 0 : 255)));
    expect(Array.from(pillowResizeBicubic(stripes, 8, 1).data)).toEqual([
      109, 129, 128, 128, 128, 128, 126, 146,
    ]);
  });

  it('downscales a box by 2 and upscales with overshoot clamped', () => {
    const box = row([0, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0]);
    expect(Array.from(pillowResizeBicubic(box, 6, 1).data)).toEqual([0, 17, 241, 241, 17, 0]);
    expect(Array.from(pillowResizeBicubic(row([10, 200, 30]), 7, 1).data)).toEqual([
      0, 29, 128, 200, 138, 48, 14,
    ]);
  });

  it('treats the axes independently (vertical equals the transposed horizontal)', () => {
    const values = [0, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0];
    const column: PixelImage = { width: 1, height: 12, channels: 1, data: Uint8Array.from(values) };
    expect(Array.from(pillowResizeBicubic(column, 1, 6).data)).toEqual([0, 17, 241, 241, 17, 0]);
  });

  it('computes a region equal to the same crop of the full resize', () => {
    const img: PixelImage = { width: 53, height: 31, channels: 3, data: noise(53 * 31 * 3, 42) };
    for (const [ow, oh] of [
      [40, 23],
      [120, 70],
      [53, 200],
      [200, 31],
    ] as const) {
      const full = pillowResizeBicubic(img, ow, oh);
      const region = { left: 5, top: 3, width: ow - 9, height: oh - 7 };
      const part = pillowResizeBicubic(img, ow, oh, region);
      for (let y = 0; y < region.height; y++) {
        const a = part.data.subarray(y * region.width * 3, (y + 1) * region.width * 3);
        const from = ((y + region.top) * ow + region.left) * 3;
        expect(Array.from(a)).toEqual(Array.from(full.data.subarray(from, from + region.width * 3)));
      }
    }
  });

  it('returns the input unchanged when the size is unchanged', () => {
    const img = grey(9, 4, (x, y) => x * 20 + y);
    expect(Array.from(pillowResizeBicubic(img, 9, 4).data)).toEqual(Array.from(img.data));
  });

  it('rejects inconsistent images and regions', () => {
    const img = grey(4, 4, () => 1);
    expect(() => pillowResizeBicubic({ ...img, data: new Uint8Array(3) }, 2, 2)).toThrow(RangeError);
    expect(() => pillowResizeBicubic(img, 0, 2)).toThrow(RangeError);
    expect(() => pillowResizeBicubic(img, 2, 2, { left: 1, top: 0, width: 2, height: 2 })).toThrow(
      RangeError,
    );
  });
});
