import { describe, expect, it } from 'vitest';

import {
  axisCoefficients,
  bicubicKernel,
  pillowResizeBicubic,
  pillowResizeBicubicToPlanes,
  type PixelImage,
  type Region,
} from './pillow-resize';

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

/**
 * MODEL_SPEC §2.1 step 2 written the plain way, to check the optimised passes against: one axis of
 * the full-size resize, each output `clamp(floor((2^21 + Σ k·p) / 2^22), 0, 255)` in doubles.
 */
function referencePass(img: PixelImage, outSize: number, horizontal: boolean): PixelImage {
  const { width, height, channels: c, data } = img;
  const outW = horizontal ? outSize : width;
  const outH = horizontal ? height : outSize;
  const { taps, start, length, weights } = axisCoefficients(horizontal ? width : height, outSize);
  const out = new Uint8Array(outW * outH * c);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const i = horizontal ? x : y;
      for (let ch = 0; ch < c; ch++) {
        let acc = 2 ** 21;
        for (let j = 0; j < length[i]!; j++) {
          const [sx, sy] = horizontal ? [start[i]! + j, y] : [x, start[i]! + j];
          acc += data[(sy * width + sx) * c + ch]! * weights[i * taps + j]!;
        }
        out[(y * outW + x) * c + ch] = Math.min(255, Math.max(0, Math.floor(acc / 2 ** 22)));
      }
    }
  }
  return { width: outW, height: outH, channels: c, data: out };
}

/** The full resize (horizontal pass first, each pass only when its size changes), then the crop. */
function referenceResize(img: PixelImage, outWidth: number, outHeight: number, region: Region): Uint8Array {
  let full = img;
  if (outWidth !== full.width) full = referencePass(full, outWidth, true);
  if (outHeight !== full.height) full = referencePass(full, outHeight, false);
  const c = img.channels;
  const out = new Uint8Array(region.width * region.height * c);
  for (let y = 0; y < region.height; y++) {
    const from = ((region.top + y) * outWidth + region.left) * c;
    out.set(full.data.subarray(from, from + region.width * c), y * region.width * c);
  }
  return out;
}

describe('pillowResizeBicubic against the plain formula', () => {
  /** Deterministic small integers (xorshift32). */
  function picker(seed: number): (n: number) => number {
    let s = seed;
    return (n) => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s % n;
    };
  }

  it('agrees byte for byte on random sizes, channel counts, regions and contents', () => {
    const pick = picker(7);
    let compared = 0;
    for (let t = 0; t < 300; t++) {
      const c = [1, 2, 3, 3, 4][pick(5)]!;
      const width = 1 + pick(48);
      const height = 1 + pick(48);
      // Noise, hard 0/255 edges (overshoot clamped at both ends) or a smooth ramp.
      const kind = pick(3);
      const data =
        kind === 0
          ? noise(width * height * c, t + 1)
          : Uint8Array.from({ length: width * height * c }, (_, i) =>
              kind === 1 ? (pick(2) ? 255 : 0) : (i * 7) & 255,
            );
      const img: PixelImage = { width, height, channels: c, data };
      // A quarter of the axes keep their size (that pass is skipped, as Pillow skips it).
      const outWidth = pick(4) === 0 ? width : 1 + pick(120);
      const outHeight = pick(4) === 0 ? height : 1 + pick(120);
      const left = pick(outWidth);
      const top = pick(outHeight);
      const region = { left, top, width: 1 + pick(outWidth - left), height: 1 + pick(outHeight - top) };
      const got = pillowResizeBicubic(img, outWidth, outHeight, region);
      expect([got.width, got.height, got.channels]).toEqual([region.width, region.height, c]);
      expect(Buffer.from(got.data).equals(referenceResize(img, outWidth, outHeight, region))).toBe(true);
      compared++;
    }
    expect(compared).toBe(300);
  });

  it('gives the same bytes when called again (cached coefficient tables are only read)', () => {
    const img: PixelImage = { width: 374, height: 249, channels: 3, data: noise(374 * 249 * 3, 9) };
    const region = { left: 56, top: 0, width: 224, height: 224 };
    const first = pillowResizeBicubic(img, 336, 224, region).data;
    expect(Buffer.from(first).equals(referenceResize(img, 336, 224, region))).toBe(true);
    expect(Buffer.from(pillowResizeBicubic(img, 336, 224, region).data).equals(first)).toBe(true);
  });
});

describe('pillowResizeBicubicToPlanes', () => {
  /** Distinct values per channel and byte, so a wrong channel, byte or position shows. */
  const tables = [0, 1, 2, 3].map((ch) => Float32Array.from({ length: 256 }, (_, v) => ch * 1000 + v + 0.25));

  it('is the byte resize mapped through the tables, planar, with and without each pass', () => {
    for (const c of [1, 3, 4]) {
      const img: PixelImage = { width: 37, height: 23, channels: c, data: noise(37 * 23 * c, c) };
      for (const [outWidth, outHeight, region] of [
        [61, 40, { left: 3, top: 5, width: 50, height: 30 }],
        [37, 40, { left: 2, top: 1, width: 30, height: 33 }],
        [20, 23, { left: 1, top: 4, width: 15, height: 12 }],
        [37, 23, { left: 6, top: 2, width: 20, height: 9 }],
      ] as const) {
        const bytes = pillowResizeBicubic(img, outWidth, outHeight, region).data;
        const planes = pillowResizeBicubicToPlanes(img, outWidth, outHeight, region, tables.slice(0, c));
        const plane = region.width * region.height;
        expect(planes.length).toBe(plane * c);
        const expected = new Float32Array(plane * c);
        for (let i = 0; i < plane; i++) {
          for (let ch = 0; ch < c; ch++) expected[ch * plane + i] = tables[ch]![bytes[i * c + ch]!]!;
        }
        expect(Array.from(planes)).toEqual(Array.from(expected));
      }
    }
  });

  it('wants one 256-entry table per channel', () => {
    const img = grey(4, 4, () => 1);
    const region = { left: 0, top: 0, width: 2, height: 2 };
    expect(() => pillowResizeBicubicToPlanes(img, 2, 2, region, [])).toThrow(RangeError);
    expect(() => pillowResizeBicubicToPlanes(img, 2, 2, region, [new Float32Array(255)])).toThrow(RangeError);
  });
});
