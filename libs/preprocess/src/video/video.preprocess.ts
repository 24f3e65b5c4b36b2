import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { DomainError, ErrorCode } from '@imagebind-llm/errors';

import { CLIP_MEAN, CLIP_STD } from '../image/image.preprocess';
import { linearAxis, resizeBilinearPlane, shortSideScaleSize } from './bilinear-resize';
import {
  decodeFramesRgb,
  listFramePts,
  probeVideo,
  type FfmpegTools,
  type VideoStreamInfo,
} from './ffmpeg.adapter';
import { sampleVideoClips, type ClipFrames } from './video-clip-sampler';

/**
 * ImageBind's `load_and_transform_video_data` for one video (MODEL_SPEC §2.2): 5 clips of 2 s, the
 * first and last frame of each, short side bilinearly scaled to 224 (no antialias), CLIP-normalised,
 * 3 spatial crops each → `[15, 3, 2, 224, 224]` float32. Demuxing, decoding and the yuv → RGB
 * conversion are FFmpeg's (`ffmpeg.adapter.ts`; Debian's `ffmpeg` package, installed by the CI);
 * everything after the RGB24 frames is TypeScript.
 */

export const VIDEO_CLIP_DURATION_SECONDS = 2;
export const VIDEO_CLIPS_PER_VIDEO = 5;
/** Frames kept per clip: the official code reuses `clip_duration` (2) for it. */
export const VIDEO_FRAMES_PER_CLIP = 2;
export const VIDEO_SPATIAL_CROPS = 3;
export const VIDEO_SIZE = 224;

export type VideoTensorShape = [15, 3, 2, 224, 224];
export const VIDEO_TENSOR_SHAPE: Readonly<VideoTensorShape> = [15, 3, 2, 224, 224];

export const DEFAULT_MAX_VIDEO_BYTES = 256 * 1024 * 1024;
/** 3840×2160 (4K UHD). */
export const DEFAULT_MAX_VIDEO_PIXELS = 3840 * 2160;
export const DEFAULT_MAX_VIDEO_DURATION_SECONDS = 600;
export const DEFAULT_MAX_VIDEO_FRAMES = 36_000;
/** Longest resized side accepted: an aspect ratio beyond 16:1 is refused, not scaled. */
export const MAX_VIDEO_ASPECT_RATIO = 16;

/** Container families FFmpeg may demux here (ffprobe `format_name` parts); playlists are refused. */
const ALLOWED_CONTAINERS = new Set([
  'mov',
  'mp4',
  'matroska',
  'webm',
  'avi',
  'mpegts',
  'mpeg',
  'flv',
  'ogg',
  'asf',
  'gif',
  'ivf',
]);

/** Guards against hostile input and where to find FFmpeg; every field has a default. */
export interface VideoPreprocessOptions extends FfmpegTools {
  /** Largest encoded size in bytes (buffer length or file size). */
  readonly maxBytes?: number;
  /** Largest width × height, checked on the stream header before any frame is decoded. */
  readonly maxPixels?: number;
  /** Longest loader duration `D` in seconds, checked on the header when it has one. */
  readonly maxDurationSeconds?: number;
  /** Most frames the stream may decode to. */
  readonly maxFrames?: number;
  /** Folder for the temporary copy of a buffer input (default: the OS temp folder). */
  readonly tempDir?: string;
}

export interface VideoPreprocessResult {
  /** `[15, 3, 2, 224, 224]`: clip-major, then crop (left|top, centre, right|bottom), C, T, H, W. */
  readonly tensor: Float32Array;
  readonly shape: VideoTensorShape;
  /** The stream header the loader used. */
  readonly stream: VideoStreamInfo;
  /** The loader's duration D in seconds (MODEL_SPEC B8), as a double for display. */
  readonly durationSeconds: number;
  /** Per clip: the pts window, the frame count in it, and the decoded frame indices kept. */
  readonly clips: readonly ClipFrames[];
  /** Size after ShortSideScale, before cropping. */
  readonly scaledSize: { readonly width: number; readonly height: number };
}

function positiveLimit(name: string, value: number, integer: boolean): number {
  if (!(integer ? Number.isSafeInteger(value) : Number.isFinite(value)) || value <= 0) {
    throw DomainError.invalidInput(
      `video limit ${name} must be a positive ${integer ? 'integer' : 'number'} (got ${value})`,
      name,
    );
  }
  return value;
}

function tooLarge(message: string, limit: number): DomainError {
  return new DomainError(ErrorCode.PayloadTooLarge, message, { limit });
}

function unsupported(message: string, cause?: unknown): DomainError {
  return new DomainError(
    ErrorCode.UnsupportedMedia,
    message,
    {},
    cause === undefined ? undefined : { cause },
  );
}

/** Crop origins (x, y) of SpatialCrop(224, 3): ceil centre offsets, MODEL_SPEC B9. */
export function spatialCropOffsets(
  width: number,
  height: number,
  size: number = VIDEO_SIZE,
): [number, number][] {
  const y0 = Math.ceil((height - size) / 2);
  const x0 = Math.ceil((width - size) / 2);
  if (height > width) {
    return [
      [x0, 0],
      [x0, y0],
      [x0, height - size],
    ];
  }
  return [
    [0, y0],
    [x0, y0],
    [width - size, y0],
  ];
}

/**
 * One RGB24 frame → 3 planes `(bilinear(p/255) − mean_c)/std_c` at the scaled size, float32
 * throughout (the loader divides by 255 before ShortSideScale and normalises after it).
 */
function scaleAndNormalizeFrame(
  rgb: Uint8Array,
  width: number,
  height: number,
  scaled: { width: number; height: number },
): Float32Array[] {
  const rows = linearAxis(height, scaled.height);
  const cols = linearAxis(width, scaled.width);
  const pixels = width * height;
  const plane = new Float32Array(pixels);
  const out: Float32Array[] = [];
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < pixels; i++) plane[i] = Math.fround(rgb[i * 3 + c]! / 255);
    const resized = new Float32Array(scaled.width * scaled.height);
    resizeBilinearPlane(plane, width, height, rows, cols, resized);
    const m = Math.fround(CLIP_MEAN[c]!);
    const s = Math.fround(CLIP_STD[c]!);
    for (let i = 0; i < resized.length; i++) resized[i] = Math.fround(Math.fround(resized[i]! - m) / s);
    out.push(resized);
  }
  return out;
}

/** Runs `body` on a file path: the given path, or a private temporary copy of the bytes. */
async function withInputFile<T>(
  input: Uint8Array | string,
  maxBytes: number,
  tempDir: string | undefined,
  body: (path: string) => Promise<T>,
): Promise<T> {
  if (typeof input === 'string') {
    let size: number;
    try {
      const info = await stat(input);
      if (!info.isFile()) throw DomainError.invalidInput(`the video path is not a regular file: ${input}`);
      size = info.size;
    } catch (error) {
      if (error instanceof DomainError) throw error;
      throw DomainError.invalidInput(`the video file cannot be read: ${input}`);
    }
    if (size === 0) throw DomainError.invalidInput('the video is empty (0 bytes)');
    if (size > maxBytes) throw tooLarge(`the video is ${size} bytes; the limit is ${maxBytes}`, maxBytes);
    return body(resolve(input));
  }
  if (input.length === 0) throw DomainError.invalidInput('the video is empty (0 bytes)');
  if (input.length > maxBytes)
    throw tooLarge(`the video is ${input.length} bytes; the limit is ${maxBytes}`, maxBytes);
  const dir = await mkdtemp(join(tempDir ?? tmpdir(), 'ibllm-video-'));
  try {
    const path = join(dir, 'input');
    await writeFile(path, input, { mode: 0o600 });
    return await body(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Video bytes or a file path → ImageBind video tensor. Errors are DomainErrors: INVALID_INPUT for
 * an empty input or bad options; PAYLOAD_TOO_LARGE above the byte, pixel, duration or frame limits
 * (pixels and, when the header has it, duration are checked before decoding); UNSUPPORTED_MEDIA for
 * a corrupt or truncated file, a file without a video stream, an unsupported container, or a clip
 * window without frames (the official loader's "No clip found"); DEPENDENCY_UNAVAILABLE when
 * ffmpeg/ffprobe are not installed; DEADLINE_EXCEEDED when a run passes `timeoutSeconds`.
 *
 * A video shorter than 2 s (even a single frame) is valid, as officially: every clip window is
 * `[0, 2 s)`, and with one frame in it both kept frames are that frame.
 */
export async function preprocessVideo(
  input: Uint8Array | string,
  options: VideoPreprocessOptions = {},
): Promise<VideoPreprocessResult> {
  const maxBytes = positiveLimit('maxBytes', options.maxBytes ?? DEFAULT_MAX_VIDEO_BYTES, true);
  const maxPixels = positiveLimit('maxPixels', options.maxPixels ?? DEFAULT_MAX_VIDEO_PIXELS, true);
  const maxDuration = positiveLimit(
    'maxDurationSeconds',
    options.maxDurationSeconds ?? DEFAULT_MAX_VIDEO_DURATION_SECONDS,
    false,
  );
  const maxFrames = positiveLimit('maxFrames', options.maxFrames ?? DEFAULT_MAX_VIDEO_FRAMES, true);
  if (options.timeoutSeconds !== undefined) positiveLimit('timeoutSeconds', options.timeoutSeconds, false);

  return withInputFile(input, maxBytes, options.tempDir, async (path) => {
    const stream = await probeVideo(path, maxPixels, options);
    const families = stream.container.split(',');
    if (!families.some((f) => ALLOWED_CONTAINERS.has(f))) {
      throw unsupported(`unsupported video container ${JSON.stringify(stream.container)}`);
    }
    const pixels = stream.width * stream.height;
    if (pixels > maxPixels) {
      throw tooLarge(
        `the video is ${stream.width}×${stream.height} = ${pixels} pixels a frame; the limit is ${maxPixels}`,
        maxPixels,
      );
    }
    const scaledSize = shortSideScaleSize(stream.width, stream.height, VIDEO_SIZE);
    if (Math.max(scaledSize.width, scaledSize.height) > VIDEO_SIZE * MAX_VIDEO_ASPECT_RATIO) {
      throw unsupported(
        `the video is ${stream.width}×${stream.height}; aspect ratios beyond ${MAX_VIDEO_ASPECT_RATIO}:1 are not supported`,
      );
    }
    if (stream.declaredFrames !== undefined && stream.declaredFrames > maxFrames) {
      throw tooLarge(
        `the video declares ${stream.declaredFrames} frames; the limit is ${maxFrames}`,
        maxFrames,
      );
    }
    const { num, den } = stream.timeBase;
    const checkDuration = (durationPts: bigint): void => {
      const seconds = (Number(durationPts - (stream.startPts ?? 0n)) * Number(num)) / Number(den);
      if (seconds > maxDuration) {
        throw tooLarge(`the video lasts ${seconds.toFixed(3)} s; the limit is ${maxDuration} s`, maxDuration);
      }
    };
    if (stream.durationPts !== undefined) checkDuration(stream.durationPts);

    const framePts = await listFramePts(path, maxPixels, maxFrames, options);
    if (framePts.length === 0) throw unsupported('the video stream has no decodable frames');
    if (stream.durationPts === undefined) checkDuration(framePts.reduce((a, b) => (b > a ? b : a)));

    let sampling;
    try {
      sampling = sampleVideoClips({
        timeBase: stream.timeBase,
        startPts: stream.startPts,
        durationPts: stream.durationPts,
        framePts,
        clipDurationSeconds: VIDEO_CLIP_DURATION_SECONDS,
        clipsPerVideo: VIDEO_CLIPS_PER_VIDEO,
        framesPerClip: VIDEO_FRAMES_PER_CLIP,
      });
    } catch (error) {
      // The official loader stops with "No clip found" here.
      throw unsupported(`No clip found: ${error instanceof Error ? error.message : String(error)}`, error);
    }

    const wanted = [...new Set(sampling.clips.flatMap((clip) => clip.frameIndices))].sort((a, b) => a - b);
    const rgb = await decodeFramesRgb(
      path,
      {
        frameIndices: wanted,
        width: stream.width,
        height: stream.height,
        pixelFormat: stream.pixelFormat,
        maxPixels,
      },
      options,
    );
    const planes = new Map<number, Float32Array[]>();
    wanted.forEach((index, i) => {
      planes.set(index, scaleAndNormalizeFrame(rgb[i]!, stream.width, stream.height, scaledSize));
    });

    const size = VIDEO_SIZE;
    const cropPlane = size * size;
    const tensor = new Float32Array(
      VIDEO_CLIPS_PER_VIDEO * VIDEO_SPATIAL_CROPS * 3 * VIDEO_FRAMES_PER_CLIP * cropPlane,
    );
    const offsets = spatialCropOffsets(scaledSize.width, scaledSize.height, size);
    // MODEL_SPEC §2.2 step 9: clip0-crop0, clip0-crop1, clip0-crop2, clip1-crop0, …
    sampling.clips.forEach((clip, k) => {
      offsets.forEach(([x0, y0], crop) => {
        for (let c = 0; c < 3; c++) {
          clip.frameIndices.forEach((frame, t) => {
            const src = planes.get(frame)![c]!;
            const base =
              ((((k * VIDEO_SPATIAL_CROPS + crop) * 3 + c) * VIDEO_FRAMES_PER_CLIP + t) * cropPlane) | 0;
            for (let y = 0; y < size; y++) {
              const from = (y0 + y) * scaledSize.width + x0;
              tensor.set(src.subarray(from, from + size), base + y * size);
            }
          });
        }
      });
    });

    return {
      tensor,
      shape: [...VIDEO_TENSOR_SHAPE] as VideoTensorShape,
      stream,
      durationSeconds: Number(sampling.duration.num) / Number(sampling.duration.den),
      clips: sampling.clips,
      scaledSize,
    };
  });
}
