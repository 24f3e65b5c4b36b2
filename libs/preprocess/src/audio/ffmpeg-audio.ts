import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { mediaNative, type MediaNative, type NativeAudioProbe } from '../native/media-native';
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
  /**
   * Most bytes the decoded float32 samples (all channels) may take. This, not the file's own
   * header, bounds the memory one compressed file can claim: a tiny FLAC may declare 8 channels at
   * 384 kHz. Default {@link DEFAULT_MAX_AUDIO_DECODED_BYTES}.
   */
  readonly maxDecodedBytes?: number;
}

const DEFAULT_MAX_AUDIO_BYTES = 256 * 1024 * 1024;
/** 10 minutes of stereo 48 kHz float32 (230 MB) fits; a 96 kHz stereo 10-minute file does not. */
export const DEFAULT_MAX_AUDIO_DECODED_BYTES = 256 * 1024 * 1024;
export const DEFAULT_MAX_AUDIO_SECONDS = 600;

function isWav(bytes: Uint8Array): boolean {
  const tag = (at: number): string => String.fromCharCode(...bytes.subarray(at, at + 4));
  return bytes.length >= 12 && tag(0) === 'RIFF' && tag(8) === 'WAVE';
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(0)} MiB`;
}

function tooMuchAudio(what: string, limit: number): DomainError {
  return new DomainError(
    ErrorCode.PayloadTooLarge,
    `audio: ${what}; the limit is ${mib(limit)} of decoded samples (server setting ` +
      `PREPROCESS_MAX_AUDIO_DECODED_BYTES): send a shorter clip, fewer channels or a lower sample rate`,
    { limit },
  );
}

/**
 * Decodes any audio container ffmpeg reads (MP3, FLAC, Ogg, M4A, …) to float32 samples at the
 * file's own rate and channel count — what torchaudio.load hands the official loader — via
 * Debian's `ffmpeg` package. Resampling and the fbank stay in TypeScript.
 *
 * Memory: ffmpeg's interleaved output is split into channels as it streams, into arrays sized
 * from the probe and never beyond `maxDecodedBytes`; a file whose header understates its length is
 * killed when it reaches the cap, so the configured limit, not the header, bounds what is held.
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
  const maxDuration = options.maxDurationSeconds ?? DEFAULT_MAX_AUDIO_SECONDS;
  const maxDecoded = options.maxDecodedBytes ?? DEFAULT_MAX_AUDIO_DECODED_BYTES;
  // The addon's in-process decoder when it is built and no tool path was named (the same FFmpeg
  // libraries as the command lines, without forking this process twice per file): it reads the
  // bytes where they are. The command lines read a private temporary copy of them.
  const native =
    options.ffmpegPath === undefined && options.ffprobePath === undefined ? nativeAudio() : undefined;
  const dir = native === undefined ? await mkdtemp(join(tmpdir(), 'ibllm-audio-')) : undefined;
  try {
    const path = dir === undefined ? undefined : join(dir, 'input');
    if (path !== undefined) await writeFile(path, bytes, { mode: 0o600 });
    const url = `file:${path ?? ''}`; // for the command lines
    const probe =
      native === undefined
        ? await probeWithFfprobe(options.ffprobePath ?? 'ffprobe', url, timeoutSeconds)
        : fromNativeProbe(native, bytes, timeoutSeconds);
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
        `audio: it lasts ${duration.toFixed(1)} s; the limit is ${maxDuration} s (server setting ` +
          `PREPROCESS_MAX_AUDIO_SECONDS): send a shorter clip`,
        { limit: maxDuration },
      );
    }
    const frameBytes = 4 * channelCount;
    const capFrames = Math.floor(maxDecoded / frameBytes);
    const declaredFrames = Number.isFinite(duration) ? Math.ceil(duration * sampleRate) : 0;
    if (declaredFrames > capFrames) {
      throw tooMuchAudio(
        `${duration.toFixed(1)} s of ${channelCount}-channel ${sampleRate} Hz audio decode to ` +
          `${mib(declaredFrames * frameBytes)}`,
        maxDecoded,
      );
    }
    // Past the declared length by a second at most before the arrays grow (headers round).
    const initialFrames = Math.min(capFrames, declaredFrames + sampleRate);
    if (native !== undefined) {
      return decodeInProcess(native, bytes, {
        sampleRate,
        channelCount,
        initialFrames,
        capFrames,
        maxDecoded,
        timeoutSeconds,
      });
    }
    return await decodePlanar(
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
      { sampleRate, channelCount, initialFrames, capFrames, maxDecoded, timeoutSeconds },
    );
  } finally {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }
}

/** What ffprobe prints for `-show_entries stream=sample_rate,channels:format=duration -of json`. */
interface AudioProbe {
  readonly streams?: { sample_rate?: string; channels?: number }[];
  readonly format?: { duration?: string };
}

async function probeWithFfprobe(tool: string, url: string, timeoutSeconds: number): Promise<AudioProbe> {
  const out = await runMediaTool(
    tool,
    [
      ...['-v', 'error', '-protocol_whitelist', 'file', '-select_streams', 'a:0'],
      ...['-show_entries', 'stream=sample_rate,channels:format=duration', '-of', 'json', url],
    ],
    { what: 'audio', timeoutSeconds, maxOutputBytes: 1 << 20, maxPixels: 0 },
  );
  return JSON.parse(out.toString('utf8')) as AudioProbe;
}

type NativeAudio = Required<Pick<MediaNative, 'probeAudioFile' | 'decodeAudioFile'>>;

function nativeAudio(): NativeAudio | undefined {
  const native = mediaNative();
  if (native?.probeAudioFile === undefined || native.decodeAudioFile === undefined) return undefined;
  return { probeAudioFile: native.probeAudioFile, decodeAudioFile: native.decodeAudioFile };
}

/** The addon's coded errors as the command-line path reports the same failures. */
function nativeAudioError(error: unknown, plan?: PlanarDecode): DomainError {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  switch (code) {
    case 'ENOAUDIO':
      return new DomainError(ErrorCode.UnsupportedMedia, 'audio: the file has no audio stream');
    case 'EOVERFLOW':
      return tooMuchAudio(
        `the file decodes to more than its header declared, past ${mib(plan?.maxDecoded ?? 0)}`,
        plan?.maxDecoded ?? 0,
      );
    case 'ETIMEOUT':
      return new DomainError(
        ErrorCode.DeadlineExceeded,
        `the audio did not decode within ${plan?.timeoutSeconds ?? 0} s; the audio is too slow to decode`,
        { limit: plan?.timeoutSeconds ?? 0 },
      );
    case 'EMEMORY':
      return new DomainError(
        ErrorCode.PayloadTooLarge,
        `the audio needs too much memory to decode: ${message}`,
      );
    default:
      return new DomainError(
        ErrorCode.UnsupportedMedia,
        `the audio could not be read: ${message}`,
        {},
        {
          cause: error,
        },
      );
  }
}

/** The in-process probe in ffprobe's JSON shape, so both paths go through the same checks. */
function fromNativeProbe(native: NativeAudio, bytes: Uint8Array, timeoutSeconds: number): AudioProbe {
  let probe: NativeAudioProbe;
  try {
    probe = native.probeAudioFile(bytes, timeoutSeconds);
  } catch (error) {
    // ffprobe prints no stream for a file without audio; the caller refuses that.
    if ((error as { code?: unknown }).code === 'ENOAUDIO') return { streams: [] };
    throw nativeAudioError(error);
  }
  return {
    streams: [{ sample_rate: String(probe.sampleRate), channels: probe.channels }],
    ...(probe.duration === null ? {} : { format: { duration: String(probe.duration) } }),
  };
}

function decodeInProcess(
  native: NativeAudio,
  bytes: Uint8Array,
  plan: PlanarDecode,
): { sampleRate: number; channels: Float32Array[] } {
  let channels: Float32Array[];
  try {
    channels = native.decodeAudioFile(bytes, plan.initialFrames, plan.capFrames, plan.timeoutSeconds);
  } catch (error) {
    throw nativeAudioError(error, plan);
  }
  if (channels.length !== plan.channelCount) {
    throw new DomainError(
      ErrorCode.UnsupportedMedia,
      `the audio could not be read: it decodes to ${channels.length} channels, its header says ${plan.channelCount}`,
    );
  }
  return { sampleRate: plan.sampleRate, channels };
}

interface PlanarDecode {
  readonly sampleRate: number;
  readonly channelCount: number;
  readonly initialFrames: number;
  readonly capFrames: number;
  readonly maxDecoded: number;
  readonly timeoutSeconds: number;
}

/** Runs ffmpeg and splits its interleaved float32 stdout into channels as the chunks arrive. */
async function decodePlanar(
  tool: string,
  args: readonly string[],
  plan: PlanarDecode,
): Promise<{ sampleRate: number; channels: Float32Array[] }> {
  const { channelCount, capFrames } = plan;
  const frameBytes = 4 * channelCount;
  let channels = Array.from({ length: channelCount }, () => new Float32Array(plan.initialFrames));
  let frames = 0;
  // Bytes of an incomplete frame carried over to the next chunk.
  const carry = new Uint8Array(frameBytes);
  let carried = 0;
  const scratch = new DataView(carry.buffer);
  let overflow = false;

  const push = (chunk: Buffer): boolean => {
    let at = 0;
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (at < chunk.length) {
      if (frames >= channels[0]!.length) {
        if (frames >= capFrames) return false;
        const grown = Math.min(capFrames, Math.max(1024, Math.ceil(frames * 1.5)));
        channels = channels.map((c) => {
          const next = new Float32Array(grown);
          next.set(c);
          return next;
        });
      }
      if (carried > 0 || chunk.length - at < frameBytes) {
        const take = Math.min(frameBytes - carried, chunk.length - at);
        carry.set(chunk.subarray(at, at + take), carried);
        carried += take;
        at += take;
        if (carried < frameBytes) break;
        for (let c = 0; c < channelCount; c++) channels[c]![frames] = scratch.getFloat32(c * 4, true);
        carried = 0;
        frames++;
        continue;
      }
      const whole = Math.min(Math.floor((chunk.length - at) / frameBytes), channels[0]!.length - frames);
      for (let c = 0; c < channelCount; c++) {
        const out = channels[c]!;
        for (let i = 0, p = at + c * 4; i < whole; i++, p += frameBytes)
          out[frames + i] = view.getFloat32(p, true);
      }
      frames += whole;
      at += whole * frameBytes;
    }
    return true;
  };

  const name = tool.split('/').pop() ?? tool;
  await new Promise<void>((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(
      () => {
        timedOut = true;
        child.kill('SIGKILL');
      },
      Math.max(1, Math.round(plan.timeoutSeconds * 1000)),
    );
    child.stdout.on('data', (chunk: Buffer) => {
      if (overflow) return;
      if (!push(chunk)) {
        overflow = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 65536) stderr += chunk.toString('utf8');
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        error.code === 'ENOENT' || error.code === 'EACCES'
          ? DomainError.unavailable(
              `${name} could not be run (${tool}): install Debian's ffmpeg package (apt-get install ffmpeg), or set the tool path`,
              error,
            )
          : error,
      );
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (overflow) {
        reject(
          tooMuchAudio(
            `the file decodes to more than its header declared, past ${mib(plan.maxDecoded)}`,
            plan.maxDecoded,
          ),
        );
      } else if (timedOut) {
        reject(
          new DomainError(
            ErrorCode.DeadlineExceeded,
            `${name} did not finish within ${plan.timeoutSeconds} s (killed); the audio is too slow to decode`,
            { limit: plan.timeoutSeconds },
          ),
        );
      } else if (code !== 0) {
        const lines = stderr.split('\n').filter((l) => l.trim().length > 0);
        const why = (lines[lines.length - 1] ?? '').trim().slice(0, 300);
        reject(
          new DomainError(
            ErrorCode.UnsupportedMedia,
            `the audio could not be read: ${why || `${name} exited with ${code}`}`,
          ),
        );
      } else resolve();
    });
  });
  return {
    sampleRate: plan.sampleRate,
    // A view, not a copy: at most a second of slack stays allocated.
    channels: channels.map((c) => c.subarray(0, frames)),
  };
}

/** WAV natively (exact), any other container through ffmpeg (MODEL_SPEC §2.3). */
export async function preprocessAudioAny(
  bytes: Uint8Array,
  options: FfmpegAudioOptions = {},
): Promise<AudioPreprocessResult> {
  if (isWav(bytes) || bytes.length < 12) return preprocessAudio(bytes, options);
  return preprocessWaveform(await decodeAudioWithFfmpeg(bytes, options), options.allocateTensor);
}
