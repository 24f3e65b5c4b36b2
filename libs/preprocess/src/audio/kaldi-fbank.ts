import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { RealFft } from './fft';
import { mediaNative } from '../native/media-native';

/**
 * `torchaudio.compliance.kaldi.fbank` as ImageBind calls it (MODEL_SPEC §2.3.5): htk_compat,
 * use_energy=False, window_type="hanning" (symmetric Hann), dither 0, 25 ms / 10 ms frames,
 * snip_edges, remove_dc_offset, pre-emphasis 0.97, power spectrum, HTK-mel triangles from 20 Hz to
 * Nyquist, `ln(max(mel, float32 eps))`. Element-wise steps are rounded to float32 in torch's order;
 * sums (frame mean, FFT, mel product) run in float64 and are rounded once.
 */

const f32 = Math.fround;

/** torch.finfo(torch.float32).eps, Kaldi's log floor. */
export const FLOAT32_EPSILON = 1.1920928955078125e-7;
const PREEMPHASIS = f32(0.97);
const LOW_FREQ = 20;

export interface FbankOptions {
  /** Mel bins (default 128, ImageBind's). */
  readonly numMelBins?: number;
  /** Sample rate of the waveform in Hz (default 16000). */
  readonly sampleFrequency?: number;
  /** Frame length in ms (default 25). */
  readonly frameLengthMs?: number;
  /** Frame shift in ms (default 10). */
  readonly frameShiftMs?: number;
}

export interface Fbank {
  /** `[frames, numMelBins]` row-major log mel energies (Kaldi layout: one row per frame). */
  readonly data: Float32Array;
  readonly frames: number;
  readonly numMelBins: number;
}

export interface FbankGeometry {
  readonly windowSize: number;
  readonly windowShift: number;
  readonly paddedWindowSize: number;
}

export function fbankGeometry(options: FbankOptions = {}): FbankGeometry {
  const sf = options.sampleFrequency ?? 16000;
  // kaldi.py: int(sample_frequency * frame_length * MILLISECONDS_TO_SECONDS)
  const windowSize = Math.trunc(sf * (options.frameLengthMs ?? 25) * 0.001);
  const windowShift = Math.trunc(sf * (options.frameShiftMs ?? 10) * 0.001);
  let padded = 1;
  while (padded < windowSize) padded *= 2;
  return { windowSize, windowShift, paddedWindowSize: padded };
}

/** Frames Kaldi makes with snip_edges from `length` samples: `1 + (L − window) // shift` (0 if shorter). */
export function fbankFrameCount(length: number, options: FbankOptions = {}): number {
  const { windowSize, windowShift } = fbankGeometry(options);
  return length < windowSize ? 0 : 1 + Math.floor((length - windowSize) / windowShift);
}

/** Symmetric Hann window as `torch.hann_window(N, periodic=False)` computes it in float32. */
export function hannWindow(size: number): Float32Array {
  const w = new Float32Array(size);
  const step = f32((Math.PI * 2) / (size - 1));
  for (let i = 0; i < size; i++) w[i] = f32(0.5 + f32(-0.5 * f32(Math.cos(f32(i * step)))));
  return w;
}

const htkMel = (hz: number): number => 1127 * Math.log(1 + hz / 700);

/**
 * Kaldi's `get_mel_banks` (no VTLN) in float32: `[numMelBins, paddedWindowSize/2 + 1]` row-major
 * triangle weights, with the Nyquist column 0.
 */
export function melFilterbank(
  numMelBins: number,
  paddedWindowSize: number,
  sampleFrequency: number,
): Float32Array {
  const numFftBins = paddedWindowSize / 2;
  const cols = numFftBins + 1;
  const highFreq = 0.5 * sampleFrequency;
  const fftBinWidth = sampleFrequency / paddedWindowSize;
  const melLow = htkMel(LOW_FREQ);
  const melHigh = htkMel(highFreq);
  const delta = f32((melHigh - melLow) / (numMelBins + 1));
  const melLowF = f32(melLow);
  const mel = new Float32Array(numFftBins);
  for (let j = 0; j < numFftBins; j++) {
    const freq = f32(fftBinWidth * j);
    mel[j] = f32(1127 * f32(Math.log(f32(1 + f32(freq / 700)))));
  }
  const banks = new Float32Array(numMelBins * cols);
  for (let b = 0; b < numMelBins; b++) {
    const left = f32(melLowF + f32(b * delta));
    const centre = f32(melLowF + f32((b + 1) * delta));
    const right = f32(melLowF + f32((b + 2) * delta));
    const upDen = f32(centre - left);
    const downDen = f32(right - centre);
    for (let j = 0; j < numFftBins; j++) {
      const m = mel[j]!;
      const up = f32(f32(m - left) / upDen);
      const down = f32(f32(right - m) / downDen);
      banks[b * cols + j] = Math.max(0, Math.min(up, down));
    }
  }
  return banks;
}

/**
 * A mel filterbank stored by its non-zero run per bin: each triangle covers a few dozen FFT bins,
 * so the dense `[128, 257]` product is ~64× more multiplies than needed. Skipped weights are exact
 * zeros, so the float64 sums are unchanged bit for bit.
 */
interface SparseMelBanks {
  /** First FFT bin of each mel bin's run. */
  readonly first: Int32Array;
  /** Offset of each mel bin's run in `weights` (length numMelBins + 1). */
  readonly offsets: Int32Array;
  readonly weights: Float64Array;
}

function sparseMelBanks(banks: Float32Array, numMelBins: number, cols: number): SparseMelBanks {
  const first = new Int32Array(numMelBins);
  const offsets = new Int32Array(numMelBins + 1);
  const runs: number[] = [];
  for (let b = 0; b < numMelBins; b++) {
    const row = banks.subarray(b * cols, (b + 1) * cols);
    let lo = 0;
    while (lo < cols && row[lo] === 0) lo++;
    let hi = cols;
    while (hi > lo && row[hi - 1] === 0) hi--;
    first[b] = lo;
    offsets[b] = runs.length;
    for (let k = lo; k < hi; k++) runs.push(row[k]!);
  }
  offsets[numMelBins] = runs.length;
  return { first, offsets, weights: Float64Array.from(runs) };
}

const melCache = new Map<string, SparseMelBanks>();
const hannCache = new Map<number, Float32Array>();
const fftCache = new Map<number, RealFft>();

function cached<K, V>(cache: Map<K, V>, key: K, make: () => V): V {
  let value = cache.get(key);
  if (value === undefined) {
    value = make();
    cache.set(key, value);
  }
  return value;
}

/**
 * Log mel filterbank of one channel. Throws INVALID_INPUT when the waveform is shorter than one
 * window (torchaudio asserts there, so the official loader fails the request; MODEL_SPEC §2.3.5).
 * Silence gives `ln(eps)` = −15.942385 everywhere, never −Infinity or NaN.
 */
export function kaldiFbank(waveform: Float32Array, options: FbankOptions = {}): Fbank {
  const numMelBins = options.numMelBins ?? 128;
  const sampleFrequency = options.sampleFrequency ?? 16000;
  const { windowSize, windowShift, paddedWindowSize } = fbankGeometry(options);
  if (windowSize < 2 || waveform.length < windowSize) {
    throw new DomainError(
      ErrorCode.InvalidInput,
      `audio: a clip of ${waveform.length} samples is shorter than one ${windowSize}-sample fbank window ` +
        `(${options.frameLengthMs ?? 25} ms); the official loader cannot process it`,
      { samples: waveform.length, window: windowSize },
    );
  }
  const frames = fbankFrameCount(waveform.length, options);
  const cols = paddedWindowSize / 2 + 1;
  const { first, offsets, weights } = cached(
    melCache,
    `${numMelBins}/${paddedWindowSize}/${sampleFrequency}`,
    () => sparseMelBanks(melFilterbank(numMelBins, paddedWindowSize, sampleFrequency), numMelBins, cols),
  );
  const window = cached(hannCache, windowSize, () => hannWindow(windowSize));
  const fft = cached(fftCache, paddedWindowSize, () => new RealFft(paddedWindowSize));
  const out = new Float32Array(frames * numMelBins);
  const native = mediaNative();
  if (native !== undefined) {
    // The same steps in C (native/fbank.c), with the same tables.
    const t = fft.tables();
    native.fbankFrames(
      waveform,
      frames,
      windowSize,
      windowShift,
      PREEMPHASIS,
      window,
      t.bitReverse,
      t.cosStage,
      t.sinStage,
      t.cosFull,
      t.sinFull,
      first,
      offsets,
      weights,
      out,
    );
    return { data: out, frames, numMelBins };
  }
  // Zero-padded frame; only the first windowSize entries are ever written.
  const frame = new Float64Array(paddedWindowSize);
  const power = new Float64Array(cols);
  const re = new Float64Array(cols);
  const im = new Float64Array(cols);
  for (let f = 0; f < frames; f++) {
    const offset = f * windowShift;
    let sum = 0;
    for (let i = 0; i < windowSize; i++) sum += waveform[offset + i]!;
    const mean = f32(sum / windowSize);
    // DC removal, pre-emphasis against the replicate-padded previous sample, then the window; each
    // step rounded to float32 as torch stores it.
    let prev = f32(waveform[offset]! - mean);
    for (let i = 0; i < windowSize; i++) {
      const cur = f32(waveform[offset + i]! - mean);
      frame[i] = f32(f32(cur - f32(PREEMPHASIS * prev)) * window[i]!);
      prev = cur;
    }
    fft.transform(frame, re, im);
    for (let k = 0; k < cols; k++) {
      const r = re[k]!;
      const q = im[k]!;
      const magnitude = f32(Math.sqrt(r * r + q * q));
      power[k] = f32(magnitude * magnitude);
    }
    const row = f * numMelBins;
    for (let b = 0; b < numMelBins; b++) {
      const start = offsets[b]!;
      const runEnd = offsets[b + 1]!;
      const shift = first[b]! - start;
      let acc = 0;
      for (let j = start; j < runEnd; j++) acc += power[j + shift]! * weights[j]!;
      out[row + b] = Math.log(Math.max(f32(acc), FLOAT32_EPSILON));
    }
  }
  return { data: out, frames, numMelBins };
}
