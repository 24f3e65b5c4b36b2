import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@imagebind-llm/errors';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { mediaNative, mediaNativeStatus } from '../native/media-native';
import { preprocessAudio } from './audio.preprocess';
import { decodeAudioWithFfmpeg, preprocessAudioAny } from './ffmpeg-audio';

const dir = mkdtempSync(join(tmpdir(), 'ibllm-ffaudio-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const wav = readFileSync(goldenPath('inputs', 'girl_bgm.wav'));

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', ...args]);
}

describe('audio through ffmpeg (non-WAV containers)', () => {
  it('gives the WAV result for a lossless FLAC of the same samples', async () => {
    const flac = join(dir, 'girl.flac');
    ffmpeg(['-i', goldenPath('inputs', 'girl_bgm.wav'), flac]);
    const viaFfmpeg = await preprocessAudioAny(readFileSync(flac));
    const native = preprocessAudio(wav);
    expect(viaFfmpeg.shape).toEqual([3, 1, 128, 204]);
    let max = 0;
    native.tensor.forEach((v, i) => (max = Math.max(max, Math.abs(v - viaFfmpeg.tensor[i]!))));
    expect(max).toBeLessThan(1e-5);
  });

  it('reads lossy containers (MP3)', async () => {
    const mp3 = join(dir, 'girl.mp3');
    ffmpeg(['-i', goldenPath('inputs', 'girl_bgm.wav'), '-b:a', '128k', mp3]);
    const r = await preprocessAudioAny(readFileSync(mp3));
    expect(r.tensor.every((v) => Number.isFinite(v))).toBe(true);
  });

  it('still decodes WAV natively', async () => {
    expect((await preprocessAudioAny(wav)).tensor).toEqual(preprocessAudio(wav).tensor);
  });

  it('refuses a file without an audio stream, and garbage', async () => {
    const video = join(dir, 'silent.mp4');
    ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=64x64:rate=5:duration=1', '-pix_fmt', 'yuv420p', video]);
    await expect(preprocessAudioAny(readFileSync(video))).rejects.toMatchObject({
      code: ErrorCode.UnsupportedMedia,
    });
    await expect(preprocessAudioAny(new Uint8Array(100).fill(7))).rejects.toMatchObject({
      code: ErrorCode.UnsupportedMedia,
    });
    await expect(preprocessAudioAny(new Uint8Array(0))).rejects.toMatchObject({
      code: ErrorCode.UnsupportedMedia,
    });
  });
});

// The command lines (ffprobe + ffmpeg -f f32le) are what torchaudio's FFmpeg backend reads with;
// the addon decodes in process with the same libraries (native/audio.c). Every sample must match.
describe('compressed audio decoded in process (ibllm_media_av)', () => {
  const source = goldenPath('inputs', 'girl_bgm.wav');
  const CLI = { ffmpegPath: 'ffmpeg', ffprobePath: 'ffprobe' };
  const cases: [string, string, string[]][] = [
    ['FLAC 16-bit (s16)', 'a.flac', []],
    ['FLAC 24-bit (s32)', 'b.flac', ['-sample_fmt', 's32', '-af', 'volume=0.7']],
    ['MP3 (fltp)', 'c.mp3', ['-b:a', '96k']],
    ['Ogg Vorbis (fltp)', 'd.ogg', ['-c:a', 'libvorbis']],
    ['Opus (flt, 48 kHz)', 'e.opus', ['-c:a', 'libopus', '-b:a', '64k']],
    ['AAC in M4A (fltp)', 'f.m4a', ['-c:a', 'aac', '-b:a', '96k']],
    ['unsigned 8-bit PCM, mono, in Matroska', 'g.mka', ['-c:a', 'pcm_u8', '-ac', '1']],
    ['64-bit float PCM, 6 channels, in Matroska', 'h.mka', ['-c:a', 'pcm_f64le', '-ac', '6']],
  ];

  it('is what runs here (the addon is built with FFmpeg headers)', () => {
    const status = mediaNativeStatus();
    expect(status.audio, `ibllm_media_av: ${status.reason ?? ''}`).toBe(true);
  });

  it.each(cases)(
    '%s: the same sample rate, channels and samples as the command lines',
    async (_name, file, args) => {
      const path = join(dir, file);
      ffmpeg(['-i', source, ...args, path]);
      const bytes = readFileSync(path);
      const cli = await decodeAudioWithFfmpeg(bytes, CLI);
      const inProcess = await decodeAudioWithFfmpeg(bytes);
      expect(inProcess.sampleRate).toBe(cli.sampleRate);
      expect(inProcess.channels.length).toBe(cli.channels.length);
      expect(cli.channels[0]!.length).toBeGreaterThan(cli.sampleRate);
      inProcess.channels.forEach((c, i) => expect(c, `channel ${i}`).toEqual(cli.channels[i]));
    },
  );

  it('refuses the same files with the same errors', async () => {
    const video = join(dir, 'silent-2.mp4');
    ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=64x64:rate=5:duration=1', '-pix_fmt', 'yuv420p', video]);
    const long = join(dir, 'long.flac');
    ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=8000:duration=20', long]);
    const inputs: [Uint8Array, object][] = [
      [readFileSync(video), {}],
      [new Uint8Array(100).fill(7), {}],
      [readFileSync(long), { maxDurationSeconds: 10 }],
      [readFileSync(long), { maxDecodedBytes: 4 * 8000 * 5 }],
    ];
    for (const [bytes, limits] of inputs) {
      const outcome = async (options: object): Promise<unknown> =>
        decodeAudioWithFfmpeg(bytes, options).then(
          () => 'decoded',
          (error: { code?: unknown; message?: unknown }) => ({ code: error.code, message: error.message }),
        );
      const cli = (await outcome({ ...CLI, ...limits })) as { code: unknown; message: string };
      const inProcess = (await outcome(limits)) as { code: unknown; message: string };
      expect(inProcess.code).toBe(cli.code);
      expect(cli.code).not.toBeUndefined();
      // The unreadable-file messages quote each decoder's own words; the rest are the same text.
      if (cli.message.startsWith('audio:')) expect(inProcess.message).toBe(cli.message);
    }
  });

  it('stops at the decoded-bytes cap whatever the header says (EOVERFLOW), and keeps nothing past it', () => {
    const native = mediaNative();
    const path = join(dir, 'cap.flac');
    ffmpeg(['-f', 'lavfi', '-i', 'sine=frequency=300:sample_rate=16000:duration=3', path]);
    // A cap below the 48 000 frames the file holds, as if its header had said less.
    expect(() => native?.decodeAudioFile?.(path, 0, 40_000, 10)).toThrow(
      expect.objectContaining({ code: 'EOVERFLOW' }),
    );
    const all = native?.decodeAudioFile?.(path, 0, 48_000, 10);
    expect(all?.map((c) => c.length)).toEqual([48_000]);
    // The file's bytes, read in place, decode to the same samples and stop at the same cap.
    const bytes = readFileSync(path);
    expect(native?.probeAudioFile?.(bytes, 10)).toEqual(native?.probeAudioFile?.(path, 10));
    expect(native?.decodeAudioFile?.(bytes, 0, 48_000, 10)).toEqual(all);
    expect(() => native?.decodeAudioFile?.(bytes, 0, 40_000, 10)).toThrow(
      expect.objectContaining({ code: 'EOVERFLOW' }),
    );
    expect(() => native?.decodeAudioFile?.(new Uint8Array(0), 0, 1, 10)).toThrow(
      expect.objectContaining({ code: 'EMEDIA' }),
    );
  });
});
