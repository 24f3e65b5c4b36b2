import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { DomainError, ErrorCode } from '@imagebind-llm/errors';

import { CLIP_MEAN, CLIP_STD } from '../image/image.preprocess';
import { linearAxis, shortSideScaleSize } from './bilinear-resize';
import {
  decodeChosenFramesRgb,
  decodeFramesRgb,
  listFramePts,
  presentationPtsFromPackets,
  probeVideoPackets,
  type FfmpegTools,
  type VideoStreamInfo,
} from './ffmpeg.adapter';
import { decodeChosenFramesInProcess, nativeVideo, probeVideoPacketsInProcess } from './libav.adapter';
import { sampleVideoClips, type ClipFrames, type ClipSampling } from './video-clip-sampler';
import { mediaNative } from '../native/media-native';
import { newTensor, type TensorAllocator } from '../reusable-buffers';

/**
 * ImageBind's `load_and_transform_video_data` for one video (MODEL_SPEC §2.2): 5 clips of 2 s, the
 * first and last frame of each, short side bilinearly scaled to 224 (no antialias), CLIP-normalised,
 * 3 spatial crops each → `[15, 3, 2, 224, 224]` float32. Demuxing, decoding and the yuv → RGB
 * conversion are FFmpeg's: in process through the ibllm_media addon (`libav.adapter.ts`) when it
 * is built, else the ffprobe/ffmpeg command lines (`ffmpeg.adapter.ts`; Debian's `ffmpeg`
 * package, installed by the CI) — the same libraries, the same bytes. The float32 steps after the
 * RGB24 frames run in the addon's C (`videoTensor`) when it is built, else in TypeScript here.
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

/** Containers whose header alone gives every stream parameter the decoder needs (no trial decode). */
const FULL_HEADER_CONTAINERS = new Set(['mov', 'mp4', 'matroska', 'webm']);

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
  /**
   * Where the frame timestamps the clips are chosen by come from. `packets` (default): read off
   * the demuxed packets in the same ffprobe run as the header, nothing decoded twice; a stream
   * where packets and decoded frames could disagree (see `presentationPtsFromPackets`), or whose
   * chosen frames do not decode as numbered with those pts, is redone the `decoded` way.
   * `decoded`: decode the whole stream once to list the frames' pts, as the official loader sees
   * them, then decode the chosen frames (one ffmpeg run more).
   */
  readonly frameTimestamps?: 'packets' | 'decoded';
  /** Gives the output tensor (default a new buffer). */
  readonly allocateTensor?: TensorAllocator;
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
  /** Where the frame timestamps came from in the end (see `frameTimestamps`). */
  readonly frameTimestamps: 'packets' | 'decoded';
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

/** `p/255` in float32 for every byte value, as the loader divides before ShortSideScale. */
const UNIT_BYTE = Float32Array.from({ length: 256 }, (_, p) => p / 255);

/**
 * Scales RGB24 frames of one size to 3 planes `(bilinear(p/255) − mean_c)/std_c` at the scaled
 * size, float32 throughout (§2.2 steps 5–7), with the same roundings in the same order as
 * `resizeBilinearPlane` on a `p/255` plane followed by the normalisation. The horizontal tap
 * products are tabled per column and byte value, each source row's horizontal pass is computed
 * once and reused by both output rows that read it, and the normalisation is fused into the
 * vertical pass.
 */
export function videoFrameScaler(
  width: number,
  height: number,
  scaled: { width: number; height: number },
): (rgb: Uint8Array) => Float32Array[] {
  const rows = linearAxis(height, scaled.height);
  const cols = linearAxis(width, scaled.width);
  const outWidth = scaled.width;
  const outHeight = scaled.height;
  const byte0 = cols.i0.map((i) => i * 3);
  const byte1 = cols.i1.map((i) => i * 3);
  // Per output column, both horizontal taps for every byte value: float32(p/255 · w).
  const tap0 = new Float32Array(outWidth * 256);
  const tap1 = new Float32Array(outWidth * 256);
  for (let x = 0; x < outWidth; x++) {
    for (let p = 0; p < 256; p++) {
      tap0[x * 256 + p] = UNIT_BYTE[p]! * cols.w0[x]!;
      tap1[x * 256 + p] = UNIT_BYTE[p]! * cols.w1[x]!;
    }
  }
  // The source rows some output row reads, each with a row in the horizontal-pass buffers.
  const slotOf = new Int32Array(height).fill(-1);
  const sourceRows: number[] = [];
  for (let y = 0; y < outHeight; y++) {
    for (const r of [rows.i0[y]!, rows.i1[y]!]) {
      if (slotOf[r] === -1) {
        slotOf[r] = sourceRows.length;
        sourceRows.push(r);
      }
    }
  }
  const h0 = new Float32Array(sourceRows.length * outWidth);
  const h1 = new Float32Array(sourceRows.length * outWidth);
  const h2 = new Float32Array(sourceRows.length * outWidth);
  const horizontal = [h0, h1, h2];
  const mean = [0, 1, 2].map((c) => Math.fround(CLIP_MEAN[c]!));
  const std = [0, 1, 2].map((c) => Math.fround(CLIP_STD[c]!));

  return (rgb) => {
    if (rgb.length !== width * height * 3) throw new RangeError('video frame: byte size does not match');
    const f = Math.fround;
    // A Float32Array store rounds to float32 exactly as Math.fround does, so the outer rounding
    // of each sum and quotient is the store's.
    for (let k = 0; k < sourceRows.length; k++) {
      const row = sourceRows[k]! * width * 3;
      const o = k * outWidth;
      for (let x = 0; x < outWidth; x++) {
        const p0 = row + byte0[x]!;
        const p1 = row + byte1[x]!;
        const t = x * 256;
        h0[o + x] = tap0[t + rgb[p0]!]! + tap1[t + rgb[p1]!]!;
        h1[o + x] = tap0[t + rgb[p0 + 1]!]! + tap1[t + rgb[p1 + 1]!]!;
        h2[o + x] = tap0[t + rgb[p0 + 2]!]! + tap1[t + rgb[p1 + 2]!]!;
      }
    }
    const planes: Float32Array[] = [];
    for (let c = 0; c < 3; c++) {
      const h = horizontal[c]!;
      const m = mean[c]!;
      const s = std[c]!;
      const out = new Float32Array(outWidth * outHeight);
      for (let y = 0; y < outHeight; y++) {
        const s0 = slotOf[rows.i0[y]!]! * outWidth;
        const s1 = slotOf[rows.i1[y]!]! * outWidth;
        const b0 = rows.w0[y]!;
        const b1 = rows.w1[y]!;
        const o = y * outWidth;
        for (let x = 0; x < outWidth; x++) {
          const v = f(f(h[s0 + x]! * b0) + f(h[s1 + x]! * b1));
          out[o + x] = f(v - m) / s;
        }
      }
      planes.push(out);
    }
    return planes;
  };
}

/** Where a video is read from. */
interface VideoSource {
  /** The bytes, when they came as bytes: the in-process decoder reads them where they are. */
  readonly bytes: Uint8Array | undefined;
  /** A file holding the video: the given path, or a private temporary copy of the bytes, made when first asked. */
  path(): Promise<string>;
}

/**
 * Runs `body` on the input: a path is checked (a regular file within `maxBytes`); bytes are
 * written to a temporary file only if `body` asks for a path (the command lines need one), and it
 * is removed when `body` settles.
 */
async function withVideoSource<T>(
  input: Uint8Array | string,
  maxBytes: number,
  tempDir: string | undefined,
  body: (source: VideoSource) => Promise<T>,
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
    const path = resolve(input);
    return body({ bytes: undefined, path: () => Promise.resolve(path) });
  }
  if (input.length === 0) throw DomainError.invalidInput('the video is empty (0 bytes)');
  if (input.length > maxBytes)
    throw tooLarge(`the video is ${input.length} bytes; the limit is ${maxBytes}`, maxBytes);
  let dir: Promise<string> | undefined;
  let file: Promise<string> | undefined;
  const path = (): Promise<string> =>
    (file ??= (async () => {
      dir = mkdtemp(join(tempDir ?? tmpdir(), 'ibllm-video-'));
      const inside = join(await dir, 'input');
      await writeFile(inside, input, { mode: 0o600 });
      return inside;
    })());
  try {
    return await body({ bytes: input, path });
  } finally {
    const made = await dir?.catch(() => undefined);
    if (made !== undefined) await rm(made, { recursive: true, force: true });
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

  // FFmpeg's libraries in process when the addon has them, else the ffprobe/ffmpeg command lines
  // (always those when the caller names the tools).
  const native = mediaNative();
  const namedTools = options.ffprobePath !== undefined || options.ffmpegPath !== undefined;
  const inProcess = namedTools ? undefined : nativeVideo(native);
  return withVideoSource(input, maxBytes, options.tempDir, async (source) => {
    // The in-process decoder reads bytes where they are; the command lines read a file.
    const inProcessInput = async (): Promise<string | Uint8Array> => source.bytes ?? source.path();
    const probe =
      inProcess === undefined
        ? await probeVideoPackets(await source.path(), maxPixels, maxFrames, options)
        : probeVideoPacketsInProcess(inProcess, await inProcessInput(), maxPixels, maxFrames, options);
    const stream = probe.stream;
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
    if (probe.packets.length > maxFrames) {
      throw tooLarge(`the video has ${probe.packets.length} frames; the limit is ${maxFrames}`, maxFrames);
    }

    /**
     * Chooses the clip frames from a frame pts list and decodes them. With `fromPackets`, any sign
     * that the packets told a different story than decoding would (no frame, no clip, a chosen
     * frame missing) gives undefined, and the caller asks the decoder instead; otherwise those
     * are the official loader's errors.
     */
    const chooseAndDecode = async (
      framePts: readonly bigint[],
      fromPackets: boolean,
    ): Promise<{ sampling: ClipSampling; wanted: number[]; rgb: Uint8Array[] } | undefined> => {
      if (framePts.length === 0) {
        if (fromPackets) return undefined;
        throw unsupported('the video stream has no decodable frames');
      }
      if (stream.durationPts === undefined) checkDuration(framePts.reduce((a, b) => (b > a ? b : a)));
      let sampling: ClipSampling;
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
        if (fromPackets) return undefined;
        // The official loader stops with "No clip found" here.
        throw unsupported(`No clip found: ${error instanceof Error ? error.message : String(error)}`, error);
      }
      const wanted = [...new Set(sampling.clips.flatMap((clip) => clip.frameIndices))].sort((a, b) => a - b);
      const request = {
        frameIndices: wanted,
        width: stream.width,
        height: stream.height,
        pixelFormat: stream.pixelFormat,
        maxPixels,
      };
      const chosenByPackets = {
        ...request,
        framePts: wanted.map((n) => framePts[n]!),
        headerDescribesStream,
      };
      const rgb = !fromPackets
        ? await decodeFramesRgb(await source.path(), request, options)
        : inProcess === undefined
          ? await decodeChosenFramesRgb(await source.path(), chosenByPackets, options)
          : decodeChosenFramesInProcess(inProcess, await inProcessInput(), chosenByPackets, options);
      return rgb === undefined ? undefined : { sampling, wanted, rgb };
    };

    const headerDescribesStream = families.some((f) => FULL_HEADER_CONTAINERS.has(f));
    const packetPts =
      options.frameTimestamps === 'decoded' ? undefined : presentationPtsFromPackets(probe.packets);
    let chosen = packetPts === undefined ? undefined : await chooseAndDecode(packetPts, true);
    const frameTimestamps = chosen === undefined ? 'decoded' : 'packets';
    // The decoded way resolves a choice or throws, never undefined.
    chosen ??= (await chooseAndDecode(
      await listFramePts(await source.path(), maxPixels, maxFrames, options),
      false,
    ))!;
    const { sampling, wanted, rgb } = chosen;

    const size = VIDEO_SIZE;
    const cropPlane = size * size;
    // Every element is written: each clip, crop, channel and frame's size × size window.
    const tensor = (options.allocateTensor ?? newTensor)(
      VIDEO_CLIPS_PER_VIDEO * VIDEO_SPATIAL_CROPS * 3 * VIDEO_FRAMES_PER_CLIP * cropPlane,
    );
    const offsets = spatialCropOffsets(scaledSize.width, scaledSize.height, size);
    if (native !== undefined) {
      // The same float32 steps in C (native/video-tensor.c), all chosen frames in one call.
      const slot = new Map(wanted.map((index, i) => [index, i]));
      const rows = linearAxis(stream.height, scaledSize.height);
      const cols = linearAxis(stream.width, scaledSize.width);
      native.videoTensor(
        contiguous(rgb),
        rgb.length,
        stream.width,
        stream.height,
        rows.i0,
        rows.i1,
        rows.w0,
        rows.w1,
        cols.i0,
        cols.i1,
        cols.w0,
        cols.w1,
        CLIP_MEAN_STD,
        Int32Array.from(sampling.clips.flatMap((clip) => clip.frameIndices.map((n) => slot.get(n)!))),
        VIDEO_FRAMES_PER_CLIP,
        Int32Array.from(offsets.flat()),
        size,
        tensor,
      );
      return result(tensor);
    }
    const scale = videoFrameScaler(stream.width, stream.height, scaledSize);
    const planes = new Map<number, Float32Array[]>();
    wanted.forEach((index, i) => planes.set(index, scale(rgb[i]!)));
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

    return result(tensor);

    function result(tensor: Float32Array): VideoPreprocessResult {
      return {
        tensor,
        shape: [...VIDEO_TENSOR_SHAPE] as VideoTensorShape,
        stream,
        durationSeconds: Number(sampling.duration.num) / Number(sampling.duration.den),
        clips: sampling.clips,
        scaledSize,
        frameTimestamps,
      };
    }
  });
}

/** `[mean_0, mean_1, mean_2, std_0, std_1, std_2]` as float32, for the addon. */
const CLIP_MEAN_STD = Float32Array.from([...CLIP_MEAN, ...CLIP_STD]);

/** Frames of equal size back to back in one buffer (no copy when they already are). */
function contiguous(frames: readonly Uint8Array[]): Uint8Array {
  const first = frames[0]!;
  const inPlace = frames.every(
    (f, i) => f.buffer === first.buffer && f.byteOffset === first.byteOffset + i * first.byteLength,
  );
  if (inPlace) return new Uint8Array(first.buffer, first.byteOffset, first.byteLength * frames.length);
  const out = new Uint8Array(first.byteLength * frames.length);
  frames.forEach((f, i) => out.set(f, i * first.byteLength));
  return out;
}
