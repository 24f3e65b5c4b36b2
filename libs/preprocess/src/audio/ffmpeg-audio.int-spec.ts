import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@imagebind-llm/errors';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { preprocessAudio } from './audio.preprocess';
import { preprocessAudioAny } from './ffmpeg-audio';

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
