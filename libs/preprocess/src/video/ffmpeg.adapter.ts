import { execFile, type ExecFileException } from 'node:child_process';

import { DomainError, ErrorCode } from '@imagebind-llm/errors';

/**
 * The one place that runs `ffprobe` / `ffmpeg`. The binaries come from Debian's `ffmpeg` package
 * (`apt-get install ffmpeg`; the CI installs it, and the golden video was decoded by PyAV on the
 * same FFmpeg 5.1 libraries). Every call is an argument array (no shell), has a wall-clock limit
 * after which the process is killed, and a cap on how much it may print.
 */

export interface FfmpegTools {
  /** Path or name of `ffprobe` (default: `ffprobe` on PATH). */
  readonly ffprobePath?: string;
  /** Path or name of `ffmpeg` (default: `ffmpeg` on PATH). */
  readonly ffmpegPath?: string;
  /** Wall-clock limit for each ffprobe/ffmpeg run, in seconds. */
  readonly timeoutSeconds?: number;
}

export const DEFAULT_FFMPEG_TIMEOUT_SECONDS = 60;

/** What the loader needs to know about the first video stream (MODEL_SPEC §2.2 step 1). */
export interface VideoStreamInfo {
  /** ffprobe's `format_name`, e.g. `mov,mp4,m4a,3gp,3g2,mj2`. */
  readonly container: string;
  readonly codec: string;
  readonly pixelFormat: string;
  readonly width: number;
  readonly height: number;
  /** Stream time base as an exact fraction. */
  readonly timeBase: { readonly num: bigint; readonly den: bigint };
  /** Stream `start_time` in time-base units, undefined when absent. */
  readonly startPts: bigint | undefined;
  /** Stream `duration` in time-base units, undefined when absent. */
  readonly durationPts: bigint | undefined;
  /** Frame count from the container header, undefined when absent. */
  readonly declaredFrames: number | undefined;
}

export interface RunOptions {
  /** What the input is, for messages ("video" unless said otherwise). */
  readonly what?: string;
  readonly timeoutSeconds: number;
  readonly maxOutputBytes: number;
  /** The `-max_pixels` passed to the decoder, for the error message. */
  readonly maxPixels: number;
}

const INSTALL_HINT = "install Debian's ffmpeg package (apt-get install ffmpeg), or set the tool path";

function unsupported(message: string, cause?: unknown): DomainError {
  return new DomainError(
    ErrorCode.UnsupportedMedia,
    message,
    {},
    cause === undefined ? undefined : { cause },
  );
}

/** The last meaningful line ffmpeg printed, for error messages (never the whole log). */
function lastLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const line = lines[lines.length - 1] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** Runs a tool and resolves with its stdout; maps every failure to a DomainError. */
export async function runMediaTool(
  tool: string,
  args: readonly string[],
  options: RunOptions,
): Promise<Buffer> {
  const what = options.what ?? 'video';
  return new Promise((resolve, reject) => {
    execFile(
      tool,
      args,
      {
        encoding: 'buffer',
        timeout: Math.max(1, Math.round(options.timeoutSeconds * 1000)),
        killSignal: 'SIGKILL',
        maxBuffer: options.maxOutputBytes,
        windowsHide: true,
      },
      (error: ExecFileException | null, stdout: Buffer, stderr: Buffer) => {
        if (error === null) {
          resolve(stdout);
          return;
        }
        const name = tool.split('/').pop() ?? tool;
        if (error.code === 'ENOENT') {
          reject(DomainError.unavailable(`${name} was not found (${tool}): ${INSTALL_HINT}`, error));
        } else if (error.code === 'EACCES') {
          reject(DomainError.unavailable(`${name} is not executable (${tool}): ${INSTALL_HINT}`, error));
        } else if (error.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') {
          reject(
            new DomainError(
              ErrorCode.PayloadTooLarge,
              `${name} produced more than ${options.maxOutputBytes} bytes of output; the ${what} exceeds a limit`,
              { limit: options.maxOutputBytes },
              { cause: error },
            ),
          );
        } else if (error.killed === true) {
          reject(
            new DomainError(
              ErrorCode.DeadlineExceeded,
              `${name} did not finish within ${options.timeoutSeconds} s (killed); the ${what} is too slow to decode`,
              { limit: options.timeoutSeconds },
              { cause: error },
            ),
          );
        } else if (stderr.toString('utf8').includes('exceeds specified max pixel count')) {
          // The decoder's own frame-size cap (-max_pixels) fired before any frame was allocated.
          reject(
            new DomainError(
              ErrorCode.PayloadTooLarge,
              `the video's frame size exceeds the limit of ${options.maxPixels} pixels`,
              { limit: options.maxPixels },
              { cause: error },
            ),
          );
        } else {
          const why = lastLine(stderr.toString('utf8'));
          reject(
            unsupported(
              `the ${what} could not be read: ${why || `${name} exited with ${error.code}`}`,
              error,
            ),
          );
        }
      },
    );
  });
}

/** `file:` keeps ffmpeg from reading the path as a protocol (`http:`, `concat:`) or an option. */
function inputUrl(path: string): string {
  return `file:${path}`;
}

/** Input options shared by every call: local files only, and a decoder frame-size cap. */
function inputArgs(path: string, maxPixels: number): string[] {
  return ['-protocol_whitelist', 'file', '-max_pixels', String(maxPixels), '-i', inputUrl(path)];
}

function toolPath(tools: FfmpegTools, name: 'ffprobe' | 'ffmpeg'): string {
  return (name === 'ffprobe' ? tools.ffprobePath : tools.ffmpegPath) ?? name;
}

export function timeoutOf(tools: FfmpegTools): number {
  return tools.timeoutSeconds ?? DEFAULT_FFMPEG_TIMEOUT_SECONDS;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(stdout: Buffer, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout.toString('utf8'));
  } catch (error) {
    throw unsupported(`ffprobe printed unreadable ${what}`, error);
  }
  if (!isRecord(parsed)) throw unsupported(`ffprobe printed unreadable ${what}`);
  return parsed;
}

/** An integer field that ffprobe prints as a JSON number or a decimal string; undefined when absent. */
function integerField(record: Record<string, unknown>, key: string): bigint | undefined {
  const value = record[key];
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?\d{1,19}$/.test(value)) return BigInt(value);
  if (value === undefined || value === 'N/A') return undefined;
  throw unsupported(`ffprobe reported a bad ${key}: ${JSON.stringify(value)}`);
}

function stringField(record: Record<string, unknown>, key: string): string {
  const value = record[key];
  return typeof value === 'string' ? value : '';
}

const STREAM_ENTRIES =
  'stream=codec_type,codec_name,width,height,pix_fmt,time_base,start_pts,duration_ts,nb_frames:format=format_name';

/** The first video stream's header out of ffprobe's JSON (`streams` and `format` sections), checked. */
export function parseStreamInfo(json: Record<string, unknown>): VideoStreamInfo {
  const streams = Array.isArray(json['streams']) ? (json['streams'] as unknown[]) : [];
  const stream = streams[0];
  if (!isRecord(stream) || stream['codec_type'] !== 'video') {
    throw unsupported('the file has no video stream');
  }
  const format = isRecord(json['format']) ? json['format'] : {};
  const width = integerField(stream, 'width');
  const height = integerField(stream, 'height');
  if (
    width === undefined ||
    height === undefined ||
    width < 1n ||
    height < 1n ||
    width > 1n << 20n ||
    height > 1n << 20n
  ) {
    throw unsupported(`the video stream has no usable frame size (${String(width)}×${String(height)})`);
  }
  const tb = /^(\d{1,12})\/(\d{1,12})$/.exec(stringField(stream, 'time_base'));
  const num = BigInt(tb?.[1] ?? '0');
  const den = BigInt(tb?.[2] ?? '0');
  if (num === 0n || den === 0n) {
    throw unsupported(`the video stream has no usable time base (${stringField(stream, 'time_base')})`);
  }
  const frames = integerField(stream, 'nb_frames');
  return {
    container: stringField(format, 'format_name'),
    codec: stringField(stream, 'codec_name'),
    pixelFormat: stringField(stream, 'pix_fmt'),
    width: Number(width),
    height: Number(height),
    timeBase: { num, den },
    startPts: integerField(stream, 'start_pts'),
    durationPts: integerField(stream, 'duration_ts'),
    declaredFrames:
      frames === undefined || frames > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(frames),
  };
}

/** ffprobe's arguments to print `entries` of the first video stream in `format`. */
function ffprobeVideoArgs(path: string, maxPixels: number, entries: string, format: string): string[] {
  return [
    '-v',
    'error',
    ...inputArgs(path, maxPixels),
    '-select_streams',
    'v:0',
    '-show_entries',
    entries,
    '-of',
    format,
  ];
}

/** Reads the container and first video stream header (`ffprobe`); decodes nothing beyond probing. */
export async function probeVideo(
  path: string,
  maxPixels: number,
  tools: FfmpegTools = {},
): Promise<VideoStreamInfo> {
  const stdout = await runMediaTool(
    toolPath(tools, 'ffprobe'),
    ffprobeVideoArgs(path, maxPixels, STREAM_ENTRIES, 'json'),
    { timeoutSeconds: timeoutOf(tools), maxOutputBytes: 1 << 20, maxPixels },
  );
  return parseStreamInfo(parseJson(stdout, 'stream information'));
}

const SAFE_PTS = BigInt(Number.MAX_SAFE_INTEGER);

/** One demuxed packet of the video stream, as ffprobe lists it. */
export interface VideoPacket {
  /** Presentation timestamp in time-base units; undefined when the container gives none. */
  readonly pts: bigint | undefined;
  /** ffprobe's flag letters: `K` keyframe, `D` discard (edit list), `C` corrupt; `_` for unset. */
  readonly flags: string;
}

/** The stream header and every packet of the first video stream, read by one ffprobe run. */
export interface VideoPacketProbe {
  readonly stream: VideoStreamInfo;
  /** In demuxing (decoding) order. */
  readonly packets: readonly VideoPacket[];
}

/**
 * The header (as `probeVideo`) and the pts and flags of every packet of the first video stream, in
 * one ffprobe run that only demuxes: nothing past the probe is decoded, so a file that is too long
 * costs a read of its index, not a decode. The output is capped for `maxPackets` packets (a few
 * more fit; the caller checks the count): far past that the run is stopped as PAYLOAD_TOO_LARGE.
 */
export async function probeVideoPackets(
  path: string,
  maxPixels: number,
  maxPackets: number,
  tools: FfmpegTools = {},
): Promise<VideoPacketProbe> {
  const stdout = await runMediaTool(
    toolPath(tools, 'ffprobe'),
    ffprobeVideoArgs(path, maxPixels, `${STREAM_ENTRIES}:packet=pts,flags`, 'json=c=1'),
    // ~30 bytes a packet in compact JSON; anything past the cap is too many packets.
    { timeoutSeconds: timeoutOf(tools), maxOutputBytes: (1 << 16) + maxPackets * 64, maxPixels },
  );
  const json = parseJson(stdout, 'stream information');
  const stream = parseStreamInfo(json);
  const list = Array.isArray(json['packets']) ? (json['packets'] as unknown[]) : [];
  const packets = list.map((packet, i): VideoPacket => {
    if (!isRecord(packet)) throw unsupported(`ffprobe printed an unreadable packet ${i}`);
    return { pts: integerField(packet, 'pts'), flags: stringField(packet, 'flags') };
  });
  return { stream, packets };
}

/**
 * The pts PyAV's decoder would give the frames, read off the packets, sorted ascending — or
 * undefined where the packets cannot vouch for that. Every packet of a plain stream decodes to
 * one frame that carries the packet's pts, and the decoder outputs frames in presentation order,
 * so the n-th smallest packet pts is the pts of the n-th decoded frame. Undefined (decode to find
 * out) when a packet has no pts, two packets share one (the official dict keeps the last frame
 * decoded, which only decoding tells), or a packet is flagged discard (edit lists: the decoder
 * drops its frame) or corrupt (it may yield no frame), or a pts is past 2^53.
 */
export function presentationPtsFromPackets(packets: readonly VideoPacket[]): bigint[] | undefined {
  const pts: bigint[] = [];
  for (const packet of packets) {
    if (packet.pts === undefined || !/^[K_]_*$/.test(packet.flags)) return undefined;
    // The decode matches these in a filter expression, where numbers are doubles.
    if (packet.pts > SAFE_PTS || packet.pts < -SAFE_PTS) return undefined;
    pts.push(packet.pts);
  }
  pts.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (let i = 1; i < pts.length; i++) if (pts[i] === pts[i - 1]) return undefined;
  return pts;
}

/**
 * The pts of every decoded frame of the first video stream, in decoding output (presentation)
 * order, as PyAV's `frame.pts` reports them. This decodes the stream (no pixels are printed).
 */
export async function listFramePts(
  path: string,
  maxPixels: number,
  maxFrames: number,
  tools: FfmpegTools = {},
): Promise<bigint[]> {
  const stdout = await runMediaTool(
    toolPath(tools, 'ffprobe'),
    ffprobeVideoArgs(path, maxPixels, 'frame=pts', 'json=c=1'),
    // ~20 bytes a frame in compact JSON; anything past the cap is too many frames.
    { timeoutSeconds: timeoutOf(tools), maxOutputBytes: 4096 + maxFrames * 48, maxPixels },
  );
  const json = parseJson(stdout, 'frame list');
  const frames = Array.isArray(json['frames']) ? (json['frames'] as unknown[]) : [];
  if (frames.length > maxFrames) {
    throw new DomainError(
      ErrorCode.PayloadTooLarge,
      `the video has ${frames.length} frames; the limit is ${maxFrames}`,
      { limit: maxFrames },
    );
  }
  return frames.map((frame, i) => {
    const pts = isRecord(frame) ? integerField(frame, 'pts') : undefined;
    if (pts === undefined) throw unsupported(`video frame ${i} has no timestamp (pts)`);
    return pts;
  });
}

export interface DecodeRequest {
  /** Indices into the decoded frame sequence (as `listFramePts` numbers it), ascending, distinct. */
  readonly frameIndices: readonly number[];
  /**
   * Where the indices were read off packets (`presentationPtsFromPackets`): the pts each chosen
   * frame must also have, parallel to `frameIndices`. A frame whose index matches but whose pts
   * does not is not output, so a stream that breaks the packet assumptions decodes short.
   */
  readonly framePts?: readonly bigint[];
  /**
   * The container header fully describes the stream (MP4/MOV, Matroska/WebM): skip the trial
   * decode that fills in missing stream parameters (`-nofind_stream_info`). The decoder gets the
   * same extradata and packets either way; only the start-up probing goes.
   */
  readonly headerDescribesStream?: boolean;
  readonly width: number;
  readonly height: number;
  /** Source pixel format; `yuvj*` is full range, everything else is read as limited range. */
  readonly pixelFormat: string;
  readonly maxPixels: number;
}

/** `select` terms: the decoded frame number, and with `framePts` also the timestamp. */
function selectExpression(request: DecodeRequest): string {
  const { frameIndices, framePts } = request;
  if (framePts !== undefined && framePts.length !== frameIndices.length) {
    throw new RangeError('decodeFramesRgb: framePts must be parallel to frameIndices');
  }
  return frameIndices
    .map((n, i) => {
      const pts = framePts?.[i];
      // Numbers in filter expressions are doubles; a pts past 2^53 cannot be matched exactly.
      if (pts !== undefined && (pts > SAFE_PTS || pts < -SAFE_PTS)) {
        throw new RangeError(`decodeFramesRgb: pts ${pts} is not exact as a double`);
      }
      return pts === undefined ? `eq(n,${n})` : `eq(n,${n})*eq(pts,${pts})`;
    })
    .join('+');
}

/**
 * Decodes the chosen frames to packed RGB24 at native size, converted as PyAV's `frame.to_rgb()`
 * does (MODEL_SPEC §2.2 step 3): swscale with SWS_BILINEAR and no other flags, the BT.601 matrix
 * whatever the stream is tagged with, limited range unless the pixel format is `yuvj*`. For 8-bit
 * 4:2:0 with an even height this is swscale's unscaled yuv2rgb path, the same code PyAV ran, so the
 * bytes are identical; `accurate_rnd` or `full_chroma_int` would switch to a different path.
 * `-noautorotate`: PyAV ignores the display matrix. Decoding stops after the last chosen frame
 * (`-frames:v`). With `framePts`, `-copyts` keeps the stream's own timestamps in the filter (no
 * shift to a zero start), so `pts` there is the packet's.
 *
 * Resolves undefined when the output is short of the chosen frames (past them the cap refuses
 * it): a chosen frame was not there (as numbered, or with that pts), or the stream is corrupt or
 * changes size.
 */
export async function decodeChosenFramesRgb(
  path: string,
  request: DecodeRequest,
  tools: FfmpegTools = {},
): Promise<Uint8Array[] | undefined> {
  const { frameIndices, width, height } = request;
  if (frameIndices.length === 0) return [];
  const select = selectExpression(request);
  const range = request.pixelFormat.startsWith('yuvj') ? 'pc' : 'tv';
  const frameBytes = width * height * 3;
  const expected = frameBytes * frameIndices.length;
  const stdout = await runMediaTool(
    toolPath(tools, 'ffmpeg'),
    [
      '-hide_banner',
      '-nostdin',
      '-v',
      'error',
      '-noautorotate',
      ...(request.framePts === undefined ? [] : ['-copyts']),
      ...(request.headerDescribesStream === true ? ['-nofind_stream_info'] : []),
      ...inputArgs(path, request.maxPixels),
      '-map',
      '0:v:0',
      '-an',
      '-sn',
      '-dn',
      '-vf',
      `select='${select}',scale=flags=bilinear:in_color_matrix=bt601:in_range=${range},format=rgb24`,
      '-fps_mode',
      'passthrough',
      '-frames:v',
      String(frameIndices.length),
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      'pipe:1',
    ],
    { timeoutSeconds: timeoutOf(tools), maxOutputBytes: expected + 1, maxPixels: request.maxPixels },
  );
  if (stdout.length !== expected) return undefined;
  return frameIndices.map(
    (_, i) => new Uint8Array(stdout.buffer, stdout.byteOffset + i * frameBytes, frameBytes),
  );
}

/** `decodeChosenFramesRgb`, with a short or long output refused as a corrupt stream. */
export async function decodeFramesRgb(
  path: string,
  request: DecodeRequest,
  tools: FfmpegTools = {},
): Promise<Uint8Array[]> {
  const frames = await decodeChosenFramesRgb(path, request, tools);
  if (frames === undefined) {
    const { frameIndices, width, height } = request;
    throw unsupported(
      `the decoder did not return the ${frameIndices.length} chosen frames of ${width}×${height}; ` +
        'the stream is corrupt or changes size',
    );
  }
  return frames;
}
