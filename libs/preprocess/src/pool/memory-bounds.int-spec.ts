// Medium (runs ffmpeg): issue #15 item 3, memory bounded by configuration rather than by what a
// file's header declares. Each hostile input is made here, refused with an error that names the
// limit and the setting that changes it, and refused before anything of its declared size exists.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { encodeNpy, float32Tensor } from '@imagebind-llm/checkpoint';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { PNG_SIGNATURE, pngChunk } from '@imagebind-llm/testing';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { decodedImageBytes } from '../image/image-decode';
import { runPreprocessTask, type PreprocessLimits, type PreprocessTask } from './preprocess-task';

const dir = mkdtempSync(join(tmpdir(), 'ibllm-bounds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', ...args]);
}

/** Growth of memory held by ArrayBuffers (decoded samples, pixels, tensors) while `run` settles. */
async function bufferGrowth(run: () => Promise<unknown>): Promise<{ error: unknown; grownBytes: number }> {
  const before = process.memoryUsage().arrayBuffers;
  let peak = before;
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 5);
  const error = await run().then(
    () => undefined,
    (e: unknown) => e,
  );
  clearInterval(sample);
  peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  return { error, grownBytes: peak - before };
}

async function refusal(task: PreprocessTask, limits: PreprocessLimits = {}): Promise<DomainError> {
  const { error, grownBytes } = await bufferGrowth(async () => runPreprocessTask(task, limits));
  expect(error).toBeInstanceOf(DomainError);
  // Every declared size below is ≥ 250 MB; 32 MB allows the input file and the decoder's buffers
  // of a few frames, not the decoded whole.
  expect(grownBytes).toBeLessThan(32 * 1024 * 1024);
  return error as DomainError;
}

/**
 * A PNG declaring a 16-bit RGBA image of the given size, with a few bytes of deflated zeros as
 * its only pixel data (the decoder's header reader wants to see an IDAT).
 */
function pngHeaderOnly(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([16, 6, 0, 0, 0], 8); // 16 bits, RGBA, deflate, adaptive filtering, no interlace
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(1024))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('compressed audio is decoded within the configured bounds', () => {
  it('refuses a tiny FLAC of 590 s of 96 kHz stereo silence before decoding it', async () => {
    const flac = join(dir, 'silence.flac');
    ffmpeg(['-f', 'lavfi', '-i', 'anullsrc=r=96000:cl=stereo', '-t', '590', '-c:a', 'flac', flac]);
    const bytes = readFileSync(flac);
    // The attack of issue #15: ~100 KB on the wire, 453 MB of float32 once decoded.
    expect(bytes.length).toBeLessThan(1024 * 1024);
    const error = await refusal({ kind: 'audio', bytes });
    expect(error.code).toBe(ErrorCode.PayloadTooLarge);
    expect(error.message).toMatch(/590\.0 s of 2-channel 96000 Hz audio decode to 432 MiB/);
    expect(error.message).toMatch(/limit is 256 MiB .*PREPROCESS_MAX_AUDIO_DECODED_BYTES/);
  });

  it('refuses audio longer than the configured duration, naming the setting', async () => {
    const flac = join(dir, 'long.flac');
    ffmpeg(['-f', 'lavfi', '-i', 'anullsrc=r=8000:cl=mono', '-t', '130', '-c:a', 'flac', flac]);
    const error = await refusal({ kind: 'audio', bytes: readFileSync(flac) }, { maxAudioSeconds: 120 });
    expect(error.code).toBe(ErrorCode.PayloadTooLarge);
    expect(error.message).toMatch(/lasts 130\.0 s; the limit is 120 s .*PREPROCESS_MAX_AUDIO_SECONDS/);
    // The same file within a raised limit decodes (the bound is the setting, not a constant).
    const ok = await runPreprocessTask(
      { kind: 'audio', bytes: readFileSync(flac) },
      { maxAudioSeconds: 131 },
    );
    expect(ok.kind === 'tensor' && ok.shape).toEqual([3, 1, 128, 204]);
  });
});

describe('images are bounded in decoded bytes before any pixel is decoded', () => {
  it('refuses a 6300×6300 16-bit RGBA PNG header (635 MB decoded) on the header', async () => {
    const error = await refusal({ kind: 'image', bytes: pngHeaderOnly(6300, 6300) });
    // Without the check this header-only file would reach the decoder and fail as corrupt
    // (UNSUPPORTED_MEDIA); the size check answers first.
    expect(error.code).toBe(ErrorCode.PayloadTooLarge);
    expect(error.message).toMatch(/6300×6300 with 4 16-bit channels: decoding needs \d+ MiB/);
    expect(error.message).toMatch(/limit is 256 MiB .*PREPROCESS_MAX_IMAGE_DECODED_BYTES/);
  });

  it('counts 16-bit samples and alpha: the same pixel count passes as 8-bit RGB', async () => {
    const width = 100;
    const height = 100;
    const raw = Buffer.alloc(width * height * 3, 200);
    const rgb8 = await sharp(raw, { raw: { width, height, channels: 3 } })
      .png()
      .toBuffer();
    const rgba16 = await sharp(raw, { raw: { width, height, channels: 3 } })
      .ensureAlpha()
      .toColourspace('rgb16')
      .png()
      .toBuffer();
    // 8-bit RGB holds 3 bytes a pixel; 16-bit RGBA decodes as rgb16 (6) + its 8-bit copy (3) + RGB (3).
    expect(decodedImageBytes(width * height, { channels: 3, depth: 'uchar', cmyk: false })).toBe(30_000);
    expect(decodedImageBytes(width * height, { channels: 4, depth: 'ushort', cmyk: false })).toBe(120_000);
    const limits = { maxImageDecodedBytes: 100_000 };
    const ok = await runPreprocessTask({ kind: 'image', bytes: rgb8 }, limits);
    expect(ok.kind === 'tensor' && ok.shape).toEqual([3, 224, 224]);
    await expect(runPreprocessTask({ kind: 'image', bytes: rgba16 }, limits)).rejects.toMatchObject({
      code: ErrorCode.PayloadTooLarge,
      message: expect.stringMatching(/100×100 with 4 16-bit channels/) as unknown,
    });
  });
});

describe('point clouds are bounded by the configured point count', () => {
  const grouping = { numGroup: 8, groupSize: 4 };

  it('refuses an .npy whose header declares too many points before copying its array', async () => {
    // 5 M float32 points (60 MB) in the header and the whole array behind it: copying the array
    // before the check, as parseNpy does, would grow the buffers by 60 MB, past the 32 MB bound.
    const count = 5_000_000;
    const npy = encodeNpy(float32Tensor(new Float32Array(count * 3), [count, 3]));
    const error = await refusal(
      { kind: 'point', bytes: npy, fileName: 'big.npy', grouping },
      { maxPoints: 1_000_000 },
    );
    expect(error.code).toBe(ErrorCode.PayloadTooLarge);
    expect(error.message).toMatch(
      /5000000 points exceed the limit of 1000000 \(server setting PREPROCESS_MAX_POINTS\)/,
    );
  });

  it('refuses a client-sent cloud over the limit before grouping it', async () => {
    const points = new Float32Array(3 * 2000);
    await expect(
      runPreprocessTask({ kind: 'point-group', points, grouping }, { maxPoints: 1000 }),
    ).rejects.toMatchObject({
      code: ErrorCode.PayloadTooLarge,
      message: expect.stringMatching(/2000 points exceed the limit of 1000/) as unknown,
    });
  });
});
