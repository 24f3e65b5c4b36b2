import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { audioClipRanges, type SampleRange } from './clip-sampler';
import { fbankGeometry, kaldiFbank } from './kaldi-fbank';
import {
  cachedSincResampleKernel,
  resampledLength,
  resampledSum,
  resampleInputSpan,
  resampleSinc,
} from './sinc-resample';
import { newTensor, type TensorAllocator } from '../reusable-buffers';
import { decodeWav, type WavLimits } from './wav-decode';

/** ImageBind's audio loader parameters (MODEL_SPEC §2.3). */
export const AUDIO_SAMPLE_RATE = 16000;
export const AUDIO_NUM_MEL_BINS = 128;
export const AUDIO_TARGET_LENGTH = 204;
export const AUDIO_CLIP_DURATION_SECONDS = 2;
export const AUDIO_CLIPS_PER_INPUT = 3;
export const AUDIO_MEAN = -4.268;
export const AUDIO_STD = 9.138;

export type AudioTensorShape = [3, 1, 128, 204];
export const AUDIO_TENSOR_SHAPE: Readonly<AudioTensorShape> = [3, 1, 128, 204];

export interface AudioPreprocessOptions extends WavLimits {
  /** Gives the output tensor (default a new buffer). */
  readonly allocateTensor?: TensorAllocator;
}

/** Planar float32 audio at any rate, e.g. from `decodeWav` or the ffmpeg adapter. */
export interface Waveform {
  readonly sampleRate: number;
  /** One array per channel, all the same length. */
  readonly channels: readonly Float32Array[];
}

export interface AudioPreprocessResult {
  /** `[3, 1, 128, 204]` float32, clip-major; rows are mel bins (low first), columns frames. */
  readonly tensor: Float32Array;
  readonly shape: AudioTensorShape;
  /** Length of the 16 kHz waveform the clips are cut from. */
  readonly resampledLength: number;
  /** `[start, end)` of each clip in 16 kHz samples (after clamping to the waveform). */
  readonly clipRanges: SampleRange[];
  /** Fbank frames per clip before padding/cropping to 204. */
  readonly framesPerClip: number[];
  /** What the official code would log (`|204 − F|/F > 0.2`: much padding or cropping). */
  readonly warnings: string[];
}

/**
 * WAV bytes → ImageBind audio tensor (MODEL_SPEC §2.3). Errors are DomainErrors. Only the frames
 * the three clips read are decoded (each resampled sample depends only on its kernel's span of the
 * input), which equals decoding everything.
 */
export function preprocessAudio(
  bytes: Uint8Array,
  options: AudioPreprocessOptions = {},
): AudioPreprocessResult {
  const decoded = decodeWav(bytes, { ...options, frameRanges: clipInputRanges });
  return preprocessWaveform(decoded, options.allocateTensor);
}

/** The input frames that preprocessWaveform reads of a `frames`-long waveform at `sampleRate`. */
export function clipInputRanges(frames: number, sampleRate: number): SampleRange[] {
  const clips = clipRangesOf(resampledLength(frames, sampleRate, AUDIO_SAMPLE_RATE));
  if (sampleRate === AUDIO_SAMPLE_RATE) return clips;
  const kernel = cachedSincResampleKernel(sampleRate, AUDIO_SAMPLE_RATE);
  return clips.map(([a, b]) => resampleInputSpan(kernel, a, b));
}

/** The three clips' `[start, end)` in a 16 kHz waveform of `length16k` samples (MODEL_SPEC §2.3). */
function clipRangesOf(length16k: number): SampleRange[] {
  return audioClipRanges(length16k, {
    clipDurationSeconds: AUDIO_CLIP_DURATION_SECONDS,
    clipsPerInput: AUDIO_CLIPS_PER_INPUT,
    sampleRate: AUDIO_SAMPLE_RATE,
  });
}

/** Merged, sorted covering of the clip ranges: the parts of the 16 kHz waveform actually read. */
function coverRanges(ranges: readonly SampleRange[]): SampleRange[] {
  const sorted = [...ranges].filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  const merged: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && a <= last[1]) last[1] = Math.max(last[1], b);
    else merged.push([a, b]);
  }
  return merged;
}

/**
 * Decoded audio → ImageBind audio tensor: resample to 16 kHz (all channels), cut 3 clips, subtract
 * each clip's mean in place (B5), Kaldi fbank of channel 0 (B6), pad/crop to 204 frames, normalise
 * with `/std` (B7). Only the 16 kHz samples of channel 0 inside some clip are computed (each
 * resampled sample depends only on the input, so this equals resampling everything); the other
 * channels contribute only their clip sums.
 */
export function preprocessWaveform(
  audio: Waveform,
  allocate: TensorAllocator = newTensor,
): AudioPreprocessResult {
  const { sampleRate, channels } = audio;
  const first = channels[0];
  if (first === undefined) throw new DomainError(ErrorCode.InvalidInput, 'audio: no channels');
  if (channels.some((c) => c.length !== first.length))
    throw new DomainError(ErrorCode.InvalidInput, 'audio: channels have different lengths');
  if (!Number.isInteger(sampleRate) || sampleRate <= 0)
    throw new DomainError(ErrorCode.InvalidInput, `audio: bad sample rate ${sampleRate}`);

  const length16k = resampledLength(first.length, sampleRate, AUDIO_SAMPLE_RATE);
  const clipRanges = clipRangesOf(length16k);
  const { windowSize } = fbankGeometry();
  for (const [a, b] of clipRanges) {
    // torchaudio's kaldi fbank asserts the clip holds one window, so the official loader fails here.
    if (b - a < windowSize) {
      throw new DomainError(
        ErrorCode.InvalidInput,
        `audio: too short (${(first.length / sampleRate).toFixed(4)} s); at least ${windowSize} samples ` +
          `at 16 kHz (25 ms) are needed for one fbank frame`,
        { samples16k: b - a, minimum: windowSize },
      );
    }
  }

  // Channel 0 at 16 kHz, materialised only where clips read it; clip views alias these buffers so
  // the in-place mean subtraction is shared between overlapping clips exactly as in torch.
  const kernel =
    sampleRate === AUDIO_SAMPLE_RATE ? undefined : cachedSincResampleKernel(sampleRate, AUDIO_SAMPLE_RATE);
  const segments = coverRanges(clipRanges).map(([start, end]) => ({
    start,
    end,
    data:
      kernel === undefined
        ? first.slice(start, end)
        : resampleSinc(first, sampleRate, AUDIO_SAMPLE_RATE, { start, end }, kernel),
  }));
  // The other channels only enter through each clip's mean (B6), so only their sums over the clip
  // ranges are computed (resampling is linear). Earlier clips' in-place subtractions (B5) lower
  // them by mean·overlap, applied below.
  const otherSums = clipRanges.map(([a, b]) => {
    let sum = 0;
    for (let c = 1; c < channels.length; c++)
      sum += resampledSum(channels[c]!, sampleRate, AUDIO_SAMPLE_RATE, { start: a, end: b }, kernel);
    return sum;
  });
  const clipMeans: number[] = [];

  const plane = AUDIO_NUM_MEL_BINS * AUDIO_TARGET_LENGTH;
  // Every element is written below: each mel row's kept frames, then its padding.
  const tensor = allocate(AUDIO_CLIPS_PER_INPUT * plane);
  const framesPerClip: number[] = [];
  const warnings: string[] = [];
  const meanF = Math.fround(AUDIO_MEAN);
  const stdF = Math.fround(AUDIO_STD);
  const padValue = Math.fround(Math.fround(0 - meanF) / stdF);

  clipRanges.forEach(([a, b], clip) => {
    const segment = segments.find((s) => a >= s.start && b <= s.end)!;
    const view = segment.data.subarray(a - segment.start, b - segment.start);
    // MODEL_SPEC B5/B6: `waveform -= waveform.mean()` on the clip view (all channels), in place.
    let sum = 0;
    for (let i = 0; i < view.length; i++) sum += view[i]!;
    sum += otherSums[clip]!;
    for (let p = 0; p < clip; p++) {
      const overlap = Math.min(b, clipRanges[p]![1]) - Math.max(a, clipRanges[p]![0]);
      if (overlap > 0) sum -= (channels.length - 1) * overlap * clipMeans[p]!;
    }
    const mean = Math.fround(sum / (channels.length * (b - a)));
    clipMeans.push(mean);
    for (let i = 0; i < view.length; i++) view[i] = view[i]! - mean;

    const fbank = kaldiFbank(view, {
      numMelBins: AUDIO_NUM_MEL_BINS,
      sampleFrequency: AUDIO_SAMPLE_RATE,
    });
    const frames = fbank.frames;
    framesPerClip.push(frames);
    if (Math.abs(AUDIO_TARGET_LENGTH - frames) / frames > 0.2) {
      warnings.push(
        `clip ${clip}: ${frames} fbank frames ${frames < AUDIO_TARGET_LENGTH ? 'padded' : 'cropped'} to ${AUDIO_TARGET_LENGTH}`,
      );
    }
    // Transpose [F, 128] → [128, 204] with zero padding (B7: the pad is 0 before normalising).
    const out = tensor.subarray(clip * plane, (clip + 1) * plane);
    const kept = Math.min(frames, AUDIO_TARGET_LENGTH);
    for (let m = 0; m < AUDIO_NUM_MEL_BINS; m++) {
      const row = m * AUDIO_TARGET_LENGTH;
      for (let t = 0; t < kept; t++) {
        const value = fbank.data[t * AUDIO_NUM_MEL_BINS + m]!;
        out[row + t] = Math.fround(Math.fround(value - meanF) / stdF);
      }
      out.fill(padValue, row + kept, row + AUDIO_TARGET_LENGTH);
    }
  });

  return {
    tensor,
    shape: [...AUDIO_TENSOR_SHAPE] as AudioTensorShape,
    resampledLength: length16k,
    clipRanges,
    framesPerClip,
    warnings,
  };
}
