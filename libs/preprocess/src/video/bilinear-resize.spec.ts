import { describe, expect, it } from 'vitest';

import { CLIP_MEAN, CLIP_STD } from '../image/image.preprocess';
import { linearAxis, resizeBilinearPlane, shortSideScaleSize } from './bilinear-resize';
import { spatialCropOffsets, videoFrameScaler } from './video.preprocess';

describe('linearAxis (torch bilinear, align_corners=False)', () => {
  it('upsamples 2 → 4 as torch does: [0, 0.25, 0.75, 1]', () => {
    const axis = linearAxis(2, 4);
    const out = new Float32Array(4);
    resizeBilinearPlane(Float32Array.from([0, 1]), 2, 1, linearAxis(1, 1), axis, out);
    expect([...out]).toEqual([0, 0.25, 0.75, 1]);
  });

  it('downsamples without antialiasing: 4 → 2 averages the two middle taps only', () => {
    // src = 2·(i + 0.5) − 0.5 = 0.5, 2.5: each output blends two neighbours, nothing wider.
    const out = new Float32Array(2);
    resizeBilinearPlane(Float32Array.from([0, 10, 20, 30]), 4, 1, linearAxis(1, 1), linearAxis(4, 2), out);
    expect([...out]).toEqual([5, 25]);
  });

  it('clamps the source index at both ends and is the identity when sizes match', () => {
    const up = linearAxis(3, 7);
    expect(up.i0[0]).toBe(0);
    expect(up.w1[0]).toBe(0);
    expect(up.i1[6]).toBe(2);
    const same = linearAxis(5, 5);
    expect([...same.i0]).toEqual([0, 1, 2, 3, 4]);
    expect([...same.w0]).toEqual([1, 1, 1, 1, 1]);
  });

  it('scales a 2-D plane separably (height outer, width inner)', () => {
    const plane = Float32Array.from([0, 1, 2, 3]); // 2×2
    const out = new Float32Array(16);
    resizeBilinearPlane(plane, 2, 2, linearAxis(2, 4), linearAxis(2, 4), out);
    expect(out[0]).toBe(0);
    expect(out[15]).toBe(3);
    expect(out[5]).toBeCloseTo(0.25 * 2 + 0.25, 6); // row 0.25, column 0.25
  });
});

describe('shortSideScaleSize and spatialCropOffsets (MODEL_SPEC §2.2 steps 6, 8; B9)', () => {
  it('floors the long side', () => {
    expect(shortSideScaleSize(320, 240, 224)).toEqual({ width: 298, height: 224 });
    expect(shortSideScaleSize(240, 320, 224)).toEqual({ width: 224, height: 298 });
    expect(shortSideScaleSize(100, 100, 224)).toEqual({ width: 224, height: 224 });
  });

  it('crops left/centre/right for landscape and top/centre/bottom for portrait, ceil centre', () => {
    expect(spatialCropOffsets(298, 224)).toEqual([
      [0, 0],
      [37, 0],
      [74, 0],
    ]);
    expect(spatialCropOffsets(224, 299)).toEqual([
      [0, 0],
      [0, 38],
      [0, 75],
    ]);
    expect(spatialCropOffsets(224, 224)).toEqual([
      [0, 0],
      [0, 0],
      [0, 0],
    ]);
  });
});

describe('videoFrameScaler (MODEL_SPEC §2.2 steps 5–7, fused)', () => {
  /** The steps one at a time: p/255 plane per channel, torch bilinear, then (x − mean)/std. */
  function plainFormula(rgb: Uint8Array, width: number, height: number): Float32Array[] {
    const scaled = shortSideScaleSize(width, height, 224);
    const rows = linearAxis(height, scaled.height);
    const cols = linearAxis(width, scaled.width);
    return [0, 1, 2].map((c) => {
      const plane = new Float32Array(width * height);
      for (let i = 0; i < plane.length; i++) plane[i] = Math.fround(rgb[i * 3 + c]! / 255);
      const out = new Float32Array(scaled.width * scaled.height);
      resizeBilinearPlane(plane, width, height, rows, cols, out);
      const m = Math.fround(CLIP_MEAN[c]!);
      const s = Math.fround(CLIP_STD[c]!);
      for (let i = 0; i < out.length; i++) out[i] = Math.fround(Math.fround(out[i]! - m) / s);
      return out;
    });
  }

  it.each([
    [320, 240], // the golden landscape: 240 → 224 rows, rows shared by neighbouring outputs
    [240, 320], // portrait
    [61, 37], // upscaled, odd sizes
    [1000, 226], // barely downscaled rows, strongly downscaled columns
  ])('gives bit-identical planes to the step-by-step formula for %i×%i', (width, height) => {
    let seed = width * 7919 + height;
    const rgb = Uint8Array.from({ length: width * height * 3 }, () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 24;
    });
    const scale = videoFrameScaler(width, height, shortSideScaleSize(width, height, 224));
    const expected = plainFormula(rgb, width, height);
    // Twice: the scratch rows are reused from frame to frame.
    for (const planes of [scale(rgb), scale(rgb)]) {
      expect(planes).toHaveLength(3);
      planes.forEach((plane, c) => {
        expect(Buffer.from(plane.buffer).equals(Buffer.from(expected[c]!.buffer))).toBe(true);
      });
    }
  });

  it('refuses a frame of another size', () => {
    const scale = videoFrameScaler(4, 4, shortSideScaleSize(4, 4, 224));
    expect(() => scale(new Uint8Array(4 * 4 * 3 - 1))).toThrow(RangeError);
  });
});
