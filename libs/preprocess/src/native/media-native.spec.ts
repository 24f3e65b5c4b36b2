import { afterEach, describe, expect, it } from 'vitest';

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { goldenPath } from '@imagebind-llm/testing';
import sharp from 'sharp';

import { decodeImageRgb, type RgbImage } from '../image/image-decode';
import { preprocessImage, preprocessRgbImage } from '../image/image.preprocess';
import { kaldiFbank } from '../audio/kaldi-fbank';
import { resampledLength, resampleSinc } from '../audio/sinc-resample';
import { groupPointCloud } from '../point/group';
import { ScratchBuffer } from '../reusable-buffers';
import { mediaNative, mediaNativeStatus, setMediaNativeEnabled, type ResizeKernel } from './media-native';

const KERNELS: readonly ResizeKernel[] = ['c', 'sse4.1', 'avx2'];
/** The built module (npm run build), loaded in child processes with their own environment. */
const MEDIA_NATIVE_MODULE = join(__dirname, '..', '..', 'dist', 'native', 'media-native.js');

/**
 * The ibllm_media addon against the portable path (sharp + TypeScript) and the golden tensor:
 * the addon must change nothing but the speed. `npm run build` builds it (gcc, libjpeg62-turbo-dev
 * and FFmpeg's -dev packages; the CI installs them); a checkout built without them fails the first
 * test here, by design, rather than skipping the comparisons.
 */

afterEach(() => setMediaNativeEnabled(true));

/** Runs `body` with the addon off, then on; both results. */
async function bothPaths<T>(body: () => Promise<T> | T): Promise<{ portable: T; native: T }> {
  setMediaNativeEnabled(false);
  const portable = await body();
  setMediaNativeEnabled(true);
  const native = await body();
  return { portable, native };
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Smooth content with noise, so JPEG's quantisation and upsampling both have work to do. */
function photoLike(width: number, height: number, seed: number): Uint8Array {
  const rnd = seeded(seed);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        const wave = 128 + 100 * Math.sin((x * (c + 1)) / 13 + y / (7 + c));
        data[(y * width + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(wave + 40 * (rnd() - 0.5))));
      }
    }
  }
  return data;
}

describe('ibllm_media addon', () => {
  it('is built and loads, with video', () => {
    const status = mediaNativeStatus();
    expect(status, `ibllm_media: ${status.reason ?? ''}`).toMatchObject({
      image: true,
      video: true,
      audio: true,
      point: true,
    });
    // The best loops the CPU has: every x86-64 CI and server CPU has SSE4.1.
    const expected = process.arch === 'x64' ? ['sse4.1', 'avx2'] : ['c'];
    expect(expected).toContain(status.resizeKernel);
    // glibc (Debian): the allocator thresholds are set (this run sets no MALLOC_* variables)...
    expect(status.allocatorTuned).toBe(process.platform === 'linux');
  });

  it("leaves glibc's allocator alone where the operator set its variables", () => {
    const statusIn = (variables: Record<string, string>): { allocatorTuned?: boolean } => {
      const script =
        'const p = require(process.argv[1]); process.stdout.write(JSON.stringify(p.mediaNativeStatus()))';
      const out = execFileSync(process.execPath, ['-e', script, MEDIA_NATIVE_MODULE], {
        env: { PATH: process.env['PATH'], ...variables },
        encoding: 'utf8',
      });
      return JSON.parse(out) as { allocatorTuned?: boolean };
    };
    expect(statusIn({}).allocatorTuned).toBe(process.platform === 'linux');
    expect(statusIn({ MALLOC_MMAP_THRESHOLD_: '131072' }).allocatorTuned).toBe(false);
    expect(statusIn({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=1048576' }).allocatorTuned).toBe(false);
  });

  it('decodes JPEGs to the same bytes as sharp (baseline, progressive, 4:4:4, 4:2:0, grey, odd sizes)', async () => {
    const cases: { name: string; bytes: Buffer }[] = [
      { name: 'girl.jpg', bytes: readFileSync(goldenPath('inputs', 'girl.jpg')) },
    ];
    const sizes: [number, number][] = [
      [1, 1],
      [17, 9],
      [333, 250],
      [640, 481],
    ];
    let seed = 1;
    for (const [w, h] of sizes) {
      const raw = sharp(photoLike(w, h, seed++), { raw: { width: w, height: h, channels: 3 } });
      for (const [quality, chromaSubsampling, progressive] of [
        [90, '4:4:4', false],
        [75, '4:2:0', false],
        [50, '4:2:0', true],
        [85, '4:4:4', true],
      ] as const) {
        cases.push({
          name: `${w}×${h} q${quality} ${chromaSubsampling}${progressive ? ' progressive' : ''}`,
          bytes: await raw.clone().jpeg({ quality, chromaSubsampling, progressive }).toBuffer(),
        });
      }
      cases.push({
        name: `${w}×${h} grey`,
        bytes: await raw.clone().toColourspace('b-w').jpeg({ quality: 80 }).toBuffer(),
      });
    }
    // The golden photo itself, re-encoded progressive at a low quality.
    cases.push({
      name: 'girl 4:2:0 progressive q30',
      bytes: await sharp(readFileSync(goldenPath('inputs', 'girl.jpg')))
        .jpeg({ quality: 30, progressive: true, chromaSubsampling: '4:2:0' })
        .toBuffer(),
    });
    // As a pool worker decodes: into one reused buffer, refilled with junk before each image.
    const scratch = new ScratchBuffer(4 * 1024 * 1024);
    for (const { name, bytes } of cases) {
      const { portable, native } = await bothPaths(() => decodeImageRgb(bytes));
      expect([native.width, native.height], name).toEqual([portable.width, portable.height]);
      expect(Buffer.from(native.data).equals(Buffer.from(portable.data)), name).toBe(true);
      if (scratch.size > 0) scratch.take(scratch.size)!.fill(0xa5);
      const reused = await decodeImageRgb(bytes, {}, scratch);
      expect(reused.data.buffer, `${name}: decoded into the scratch buffer`).toBe(scratch.take(0)!.buffer);
      expect(Buffer.from(reused.data).equals(Buffer.from(portable.data)), name).toBe(true);
    }
  });

  it('writes a decoded JPEG into a given buffer that holds it, and into a new one otherwise', () => {
    const native = mediaNative()!;
    const girl = readFileSync(goldenPath('inputs', 'girl.jpg'));
    const fresh = native.decodeJpegRgb(girl, 1 << 26, 10);
    const size = fresh.width * fresh.height * 3;
    const into = new Uint8Array(size + 1000).fill(7);
    const inside = native.decodeJpegRgb(girl, 1 << 26, 10, into.subarray(100));
    expect(inside.data.buffer).toBe(into.buffer);
    expect([inside.data.byteOffset, inside.data.byteLength]).toEqual([100, size]);
    expect(Buffer.from(inside.data).equals(Buffer.from(fresh.data))).toBe(true);
    expect(into[99]).toBe(7);
    expect(into[100 + size]).toBe(7);
    const small = new Uint8Array(size - 1);
    const outside = native.decodeJpegRgb(girl, 1 << 26, 10, small);
    expect(outside.data.buffer).not.toBe(small.buffer);
    expect(Buffer.from(outside.data).equals(Buffer.from(fresh.data))).toBe(true);
    expect(() => native.decodeJpegRgb(girl, 1 << 26, 10, new Float32Array(size) as never)).toThrow(/into/);
  });

  it('resizes and normalises bit for bit as the TypeScript resampler with every loop the CPU has (random sizes, up and down)', async () => {
    const addon = mediaNative()!;
    const best = addon.resizeKernels();
    const levels = KERNELS.slice(0, KERNELS.indexOf(best) + 1);
    try {
      for (const level of levels) {
        expect(addon.resizeKernels(level)).toBe(level);
        const rnd = seeded(7);
        for (let trial = 0; trial < 40; trial++) {
          // Some thin images: windows that end at the image's last byte, and rows of one pixel.
          const width = trial % 8 === 7 ? 1 + (trial % 3) : 1 + Math.floor(rnd() * 700);
          const height = trial % 8 === 3 ? 1 + (trial % 2) : 1 + Math.floor(rnd() * 700);
          const data = new Uint8Array(width * height * 3);
          for (let i = 0; i < data.length; i++) data[i] = Math.floor(rnd() * 256);
          const img: RgbImage = { width, height, channels: 3, data };
          const { portable, native } = await bothPaths(() => preprocessRgbImage(img).tensor);
          expect(
            Buffer.from(native.buffer).equals(Buffer.from(portable.buffer)),
            `${level}: ${width}×${height}`,
          ).toBe(true);
        }
        // Extremes: all 0 and all 255 (the bicubic lobes overshoot both ends, so clipping matters).
        for (const fill of [0, 255]) {
          const img: RgbImage = {
            width: 301,
            height: 517,
            channels: 3,
            data: new Uint8Array(301 * 517 * 3).fill(fill),
          };
          const { portable, native } = await bothPaths(() => preprocessRgbImage(img).tensor);
          expect(
            Buffer.from(native.buffer).equals(Buffer.from(portable.buffer)),
            `${level}: fill ${fill}`,
          ).toBe(true);
        }
      }
    } finally {
      addon.resizeKernels(best);
    }
    expect(() => addon.resizeKernels('neon' as ResizeKernel)).toThrow(/'c', 'sse4.1' or 'avx2'/);
  });

  it('gives the official tensor for girl.jpg on both paths (bit-exact)', async () => {
    const bytes = readFileSync(goldenPath('inputs', 'girl.jpg'));
    const expected = toFloat32(readNpy(goldenPath('expected', 'preprocess', 'image_girl.npy')));
    const { portable, native } = await bothPaths(async () => (await preprocessImage(bytes)).tensor);
    for (const tensor of [portable, native]) {
      expect(Buffer.from(tensor.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    }
  });

  it('refuses a truncated or corrupt JPEG, and one whose working memory is over the limit', async () => {
    const girl = readFileSync(goldenPath('inputs', 'girl.jpg'));
    const truncated = await decodeImageRgb(girl.subarray(0, girl.length - 500)).catch((e: unknown) => e);
    expect(truncated).toMatchObject({ code: 'UNSUPPORTED_MEDIA' });
    expect(String((truncated as Error).message)).toContain('truncated');
    // A progressive 2000×2000 file holds all its coefficients (≈ 24 MB) while decoding.
    const big = await sharp(photoLike(2000, 2000, 3), { raw: { width: 2000, height: 2000, channels: 3 } })
      .jpeg({ progressive: true, chromaSubsampling: '4:4:4' })
      .toBuffer();
    const tooBig = await decodeImageRgb(big, { maxDecodedBytes: 13_000_000 }).catch((e: unknown) => e);
    expect(tooBig).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect(String((tooBig as Error).message)).toContain('PREPROCESS_MAX_IMAGE_DECODED_BYTES');
    expect((await decodeImageRgb(big, { maxDecodedBytes: 64_000_000 })).width).toBe(2000);
  });

  it('computes log mel filterbanks bit for bit as the TypeScript fbank (noise, tones, silence, full scale, odd lengths, other sizes)', async () => {
    const rnd = seeded(11);
    const cases: { name: string; wave: Float32Array; options?: Parameters<typeof kaldiFbank>[1] }[] = [];
    for (const length of [400, 401, 3200, 32000, 32123]) {
      const wave = new Float32Array(length);
      for (let i = 0; i < length; i++) wave[i] = Math.fround((rnd() * 2 - 1) * 0.6);
      cases.push({ name: `noise ${length}`, wave });
    }
    const tone = new Float32Array(16000);
    for (let i = 0; i < tone.length; i++)
      tone[i] = Math.fround(0.3 * Math.sin((2 * Math.PI * 440 * i) / 16000));
    cases.push({ name: 'tone', wave: tone });
    cases.push({ name: 'silence', wave: new Float32Array(8000) });
    cases.push({ name: 'full scale', wave: new Float32Array(8000).map((_, i) => (i % 2 === 0 ? 1 : -1)) });
    // a view into a larger buffer, and other geometry (64 mel bins, 8 kHz: a 256-point FFT)
    const big = new Float32Array(20000).map(() => Math.fround(rnd() - 0.5));
    cases.push({ name: 'subarray', wave: big.subarray(1234, 17234) });
    cases.push({ name: '64 bins at 8 kHz', wave: big, options: { numMelBins: 64, sampleFrequency: 8000 } });
    for (const c of cases) {
      const { portable, native } = await bothPaths(() => kaldiFbank(c.wave, c.options));
      expect(native.frames, c.name).toBe(portable.frames);
      expect(native.data.length, c.name).toBeGreaterThan(0);
      expect(Buffer.from(native.data.buffer).equals(Buffer.from(portable.data.buffer)), c.name).toBe(true);
    }
  });

  it('resamples bit for bit as the TypeScript resampler (rates down and up, whole and partial ranges, both ends)', async () => {
    const rnd = seeded(23);
    const input = new Float32Array(50_003).map(() => Math.fround((rnd() * 2 - 1) * 0.7));
    const pairs: [number, number][] = [
      [22050, 16000],
      [44100, 16000],
      [48000, 16000],
      [8000, 16000],
      [11025, 16000],
      [32000, 16000],
      [16000, 44100],
      [96000, 16000],
    ];
    for (const [from, to] of pairs) {
      const total = resampledLength(input.length, from, to);
      const ranges: [number, number][] = [
        [0, total],
        [0, 7],
        [total - 9, total],
        [1234, 1234 + 32000 < total ? 1234 + 32000 : total],
        [total >> 1, (total >> 1) + 1],
      ];
      for (const [start, end] of ranges) {
        const name = `${from} → ${to} [${start}, ${end})`;
        const { portable, native } = await bothPaths(() => resampleSinc(input, from, to, { start, end }));
        expect(native.length, name).toBe(end - start);
        expect(Buffer.from(native.buffer).equals(Buffer.from(portable.buffer)), name).toBe(true);
      }
    }
    // a view into a larger buffer, shorter than one kernel span
    const view = input.subarray(777, 790);
    const { portable, native } = await bothPaths(() => resampleSinc(view, 22050, 16000));
    expect(native.length).toBeGreaterThan(0);
    expect(Buffer.from(native.buffer).equals(Buffer.from(portable.buffer))).toBe(true);
  });

  it('groups point clouds as the TypeScript path does: FPS centres, kNN members and order, ties included', async () => {
    const rnd = seeded(11);
    // Coordinates on a coarse lattice: duplicate points and equal distances everywhere, so the
    // FPS argmax and torch.topk's tie handling (heap path k·64 ≤ n, introselect otherwise) matter.
    const shapes = [
      { count: 64, numGroup: 8, groupSize: 32, lattice: 3 },
      { count: 300, numGroup: 20, groupSize: 5, lattice: 4 },
      { count: 2048, numGroup: 64, groupSize: 32, lattice: 6 },
      { count: 2047, numGroup: 40, groupSize: 32, lattice: 1000 },
      { count: 5000, numGroup: 128, groupSize: 100, lattice: 5 },
      { count: 8192, numGroup: 512, groupSize: 32, lattice: 0 },
    ];
    for (const { count, numGroup, groupSize, lattice } of shapes) {
      const points = new Float32Array(count * 3);
      for (let i = 0; i < points.length; i++) {
        const u = rnd() * 2 - 1;
        points[i] = lattice > 0 ? Math.round(u * lattice) / lattice : u;
      }
      for (const fpsStart of [0, count - 1]) {
        const { portable, native } = await bothPaths(() =>
          groupPointCloud({ points, count }, { numGroup, groupSize, fpsStart }),
        );
        const label = `${count} points, ${numGroup}×${groupSize}, lattice ${lattice}, start ${fpsStart}`;
        expect(Array.from(native.centerIndices), label).toEqual(Array.from(portable.centerIndices));
        expect(Array.from(native.groupIndices), label).toEqual(Array.from(portable.groupIndices));
        expect(
          Buffer.from(native.neighborhoods.buffer).equals(Buffer.from(portable.neighborhoods.buffer)),
        ).toBe(true);
      }
    }
  });
});
