import { describe, expect, it } from 'vitest';

import { readFileSync } from 'node:fs';

import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { goldenPath } from '@imagebind-llm/testing';
import sharp from 'sharp';

import { decodeImageRgb, type RgbImage } from './image-decode';
import {
  CLIP_MEAN,
  CLIP_STD,
  centerCropOffset,
  normalisationTables,
  preprocessImage,
  preprocessRgbImage,
  resizeAndCenterCrop,
  roundHalfEven,
  shortSideResizeSize,
  toNormalizedChw,
} from './image.preprocess';
import { pillowResizeBicubic } from './pillow-resize';

const PLANE = 224 * 224;

/** Undoes the normalisation: back to 0..1 pixel units. */
function pixelUnits(t: Float32Array, i: number): number {
  const c = Math.floor(i / PLANE);
  return t[i]! * CLIP_STD[c]! + CLIP_MEAN[c]!;
}

describe('resize size and crop offsets', () => {
  it('keeps the aspect with int() truncation', () => {
    expect(shortSideResizeSize(374, 249)).toEqual({ width: 336, height: 224 });
    expect(shortSideResizeSize(249, 374)).toEqual({ width: 224, height: 336 });
    expect(shortSideResizeSize(1, 1)).toEqual({ width: 224, height: 224 });
    expect(shortSideResizeSize(224, 224)).toEqual({ width: 224, height: 224 });
    expect(shortSideResizeSize(3, 10)).toEqual({ width: 224, height: 746 });
  });

  it('rounds crop offsets half to even, as Python round()', () => {
    expect([0.5, 1.5, 2.5, 3.5, 36.5, 37.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, 4, 36, 38, 2, 3]);
    expect(centerCropOffset(224 + 73, 224)).toBe(36);
    expect(centerCropOffset(224 + 75, 224)).toBe(38);
    expect(centerCropOffset(224 + 1, 224)).toBe(0);
    expect(centerCropOffset(224 + 3, 224)).toBe(2);
    expect(centerCropOffset(336, 224)).toBe(56);
    expect(centerCropOffset(224, 224)).toBe(0);
  });

  it('crops the resized image at the rounded offset', () => {
    // 300×100 → 672×224, slack 448 → left 224; 297×224 (unchanged height) → slack 73 → left 36.
    const data = new Uint8Array(297 * 224 * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251;
    const img: RgbImage = { width: 297, height: 224, channels: 3, data };
    const full = pillowResizeBicubic(img, 297, 224);
    const crop = resizeAndCenterCrop(img);
    expect(Array.from(crop.data.subarray(0, 9))).toEqual(Array.from(full.data.subarray(36 * 3, 39 * 3)));
    expect(Array.from(crop.data.subarray(0, 9))).toEqual(Array.from(data.subarray(36 * 3, 39 * 3)));
  });
});

describe('toNormalizedChw', () => {
  it('divides by 255 and applies the CLIP mean/std in float32, CHW', () => {
    const img: RgbImage = { width: 2, height: 1, channels: 3, data: Uint8Array.of(0, 128, 255, 255, 0, 64) };
    const t = toNormalizedChw(img);
    const f = Math.fround;
    const norm = (p: number, c: number): number => f(f(f(p / 255) - f(CLIP_MEAN[c]!)) / f(CLIP_STD[c]!));
    expect(Array.from(t)).toEqual([
      norm(0, 0),
      norm(255, 0),
      norm(128, 1),
      norm(0, 1),
      norm(255, 2),
      norm(64, 2),
    ]);
  });
});

describe('normalisationTables', () => {
  it('hold, for every byte value, the float32 that the step-by-step formula gives', () => {
    const f = Math.fround;
    for (const [mean, std] of [
      [CLIP_MEAN, CLIP_STD],
      [
        [0.5, 0.25, 0.1],
        [0.5, 0.3, 1.7],
      ],
    ] as const) {
      const tables = normalisationTables(mean, std);
      for (let c = 0; c < 3; c++) {
        const expected = Array.from({ length: 256 }, (_, p) => f(f(f(p / 255) - f(mean[c]!)) / f(std[c]!)));
        expect(Array.from(tables[c]!)).toEqual(expected);
      }
    }
  });
});

describe('preprocessRgbImage', () => {
  it('equals toNormalizedChw(resizeAndCenterCrop(img)) bit for bit (landscape, portrait, square, upscaled)', () => {
    let seed = 5;
    for (const [width, height] of [
      [374, 249],
      [249, 374],
      [224, 224],
      [224, 300],
      [300, 224],
      [31, 17],
      [1, 1],
    ] as const) {
      const data = Uint8Array.from({ length: width * height * 3 }, () => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return seed >>> 24;
      });
      const img: RgbImage = { width, height, channels: 3, data };
      const { tensor, shape } = preprocessRgbImage(img);
      expect(shape).toEqual([3, 224, 224]);
      const expected = toNormalizedChw(resizeAndCenterCrop(img));
      expect(Buffer.from(tensor.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    }
  });
});

describe('preprocessImage', () => {
  it('matches the official tensor for girl.jpg', async () => {
    const bytes = readFileSync(goldenPath('inputs', 'girl.jpg'));
    const expected = toFloat32(readNpy(goldenPath('expected', 'preprocess', 'image_girl.npy')));
    const { tensor, shape } = await preprocessImage(bytes);
    expect(shape).toEqual([3, 224, 224]);
    expect(tensor.length).toBe(expected.length);
    let maxPixelError = 0;
    let differing = 0;
    for (let i = 0; i < tensor.length; i++) {
      maxPixelError = Math.max(maxPixelError, Math.abs(pixelUnits(tensor, i) - pixelUnits(expected, i)));
      if (tensor[i] !== expected[i]) differing++;
    }
    expect(maxPixelError).toBeLessThanOrEqual(1 / 255);
    // Bit-exact today (sharp's libjpeg-turbo-family decoder and the Pillow resampler agree).
    expect(maxPixelError).toBe(0);
    expect(differing).toBe(0);
    // MODEL_SPEC §2.1 worked example.
    expect(tensor[0]).toBeCloseTo(1.93034, 4);
    expect(tensor[PLANE]).toBeCloseTo(1.9098, 4);
    expect(tensor[2 * PLANE]).toBeCloseTo(1.76196, 4);
    expect(tensor[112 * 224 + 112]).toBeCloseTo(-0.30322, 4);
  });

  it('upsizes a 1×1 image to a constant 224×224 tensor', async () => {
    const bytes = await sharp(Uint8Array.of(200, 100, 50), { raw: { width: 1, height: 1, channels: 3 } })
      .png()
      .toBuffer();
    const { tensor } = await preprocessImage(bytes);
    const one = toNormalizedChw({ width: 1, height: 1, channels: 3, data: Uint8Array.of(200, 100, 50) });
    for (let c = 0; c < 3; c++) {
      expect(new Set(tensor.subarray(c * PLANE, (c + 1) * PLANE))).toEqual(new Set([one[c]]));
    }
  });

  it('handles portrait and very thin images without materialising the full resize', async () => {
    const thin: RgbImage = { width: 1, height: 5000, channels: 3, data: new Uint8Array(5000 * 3).fill(17) };
    const { tensor } = preprocessRgbImage(thin); // full resize would be 224 × 1 120 000
    expect(tensor.length).toBe(3 * PLANE);
    expect(new Set(tensor.subarray(0, PLANE)).size).toBe(1);
    const portrait = await decodeImageRgb(
      await sharp(readFileSync(goldenPath('inputs', 'girl.jpg')))
        .rotate(90)
        .png()
        .toBuffer(),
    );
    expect([portrait.width, portrait.height]).toEqual([249, 374]);
    expect(preprocessRgbImage(portrait).shape).toEqual([3, 224, 224]);
  });
});
