import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { DomainError } from '@imagebind-llm/errors';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CLIP_STD } from '../image/image.preprocess';
import { mediaNative, mediaNativeStatus, setMediaNativeEnabled } from '../native/media-native';
import { preprocessVideo, type VideoPreprocessOptions } from './video.preprocess';

// Real ffmpeg/ffprobe processes (Debian's `ffmpeg` package, installed by the CI): medium tier.

const PLANE = 224 * 224;
const LANDSCAPE = goldenPath('inputs', 'landscape_320x240_10fps_5.3s.mp4');

let dir: string;
let scratch: string;

/** Runs ffmpeg quietly, overwriting its output. */
function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', ...args]);
}

/** An H.264 test video from lavfi's testsrc2, encoded like the golden one. */
function makeVideo(name: string, source: string): string {
  const path = join(dir, name);
  ffmpeg([
    '-f',
    'lavfi',
    '-i',
    source,
    '-c:v',
    'libx264',
    '-preset',
    'medium',
    '-crf',
    '23',
    '-pix_fmt',
    'yuv420p',
    '-threads',
    '1',
    path,
  ]);
  return path;
}

async function rejection(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error('expected a DomainError, got a result');
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'video-spec-'));
  scratch = mkdtempSync(join(tmpdir(), 'video-spec-tmp-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

describe('preprocessVideo: parity with the official loader', () => {
  it('matches the golden landscape tensor within float16 storage (decoded frames are bit-exact)', async () => {
    const result = await preprocessVideo(readFileSync(LANDSCAPE), { tempDir: scratch });
    expect(result.shape).toEqual([15, 3, 2, 224, 224]);
    expect(result.scaledSize).toEqual({ width: 298, height: 224 });
    expect(result.durationSeconds).toBeCloseTo(5.3, 12);
    expect(result.clips.map((c) => c.frameIndices)).toEqual([
      [0, 19],
      [9, 28],
      [17, 36],
      [25, 44],
      [33, 52],
    ]);
    const golden = toFloat32(readNpy(goldenPath('expected', 'preprocess', 'video_landscape.f16.npy')));
    expect(golden.length).toBe(result.tensor.length);
    let maxPixelError = 0;
    for (let i = 0; i < golden.length; i++) {
      const c = Math.floor(i / (2 * PLANE)) % 3;
      // Undo the normalisation: errors in 0–1 pixel units.
      const d = Math.abs(result.tensor[i]! - golden[i]!) * CLIP_STD[c]!;
      if (d > maxPixelError) maxPixelError = d;
    }
    // Required: 2/255. Achieved ≈ 0.069/255 — the float16 rounding of the golden (half an ulp of
    // values in [2, 4) is 2^-10 ≈ 0.00098 normalised ≈ 0.00027 in pixel units). A single
    // decoded-RGB difference of 1 level would show up as 1/255 ≈ 0.0039, so 0.5/255 proves the
    // frames are identical to PyAV's.
    expect(maxPixelError).toBeLessThan(0.5 / 255);
    expect(readdirSync(scratch)).toEqual([]); // the temporary copy is gone
  });

  it('gives the same tensor from a path as from bytes', async () => {
    const fromPath = await preprocessVideo(LANDSCAPE);
    const fromBytes = await preprocessVideo(new Uint8Array(readFileSync(LANDSCAPE)));
    expect(Buffer.from(fromPath.tensor.buffer).equals(Buffer.from(fromBytes.tensor.buffer))).toBe(true);
  });

  it('crops top/centre/bottom for a portrait video', async () => {
    const path = makeVideo('portrait.mp4', 'testsrc2=size=240x320:rate=10:duration=2.5');
    const result = await preprocessVideo(path);
    expect(result.scaledSize).toEqual({ width: 224, height: 298 });
    const crop = (k: number): Float32Array => result.tensor.subarray(k * 6 * PLANE, (k + 1) * 6 * PLANE);
    // Centre and bottom crops overlap by 224 − 37 rows: row 37 of the top crop is row 0 of the centre.
    const top = crop(0);
    const centre = crop(1);
    expect([...top.subarray(37 * 224, 38 * 224)]).toEqual([...centre.subarray(0, 224)]);
    expect([...top.subarray(0, 224)]).not.toEqual([...centre.subarray(0, 224)]);
  });

  it('accepts a one-frame video: every clip is [0, 2 s) and uses that frame twice', async () => {
    const path = makeVideo('one-frame.mp4', 'testsrc2=size=320x240:rate=10:duration=0.1');
    const result = await preprocessVideo(path);
    expect(result.clips.map((c) => c.frameIndices)).toEqual(Array.from({ length: 5 }, () => [0, 0]));
    expect(result.clips[0]?.framesInWindow).toBe(1);
    const t0 = result.tensor.subarray(0, PLANE);
    const t1 = result.tensor.subarray(PLANE, 2 * PLANE);
    expect([...t0]).toEqual([...t1]);
    // Clip 4 crop 0 equals clip 0 crop 0.
    expect([...result.tensor.subarray(12 * 6 * PLANE, 12 * 6 * PLANE + PLANE)]).toEqual([...t0]);
  });
});

describe('preprocessVideo: frame timestamps from packets, checked against decoding', () => {
  const same = (a: Float32Array, b: Float32Array): boolean =>
    Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    );

  it('chooses the golden frames from packets, bit-identical to listing decoded frames first', async () => {
    const fromPackets = await preprocessVideo(LANDSCAPE);
    const decoded = await preprocessVideo(LANDSCAPE, { frameTimestamps: 'decoded' });
    expect(fromPackets.frameTimestamps).toBe('packets');
    expect(decoded.frameTimestamps).toBe('decoded');
    expect(fromPackets.clips).toEqual(decoded.clips);
    expect(same(fromPackets.tensor, decoded.tensor)).toBe(true);
  });

  it('matches frames by their own pts in an MPEG-TS video that does not start at 0', async () => {
    const path = makeVideo('late-start.ts', 'testsrc2=size=320x240:rate=25:duration=4.3');
    const fromPackets = await preprocessVideo(path);
    const decoded = await preprocessVideo(path, { frameTimestamps: 'decoded' });
    expect(fromPackets.stream.startPts).toBeGreaterThan(0n); // ffmpeg's TS muxer delays the start
    expect(fromPackets.frameTimestamps).toBe('packets');
    expect(fromPackets.clips).toEqual(decoded.clips);
    expect(same(fromPackets.tensor, decoded.tensor)).toBe(true);
  });

  it('decodes to find the frames when an edit list discards packets', async () => {
    const source = makeVideo('edit-source.mp4', 'testsrc2=size=320x240:rate=10:duration=5');
    const path = join(dir, 'edit-list.mp4');
    // A stream copy from 0.45 s keeps the frames from the keyframe before and discards them on read.
    ffmpeg(['-ss', '0.45', '-i', source, '-c', 'copy', path]);
    const flags = execFileSync('ffprobe', [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      'packet=flags',
      '-of',
      'csv=p=0',
      path,
    ]);
    expect(flags.toString()).toMatch(/D/); // the precondition: some packets are flagged discard
    const result = await preprocessVideo(path);
    const decoded = await preprocessVideo(path, { frameTimestamps: 'decoded' });
    expect(result.frameTimestamps).toBe('decoded');
    expect(result.clips).toEqual(decoded.clips);
    expect(same(result.tensor, decoded.tensor)).toBe(true);
  });
});

describe('preprocessVideo: hostile input', () => {
  it('refuses an empty buffer and an empty file with INVALID_INPUT', async () => {
    expect((await rejection(preprocessVideo(new Uint8Array(0)))).code).toBe('INVALID_INPUT');
    const empty = join(dir, 'empty.mp4');
    writeFileSync(empty, '');
    const error = await rejection(preprocessVideo(empty));
    expect(error.code).toBe('INVALID_INPUT');
    expect(error.message).toMatch(/empty/);
  });

  it('refuses a truncated file with UNSUPPORTED_MEDIA', async () => {
    const bytes = readFileSync(LANDSCAPE).subarray(0, 3000);
    const error = await rejection(preprocessVideo(bytes));
    expect(error.code).toBe('UNSUPPORTED_MEDIA');
  });

  it('refuses random bytes with UNSUPPORTED_MEDIA', async () => {
    let s = 12345;
    const junk = Uint8Array.from({ length: 4096 }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s >>> 24;
    });
    const error = await rejection(preprocessVideo(junk));
    expect(error.code).toBe('UNSUPPORTED_MEDIA');
    expect(error.message).toMatch(/could not be read/);
  });

  it('refuses a WAV file: no video stream', async () => {
    const wav = join(dir, 'tone.wav');
    ffmpeg(['-f', 'lavfi', '-i', 'sine=duration=1', wav]);
    const error = await rejection(preprocessVideo(wav));
    expect(error.code).toBe('UNSUPPORTED_MEDIA');
    expect(error.message).toMatch(/no video stream/);
  });

  it('refuses a frame size above the pixel limit before decoding (PAYLOAD_TOO_LARGE)', async () => {
    const error = await rejection(preprocessVideo(LANDSCAPE, { maxPixels: 320 * 240 - 1 }));
    expect(error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(error.message).toMatch(/pixel/);
    // The limit itself is accepted.
    await expect(preprocessVideo(LANDSCAPE, { maxPixels: 320 * 240 })).resolves.toBeDefined();
  });

  it('refuses a duration, byte size or frame count above the limits (PAYLOAD_TOO_LARGE)', async () => {
    const long = await rejection(preprocessVideo(LANDSCAPE, { maxDurationSeconds: 5 }));
    expect(long.code).toBe('PAYLOAD_TOO_LARGE');
    expect(long.message).toMatch(/5\.300 s/);
    expect((await rejection(preprocessVideo(LANDSCAPE, { maxBytes: 1000 }))).code).toBe('PAYLOAD_TOO_LARGE');
    expect((await rejection(preprocessVideo(LANDSCAPE, { maxFrames: 52 }))).code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('says to install Debian ffmpeg when the tools are missing (DEPENDENCY_UNAVAILABLE)', async () => {
    // Named tools select the command lines even where the addon could decode in process.
    const options: VideoPreprocessOptions = { ffprobePath: join(dir, 'no-such-ffprobe') };
    const error = await rejection(preprocessVideo(LANDSCAPE, options));
    expect(error.code).toBe('DEPENDENCY_UNAVAILABLE');
    expect(error.message).toMatch(/apt-get install ffmpeg/);
  });

  it('kills a run that passes the time limit (DEADLINE_EXCEEDED)', async () => {
    const error = await rejection(preprocessVideo(LANDSCAPE, { timeoutSeconds: 0.001 }));
    expect(error.code).toBe('DEADLINE_EXCEEDED');
  });

  it('rejects bad limits with INVALID_INPUT', async () => {
    expect((await rejection(preprocessVideo(LANDSCAPE, { maxPixels: 0 }))).code).toBe('INVALID_INPUT');
    expect((await rejection(preprocessVideo(LANDSCAPE, { timeoutSeconds: -1 }))).code).toBe('INVALID_INPUT');
  });
});

describe('preprocessVideo: in process (ibllm_media) and the command lines agree', () => {
  afterAll(() => setMediaNativeEnabled(true));

  /** Sources covering the decoder paths: B-frames, odd sizes, 4:2:2/4:4:4, full range, VP9, MPEG-TS, MJPEG. */
  const cases: { name: string; args: string[] }[] = [
    {
      name: 'h264-bframes.mp4',
      args: [
        '-i',
        'testsrc2=size=320x240:rate=25:duration=4.2',
        '-c:v',
        'libx264',
        '-bf',
        '3',
        '-pix_fmt',
        'yuv420p',
      ],
    },
    {
      name: 'h264-odd.mkv',
      args: ['-i', 'testsrc2=size=333x187:rate=12:duration=3', '-c:v', 'libx264', '-pix_fmt', 'yuv420p'],
    },
    {
      name: 'h264-422.mp4',
      args: ['-i', 'testsrc2=size=256x200:rate=10:duration=2.4', '-c:v', 'libx264', '-pix_fmt', 'yuv422p'],
    },
    {
      name: 'h264-444.mov',
      args: ['-i', 'testsrc2=size=200x256:rate=10:duration=2.4', '-c:v', 'libx264', '-pix_fmt', 'yuv444p'],
    },
    {
      name: 'h264-fullrange.mp4',
      args: ['-i', 'testsrc2=size=320x180:rate=15:duration=3', '-c:v', 'libx264', '-pix_fmt', 'yuvj420p'],
    },
    {
      name: 'vp9.webm',
      args: [
        '-i',
        'testsrc2=size=240x240:rate=10:duration=3',
        '-c:v',
        'libvpx-vp9',
        '-deadline',
        'realtime',
        '-cpu-used',
        '8',
      ],
    },
    {
      name: 'mpeg2.ts',
      args: ['-i', 'testsrc2=size=320x240:rate=25:duration=3', '-c:v', 'mpeg2video', '-bf', '2'],
    },
    { name: 'mjpeg.avi', args: ['-i', 'testsrc2=size=160x120:rate=10:duration=2.5', '-c:v', 'mjpeg'] },
  ];

  it('the addon decodes video in process here', () => {
    expect(mediaNativeStatus()).toMatchObject({ video: true });
  });

  it.each(cases)('$name: the same tensor, clips and timestamps source', async ({ name, args }) => {
    const path = join(dir, name);
    ffmpeg(['-f', 'lavfi', ...args, '-threads', '1', path]);
    setMediaNativeEnabled(false);
    const cli = await preprocessVideo(path);
    setMediaNativeEnabled(true);
    const inProcess = await preprocessVideo(path);
    expect(inProcess.stream).toEqual(cli.stream);
    expect(inProcess.clips).toEqual(cli.clips);
    expect(inProcess.frameTimestamps).toBe(cli.frameTimestamps);
    expect(Buffer.from(inProcess.tensor.buffer).equals(Buffer.from(cli.tensor.buffer))).toBe(true);
    // The bytes are read where they are (custom I/O), with no temporary file: a temporary
    // directory that does not exist would fail any attempt to write one.
    const fromBytes = await preprocessVideo(readFileSync(path), { tempDir: join(dir, 'absent') });
    expect(fromBytes.stream).toEqual(cli.stream);
    expect(fromBytes.clips).toEqual(cli.clips);
    expect(fromBytes.frameTimestamps).toBe(cli.frameTimestamps);
    expect(Buffer.from(fromBytes.tensor.buffer).equals(Buffer.from(cli.tensor.buffer))).toBe(true);
  });

  it('bytes open no other file: a playlist naming a local video is refused, not followed', async () => {
    const playlist = Buffer.from(
      `#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:5.3,\n${LANDSCAPE}\n#EXT-X-ENDLIST\n`,
    );
    expect(() => mediaNative()?.probeVideoPackets?.(playlist, 1e7, 1e5, 10)).toThrow(
      expect.objectContaining({ code: 'EMEDIA' }),
    );
    await expect(preprocessVideo(playlist)).rejects.toMatchObject({ code: 'UNSUPPORTED_MEDIA' });
  });

  it('the golden landscape video on the command lines too (within the same bound)', async () => {
    setMediaNativeEnabled(false);
    const cli = await preprocessVideo(LANDSCAPE);
    setMediaNativeEnabled(true);
    const inProcess = await preprocessVideo(LANDSCAPE);
    expect(Buffer.from(inProcess.tensor.buffer).equals(Buffer.from(cli.tensor.buffer))).toBe(true);
  });
});
