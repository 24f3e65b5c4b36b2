import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { DEFAULT_FFMPEG_TIMEOUT_SECONDS, runMediaTool } from '../video/ffmpeg.adapter';
import {
  preprocessAudio,
  preprocessWaveform,
  type AudioPreprocessOptions,
  type AudioPreprocessResult,
} from './audio.preprocess';

export interface FfmpegAudioOptions extends AudioPreprocessOptions {
  readonly ffmpegPath?: string;
  readonly ffprobePath?: string;
  readonly timeoutSeconds?: number;
  /** Largest input file accepted, in bytes. */
  readonly maxBytes?: number;
}

const DEFAULT_MAX_AUDIO_BYTES = 256 * 1024 * 1024;

function isWav(bytes: Uint8Array): boolean {
  const tag = (at: number): string => String.fromCharCode(...bytes.subarray(at, at + 4));
  return bytes.length >= 12 && tag(0) === 'RIFF' && tag(8) === 'WAVE';
}

/**
 * Decodes any audio container ffmpeg reads (MP3, FLAC, Ogg, M4A, …) to float32 samples at the
 * file's own rate and channel count — what torchaudio.load hands the official loader — via
 * Debian's `ffmpeg` package. Resampling and the fbank stay in TypeScript.
 */
export async function decodeAudioWithFfmpeg(
  bytes: Uint8Array,
  options: FfmpegAudioOptions = {},
): Promise<{ sampleRate: number; channels: Float32Array[] }> {
  if (bytes.length === 0) throw new DomainError(ErrorCode.InvalidInput, 'audio: the file is empty (0 bytes)');
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_AUDIO_BYTES;
  if (bytes.length > maxBytes) {
    throw new DomainError(
      ErrorCode.PayloadTooLarge,
      `audio: ${bytes.length} bytes exceed the limit of ${maxBytes}`,
    );
  }
  const timeoutSeconds = options.timeoutSeconds ?? DEFAULT_FFMPEG_TIMEOUT_SECONDS;
  const maxDuration = options.maxDurationSeconds ?? 600;
  const dir = await mkdtemp(join(tmpdir(), 'ibllm-audio-'));
  try {
    const path = join(dir, 'input');
    await writeFile(path, bytes);
    const url = `file:${path}`;
    const probe = JSON.parse(
      (
        await runMediaTool(
          options.ffprobePath ?? 'ffprobe',
          [
            '-v',
            'error',
            '-protocol_whitelist',
            'file',
            '-select_streams',
            'a:0',
            '-show_entries',
            'stream=sample_rate,channels:format=duration',
            '-of',
            'json',
            url,
          ],
          { what: 'audio', timeoutSeconds, maxOutputBytes: 1 << 20, maxPixels: 0 },
        )
      ).toString('utf8'),
    ) as { streams?: { sample_rate?: string; channels?: number }[]; format?: { duration?: string } };
    const stream = probe.streams?.[0];
    const sampleRate = Number(stream?.sample_rate);
    const channelCount = stream?.channels ?? 0;
    if (stream === undefined || !(sampleRate > 0) || channelCount < 1) {
      throw new DomainError(ErrorCode.UnsupportedMedia, 'audio: the file has no audio stream');
    }
    const duration = Number(probe.format?.duration ?? '0');
    if (duration > maxDuration) {
      throw new DomainError(
        ErrorCode.PayloadTooLarge,
        `audio: it lasts ${duration.toFixed(1)} s; the limit is ${maxDuration} s`,
      );
    }
    const maxOutput = Math.ceil((maxDuration + 1) * sampleRate * channelCount * 4);
    const pcm = await runMediaTool(
      options.ffmpegPath ?? 'ffmpeg',
      [
        '-v',
        'error',
        '-nostdin',
        '-protocol_whitelist',
        'file',
        '-i',
        url,
        '-map',
        '0:a:0',
        '-f',
        'f32le',
        '-acodec',
        'pcm_f32le',
        'pipe:1',
      ],
      { what: 'audio', timeoutSeconds, maxOutputBytes: maxOutput, maxPixels: 0 },
    );
    const frames = Math.floor(pcm.byteLength / 4 / channelCount);
    const interleaved = new Float32Array(pcm.buffer, pcm.byteOffset, frames * channelCount);
    const channels = Array.from({ length: channelCount }, () => new Float32Array(frames));
    for (let i = 0; i < frames; i++)
      for (let c = 0; c < channelCount; c++) channels[c]![i] = interleaved[i * channelCount + c]!;
    return { sampleRate, channels };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** WAV natively (exact), any other container through ffmpeg (MODEL_SPEC §2.3). */
export async function preprocessAudioAny(
  bytes: Uint8Array,
  options: FfmpegAudioOptions = {},
): Promise<AudioPreprocessResult> {
  if (isWav(bytes) || bytes.length < 12) return preprocessAudio(bytes, options);
  return preprocessWaveform(await decodeAudioWithFfmpeg(bytes, options));
}
