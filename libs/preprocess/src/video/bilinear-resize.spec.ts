import { describe, expect, it } from 'vitest';

import { linearAxis, resizeBilinearPlane, shortSideScaleSize } from './bilinear-resize';
import { spatialCropOffsets } from './video.preprocess';

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
