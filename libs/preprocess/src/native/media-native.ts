import { join } from 'node:path';

/**
 * The `ibllm_media` addon (libs/preprocess/native, built by `npm run build` with the system C
 * compiler): JPEG decoding with libjpeg-turbo, Pillow's resample loops, the video tensor's float
 * steps and the point grouping (FPS + kNN) in C; and its video module, `ibllm_media_av`, FFmpeg's
 * libraries in process for video and compressed audio. Every function here computes what the
 * TypeScript / sharp / ffmpeg-CLI path computes (the golden suites run both); it is only faster.
 * When the module is not built (no compiler or headers, or built with `IBLLM_NATIVE=off npm run
 * build`, which removes it), `mediaNative()` is undefined and the callers take the portable path;
 * without the video module (no FFmpeg headers at build time, or no libav* libraries where it runs)
 * video and compressed audio use the CLI.
 */

/** What the addon exports (native/module.c, and module-av.c for the video entry points). */
export interface MediaNative {
  readonly abiVersion: number;
  /** libjpeg-turbo decode to RGB24; throws Error{code: EMEDIA | EMEMORY | ETIMEOUT}. */
  /** With `into` at least the decoded size, `data` is a view of it (no new buffer). */
  decodeJpegRgb(
    bytes: Uint8Array,
    maxMemory: number,
    timeoutSeconds: number,
    into?: Uint8Array,
  ): { width: number; height: number; data: Uint8Array };
  /**
   * The loops resizeBicubicToPlanes runs (native/image.c): the best the CPU has (`avx2`, `sse4.1`
   * on x86-64, else `c`), at most `cap` once one is given. Every level gives the same bytes.
   */
  resizeKernels(cap?: ResizeKernel): ResizeKernel;
  /**
   * glibc's mallopt M_MMAP_THRESHOLD and M_TRIM_THRESHOLD (native/module.c); false where it did
   * nothing: not glibc, or the operator set glibc's own malloc variables.
   */
  tuneAllocator(mmapThreshold: number, trimThreshold: number): boolean;
  /** Pillow's bicubic passes on RGB24 with CLIP normalisation into planes (see pillow-resize.ts). */
  resizeBicubicToPlanes(
    rgb: Uint8Array,
    width: number,
    height: number,
    hStart: Int32Array,
    hLength: Int32Array,
    hWeights: Int32Array,
    hTaps: number,
    vStart: Int32Array,
    vLength: Int32Array,
    vWeights: Int32Array,
    vTaps: number,
    rowStart: number,
    rowEnd: number,
    tables: Float32Array,
    out: Float32Array,
  ): void;
  /**
   * The video loader's float32 steps after decoding (videoFrameScaler + crops, video.preprocess.ts)
   * for all chosen frames at once, written to `out` `[clips, crops, 3, framesPerClip, size, size]`.
   */
  videoTensor(
    frames: Uint8Array,
    count: number,
    width: number,
    height: number,
    rowI0: Int32Array,
    rowI1: Int32Array,
    rowW0: Float32Array,
    rowW1: Float32Array,
    colI0: Int32Array,
    colI1: Int32Array,
    colW0: Float32Array,
    colW1: Float32Array,
    meanStd: Float32Array,
    clipFrames: Int32Array,
    framesPerClip: number,
    crops: Int32Array,
    size: number,
    out: Float32Array,
  ): void;
  /**
   * kaldiFbank's frames (kaldi-fbank.ts) with the same float32 and float64 steps: the FFT's tables
   * are RealFft's, the mel banks its sparse runs; writes `frames` × mel bins log energies to `out`.
   */
  fbankFrames(
    waveform: Float32Array,
    frames: number,
    windowSize: number,
    windowShift: number,
    preemphasis: number,
    window: Float32Array,
    bitReverse: Int32Array,
    cosStage: Float64Array,
    sinStage: Float64Array,
    cosFull: Float64Array,
    sinFull: Float64Array,
    melFirst: Int32Array,
    melOffsets: Int32Array,
    melWeights: Float64Array,
    out: Float32Array,
  ): void;
  /**
   * resampleSinc's convolution (sinc-resample.ts) with its packed live taps, the same double
   * accumulation in the same order: output y = m·n + k (n = offset.length phases) reads
   * `input[m·orig + offset[k] + j]` (zero outside the input) times `taps[row[k] + j]`, j <
   * count[k]; writes outputs start … start + out.length − 1.
   */
  resampleSinc(
    input: Float32Array,
    offset: Int32Array,
    row: Int32Array,
    count: Int32Array,
    taps: Float64Array,
    orig: number,
    start: number,
    out: Float32Array,
  ): void;
  /**
   * Farthest-point sampling as fps.ts computes it (same float32 steps, same indices), written to
   * `out` (`numSamples` indices in selection order).
   */
  pointFps(points: Float32Array, count: number, numSamples: number, start: number, out: Int32Array): void;
  /**
   * knnIndices (group.ts) with torch.topk's selection and order (torch-topk.ts), written to `out`
   * `[numCenters, groupSize]`.
   */
  pointKnn(
    points: Float32Array,
    count: number,
    centers: Float32Array,
    numCenters: number,
    groupSize: number,
    out: Int32Array,
  ): void;
  /**
   * Present when the video module (ibllm_media_av, FFmpeg's libraries) loaded too. Its entry points
   * take a file's path or its bytes (read in place, no temporary file) and run on the calling
   * thread (a pool worker).
   */
  readonly probeVideoPackets?: (
    input: string | Uint8Array,
    maxPixels: number,
    maxPackets: number,
    timeoutSeconds: number,
  ) => NativeVideoProbe;
  readonly decodeVideoFrames?: (
    input: string | Uint8Array,
    maxPixels: number,
    frameIndices: Int32Array,
    framePts: BigInt64Array | null,
    findStreamInfo: boolean,
    width: number,
    height: number,
    fullRange: boolean,
    timeoutSeconds: number,
  ) => Uint8Array | null;
  readonly libavVersions?: () => Record<string, string>;
  /** Present with the video module too (native/audio.c): ffprobe's view of the first audio stream. */
  readonly probeAudioFile?: (input: string | Uint8Array, timeoutSeconds: number) => NativeAudioProbe;
  /**
   * The first audio stream decoded to float32, one array per channel, as `ffmpeg -f f32le` writes
   * it; throws EOVERFLOW past `capFrames` frames. Runs on the calling thread (a pool worker).
   */
  readonly decodeAudioFile?: (
    input: string | Uint8Array,
    initialFrames: number,
    capFrames: number,
    timeoutSeconds: number,
  ) => Float32Array[];
}

/** The resize loops, slowest first (native/image.c). */
export type ResizeKernel = 'c' | 'sse4.1' | 'avx2';

/** `ffprobe -select_streams a:0 -show_entries stream=sample_rate,channels:format=duration`. */
export interface NativeAudioProbe {
  readonly sampleRate: number;
  readonly channels: number;
  /** Seconds; null where the container does not say. */
  readonly duration: number | null;
}

/** ffprobe's view of the first video stream and its packets, as the addon returns it. */
export interface NativeVideoProbe {
  readonly container: string;
  readonly codec: string;
  readonly pixelFormat: string;
  readonly width: number;
  readonly height: number;
  readonly timeBaseNum: number;
  readonly timeBaseDen: number;
  readonly startPts: bigint | null;
  readonly durationPts: bigint | null;
  readonly frames: number | null;
  readonly pts: BigInt64Array;
  /** Per packet: bit 0 key, 1 discard, 2 corrupt, 7 no pts. */
  readonly flags: Uint8Array;
  /** More packets than asked for: the listing stopped there. */
  readonly truncated: boolean;
}

/** The addon's paths: the same from src/ (tests) and dist/ (built code). */
export const MEDIA_NATIVE_PATH = join(__dirname, '..', '..', 'native', 'build', 'ibllm_media.node');
/** Its video module (FFmpeg's libraries), loaded beside it when it is there. */
export const MEDIA_NATIVE_AV_PATH = join(__dirname, '..', '..', 'native', 'build', 'ibllm_media_av.node');
/** native/media.h MEDIA_ABI_VERSION: a module built from other sources is refused. */
const ABI_VERSION = 10;

/**
 * The allocator thresholds set when the addon loads (see tuneAllocator in native/module.c): blocks
 * up to 4 MiB (a 224² tensor is 588 KiB, a decoded 12 MP image 36 MB) come from the heap and are
 * reused, so preprocessing does not fault in fresh pages per input; above 8 MiB free at the heap's
 * top is returned to the system. Not applied where an operator set glibc's own variables
 * (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, a `glibc.malloc.*` tunable): setting
 * `MALLOC_MMAP_THRESHOLD_=131072` restores glibc's default.
 */
const MALLOC_MMAP_THRESHOLD = 4 * 1024 * 1024;
const MALLOC_TRIM_THRESHOLD = 8 * 1024 * 1024;

let loaded: MediaNative | undefined;
let allocatorTuned = false;
let tried = false;
let why = '';
let videoWhy = '';
let disabled = false;

/**
 * Turns the addon off (or back on) for this thread: the A/B benchmark and the parity tests run the
 * portable path and the native one side by side in one process.
 */
export function setMediaNativeEnabled(enabled: boolean): void {
  disabled = !enabled;
}

/** Why a module did not load, in words for the logs. */
function loadFailure(error: unknown, path: string): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.includes(path) && message.includes('No such file')
    ? `not built (${path}); run npm run build with gcc and libjpeg/FFmpeg headers`
    : `failed to load: ${message}`;
}

function load<T extends { readonly abiVersion: number }>(path: string): T {
  const module: { exports: unknown } = { exports: {} };
  process.dlopen(module, path);
  const candidate = module.exports as T;
  if (candidate.abiVersion !== ABI_VERSION) {
    throw new Error(`${path}: abiVersion ${String(candidate.abiVersion)}, expected ${ABI_VERSION}`);
  }
  return candidate;
}

/**
 * The addon, or undefined (not built, or it failed to load — `mediaNativeStatus` says which), with
 * the video entry points when its video module loaded too. Loaded once per thread.
 */
export function mediaNative(): MediaNative | undefined {
  if (disabled) return undefined;
  if (tried) return loaded;
  tried = true;
  let core: MediaNative;
  try {
    core = load<MediaNative>(MEDIA_NATIVE_PATH);
  } catch (error) {
    why = loadFailure(error, MEDIA_NATIVE_PATH);
    return undefined;
  }
  allocatorTuned = core.tuneAllocator(MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD);
  try {
    const av =
      load<
        Required<
          Pick<
            MediaNative,
            | 'abiVersion'
            | 'probeVideoPackets'
            | 'decodeVideoFrames'
            | 'libavVersions'
            | 'probeAudioFile'
            | 'decodeAudioFile'
          >
        >
      >(MEDIA_NATIVE_AV_PATH);
    loaded = {
      ...core,
      probeVideoPackets: av.probeVideoPackets,
      decodeVideoFrames: av.decodeVideoFrames,
      libavVersions: av.libavVersions,
      probeAudioFile: av.probeAudioFile,
      decodeAudioFile: av.decodeAudioFile,
    };
  } catch (error) {
    videoWhy = loadFailure(error, MEDIA_NATIVE_AV_PATH);
    loaded = core;
  }
  return loaded;
}

/** One line for start-up logs and `--json` outputs: which preprocessing paths are native. */
export function mediaNativeStatus(): {
  readonly image: boolean;
  readonly video: boolean;
  /** Compressed audio (not WAV, which is always read in TypeScript) decoded in process. */
  readonly audio: boolean;
  readonly point: boolean;
  /** The image resize loops in use (`avx2`, `sse4.1`, `c`). */
  readonly resizeKernel?: ResizeKernel;
  /** Whether the addon set glibc's allocator thresholds (MALLOC_MMAP_THRESHOLD). */
  readonly allocatorTuned?: boolean;
  readonly reason?: string;
} {
  const native = mediaNative();
  if (native === undefined) {
    return {
      image: false,
      video: false,
      audio: false,
      point: false,
      reason: disabled ? 'turned off' : why,
    };
  }
  const image = { image: true, point: true, resizeKernel: native.resizeKernels(), allocatorTuned } as const;
  if (native.decodeVideoFrames === undefined) {
    return { ...image, video: false, audio: false, reason: `video module ${videoWhy}` };
  }
  return { ...image, video: true, audio: true };
}
