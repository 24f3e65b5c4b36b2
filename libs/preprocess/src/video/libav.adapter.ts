import { DomainError, ErrorCode } from '@imagebind-llm/errors';

import type { MediaNative } from '../native/media-native';
import {
  parseStreamInfo,
  timeoutOf,
  type DecodeRequest,
  type FfmpegTools,
  type VideoPacket,
  type VideoPacketProbe,
} from './ffmpeg.adapter';

/**
 * `probeVideoPackets` and `decodeChosenFramesRgb` of ffmpeg.adapter.ts, run in process by the
 * ibllm_media addon on the same FFmpeg libraries (native/video.c): the same demuxer, packet list,
 * decoder (one thread), frame numbering and swscale conversion, without two process starts per
 * video, on the calling thread (a pool worker's), from a file or from the bytes where they are. The results are the command lines' results (the video int-spec compares them byte for
 * byte); the stream header goes through the same checks (`parseStreamInfo`).
 */

/** The addon's video entry points, when it was built with FFmpeg's headers. */
export type NativeVideo = Required<Pick<MediaNative, 'probeVideoPackets' | 'decodeVideoFrames'>>;

export function nativeVideo(native: MediaNative | undefined): NativeVideo | undefined {
  if (native?.probeVideoPackets === undefined || native.decodeVideoFrames === undefined) return undefined;
  return { probeVideoPackets: native.probeVideoPackets, decodeVideoFrames: native.decodeVideoFrames };
}

/** The addon's coded errors as the command-line path reports the same failures. */
function domainError(error: unknown, timeoutSeconds: number): DomainError {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  switch (code) {
    case 'ENOVIDEO':
      return new DomainError(ErrorCode.UnsupportedMedia, 'the file has no video stream');
    case 'ETIMEOUT':
      return new DomainError(
        ErrorCode.DeadlineExceeded,
        `the video did not decode within ${timeoutSeconds} s; the video is too slow to decode`,
        { limit: timeoutSeconds },
        { cause: error },
      );
    case 'EMEMORY':
      return new DomainError(
        ErrorCode.PayloadTooLarge,
        `the video needs too much memory to decode: ${message}`,
        {},
        {
          cause: error,
        },
      );
    default:
      return new DomainError(
        ErrorCode.UnsupportedMedia,
        `the video could not be read: ${message}`,
        {},
        { cause: error },
      );
  }
}

const FLAG_KEY = 1;
const FLAG_DISCARD = 2;
const FLAG_CORRUPT = 4;
const FLAG_NO_PTS = 0x80;

/**
 * In-process `probeVideoPackets`: the header and every packet's pts and ffprobe-style flags, from
 * a file's path or its bytes (read in place).
 */
export function probeVideoPacketsInProcess(
  video: NativeVideo,
  input: string | Uint8Array,
  maxPixels: number,
  maxPackets: number,
  tools: FfmpegTools = {},
): VideoPacketProbe {
  const timeout = timeoutOf(tools);
  let probe;
  try {
    probe = video.probeVideoPackets(input, maxPixels, maxPackets, timeout);
  } catch (error) {
    throw domainError(error, timeout);
  }
  if (probe.truncated) {
    throw new DomainError(
      ErrorCode.PayloadTooLarge,
      `the video has more than ${maxPackets} frames; the limit is ${maxPackets}`,
      { limit: maxPackets },
    );
  }
  const text = (v: bigint | number | null): string | undefined => (v === null ? undefined : String(v));
  const stream = parseStreamInfo({
    streams: [
      {
        codec_type: 'video',
        codec_name: probe.codec,
        pix_fmt: probe.pixelFormat,
        width: probe.width,
        height: probe.height,
        time_base: `${probe.timeBaseNum}/${probe.timeBaseDen}`,
        start_pts: text(probe.startPts),
        duration_ts: text(probe.durationPts),
        nb_frames: text(probe.frames),
      },
    ],
    format: { format_name: probe.container },
  });
  const packets: VideoPacket[] = [];
  for (let i = 0; i < probe.flags.length; i++) {
    const f = probe.flags[i]!;
    packets.push({
      pts: (f & FLAG_NO_PTS) !== 0 ? undefined : probe.pts[i]!,
      flags: `${f & FLAG_KEY ? 'K' : '_'}${f & FLAG_DISCARD ? 'D' : '_'}${f & FLAG_CORRUPT ? 'C' : '_'}`,
    });
  }
  return { stream, packets };
}

/**
 * In-process `decodeChosenFramesRgb`: the chosen frames as RGB24, or undefined when one of them is
 * not there as asked (by number, pts or size), exactly when the command line's output is short.
 */
export function decodeChosenFramesInProcess(
  video: NativeVideo,
  input: string | Uint8Array,
  request: DecodeRequest,
  tools: FfmpegTools = {},
): Uint8Array[] | undefined {
  const { frameIndices, framePts, width, height } = request;
  if (frameIndices.length === 0) return [];
  if (framePts !== undefined && framePts.length !== frameIndices.length) {
    throw new RangeError('decodeChosenFramesInProcess: framePts must be parallel to frameIndices');
  }
  const timeout = timeoutOf(tools);
  let bytes: Uint8Array | null;
  try {
    bytes = video.decodeVideoFrames(
      input,
      request.maxPixels,
      Int32Array.from(frameIndices),
      framePts === undefined ? null : BigInt64Array.from(framePts),
      request.headerDescribesStream !== true,
      width,
      height,
      request.pixelFormat.startsWith('yuvj'),
      timeout,
    );
  } catch (error) {
    throw domainError(error, timeout);
  }
  if (bytes === null) return undefined;
  const frameBytes = width * height * 3;
  return frameIndices.map((_, i) => bytes.subarray(i * frameBytes, (i + 1) * frameBytes));
}
