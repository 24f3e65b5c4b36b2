import { readFileSync } from 'node:fs';

import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { DomainError } from '@imagebind-llm/errors';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';

import {
  AUDIO_MEAN,
  AUDIO_STD,
  clipInputRanges,
  preprocessAudio,
  preprocessWaveform,
} from './audio.preprocess';
import { FLOAT32_EPSILON, kaldiFbank } from './kaldi-fbank';
import { resampleSinc } from './sinc-resample';
import { decodeWav } from './wav-decode';
import { encodeWav } from './testing/wav-encode';

const PLANE = 128 * 204;
const FLOOR = Math.fround(
  Math.fround(Math.fround(Math.log(FLOAT32_EPSILON)) - Math.fround(AUDIO_MEAN)) / Math.fround(AUDIO_STD),
);
const PAD = Math.fround(Math.fround(0 - Math.fround(AUDIO_MEAN)) / Math.fround(AUDIO_STD));

/** Normalised value of clip c, mel bin m, frame t. */
const at = (t: Float32Array, c: number, m: number, frame: number): number => t[c * PLANE + m * 204 + frame]!;

/** Deterministic noise in [−1, 1). */
function noise(length: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

function expectDomainError(fn: () => unknown, code: string, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(DomainError);
  expect((caught as DomainError).code).toBe(code);
  expect((caught as DomainError).message).toMatch(message);
}

interface AudioCase {
  readonly id: string;
  readonly clip_sample_ranges_16k: {
    resampled_len: number;
    ranges: [number, number][];
    orig_sample_rate: number;
  };
}

describe('preprocessAudio: parity with the official loader (golden girl_bgm)', () => {
  const manifest = JSON.parse(readFileSync(goldenPath('manifest.json'), 'utf8')) as { cases: AudioCase[] };
  const golden = manifest.cases.find((c) => c.id === 'preprocess/audio/girl_bgm')!;
  const bytes = new Uint8Array(readFileSync(goldenPath('inputs', 'girl_bgm.wav')));
  const result = preprocessAudio(bytes);

  it('decodes the 22050 Hz stereo int16 file', () => {
    const audio = decodeWav(bytes);
    expect(audio.sampleRate).toBe(golden.clip_sample_ranges_16k.orig_sample_rate);
    expect(audio.channels).toHaveLength(2);
    expect(audio.frames).toBe(382500);
  });

  it('resamples to 277552 samples and cuts the manifest clip ranges', () => {
    expect(result.resampledLength).toBe(277552);
    expect(result.resampledLength).toBe(golden.clip_sample_ranges_16k.resampled_len);
    expect(result.clipRanges).toEqual(golden.clip_sample_ranges_16k.ranges);
    expect(result.framesPerClip).toEqual([198, 198, 198]);
    expect(result.warnings).toEqual([]);
  });

  it('matches the expected [1,3,1,128,204] tensor within 1e-3', () => {
    const expected = toFloat32(readNpy(goldenPath('expected', 'preprocess', 'audio_girl_bgm.npy')));
    expect(result.shape).toEqual([3, 1, 128, 204]);
    expect(result.tensor).toHaveLength(expected.length);
    let maxError = 0;
    for (let i = 0; i < expected.length; i++)
      maxError = Math.max(maxError, Math.abs(result.tensor[i]! - expected[i]!));
    // Measured 2.0e-4, at a near-silent mel bin (value −1.264, just above the ln(eps) floor −1.278)
    // where torch's own float32 FFT/conv rounding dominates; 1e-3 is the task's parity bound.
    expect(maxError).toBeLessThanOrEqual(1e-3);
    // The 6 padded columns of each clip hold exactly 0 before normalising (B7).
    for (let c = 0; c < 3; c++) for (const m of [0, 64, 127]) expect(at(result.tensor, c, m, 200)).toBe(PAD);
  });
});

describe('preprocessWaveform: official quirks', () => {
  it('B5: overlapping clips see the earlier clips’ in-place mean subtraction (a step at the old boundary)', () => {
    // 3 s at 16 kHz: clips [0, 32000), [8000, 40000), [16000, 48000). A 0.5 DC offset plus noise:
    // clip 0 removes ~0.5 from [0, 32000) only, so clip 1 has a 0.5 step at its local sample 24000,
    // inside frames 148 and 149.
    const n = noise(48000, 7);
    const x = Float32Array.from(n, (v) => 0.5 + 0.01 * v);
    const result = preprocessWaveform({ sampleRate: 16000, channels: [x] });
    expect(result.clipRanges).toEqual([
      [0, 32000],
      [8000, 40000],
      [16000, 48000],
    ]);
    // What clip 1 would be without the shared buffer: its own copy, its own mean.
    const copy = x.slice(8000, 40000);
    let sum = 0;
    for (const v of copy) sum += v;
    const mean = Math.fround(sum / copy.length);
    for (let i = 0; i < copy.length; i++) copy[i] = copy[i]! - mean;
    const isolated = kaldiFbank(copy);
    const norm = (v: number): number =>
      Math.fround(Math.fround(v - Math.fround(AUDIO_MEAN)) / Math.fround(AUDIO_STD));
    const isolatedAt = (m: number, frame: number): number => norm(isolated.data[frame * 128 + m]!);
    for (const m of [20, 100]) {
      // Far from the step both agree (per-frame DC removal cancels the global shift).
      expect(Math.abs(at(result.tensor, 1, m, 50) - isolatedAt(m, 50))).toBeLessThan(1e-4);
      // At the step the shared-buffer result is much louder.
      expect(at(result.tensor, 1, m, 148) - isolatedAt(m, 148)).toBeGreaterThan(0.1);
    }
    // Clip 0 is cut first and sees no earlier subtraction.
    expect(Math.abs(at(result.tensor, 0, 100, 148) - at(result.tensor, 0, 100, 50))).toBeLessThan(0.2);
  });

  it('B6: only channel 0 feeds the fbank', () => {
    // Channel 0 is broadband (tone + noise) so every mel bin sits far above float32 rounding noise.
    const hiss = noise(32000, 9);
    const tone = Float32Array.from(
      { length: 32000 },
      (_, i) => 0.3 * Math.sin((2 * Math.PI * 440 * i) / 16000) + 0.05 * hiss[i]!,
    );
    const a = preprocessWaveform({ sampleRate: 16000, channels: [tone, noise(32000, 1)] });
    const b = preprocessWaveform({ sampleRate: 16000, channels: [tone, noise(32000, 2)] });
    let maxDiff = 0;
    for (let i = 0; i < a.tensor.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(a.tensor[i]! - b.tensor[i]!));
    // 2 s: all three clips are [0, 32000), so B5 adds no step. Channel 1 only moves the all-channel
    // mean, which per-frame DC removal cancels up to float32 rounding.
    expect(maxDiff).toBeLessThan(1e-4);
    const swapped = preprocessWaveform({ sampleRate: 16000, channels: [noise(32000, 1), tone] });
    expect(Math.abs(swapped.tensor[100 * 204 + 10]! - a.tensor[100 * 204 + 10]!)).toBeGreaterThan(0.5);
  });
});

/**
 * The official loader step by step on whole buffers: resample every channel completely, cut views,
 * subtract each clip's all-channel mean in place, fbank channel 0, normalise.
 */
function officialSteps(
  channels: Float32Array[],
  rate: number,
  ranges: readonly (readonly [number, number])[],
): Float32Array {
  const wave = channels.map((x) => (rate === 16000 ? x.slice() : resampleSinc(x, rate, 16000)));
  const out = new Float32Array(3 * PLANE);
  ranges.forEach(([a, b], clip) => {
    const views = wave.map((x) => x.subarray(a, b));
    let sum = 0;
    for (const v of views) for (const s of v) sum += s;
    const mean = Math.fround(sum / (views.length * (b - a)));
    for (const v of views) for (let i = 0; i < v.length; i++) v[i] = v[i]! - mean;
    const fb = kaldiFbank(views[0]!);
    for (let m = 0; m < 128; m++)
      for (let t = 0; t < 204; t++) {
        const v = t < fb.frames ? fb.data[t * 128 + m]! : 0;
        out[clip * PLANE + m * 204 + t] = Math.fround(
          Math.fround(v - Math.fround(AUDIO_MEAN)) / Math.fround(AUDIO_STD),
        );
      }
  });
  return out;
}

describe('preprocessWaveform: clip-only resampling equals the whole-waveform steps', () => {
  it.each([
    ['stereo 22050 Hz', 22050, 2],
    ['3 channels 44100 Hz', 44100, 3],
    ['stereo 16 kHz', 16000, 2],
  ])('%s, overlapping clips (B5 steps depend on the other channels’ sums)', (_, rate, count) => {
    // 2.5 s: clips overlap by 1.5 s. Channel 0 is quiet noise; the others carry large, different DC
    // offsets, so each clip's mean, and so the B5 step in clips 1 and 2, comes mostly from them.
    const length = Math.round(2.5 * rate);
    const channels = Array.from({ length: count }, (_, c) =>
      Float32Array.from(noise(length, 11 + c), (v) => (c === 0 ? 0.02 * v : 0.3 * c + 0.05 * v)),
    );
    const result = preprocessWaveform({ sampleRate: rate, channels });
    expect(result.clipRanges[1]![0]).toBeLessThan(result.clipRanges[0]![1]);
    const expected = officialSteps(channels, rate, result.clipRanges);
    let maxDiff = 0;
    for (let i = 0; i < expected.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(result.tensor[i]! - expected[i]!));
    // Only the clip sums differ (float64, before vs after float32 rounding of each resampled sample),
    // which can move a clip mean by 1 ulp; that re-rounds every float32 sample of the shifted clip
    // (values ~0.3 carrying 0.02 noise). Measured ≤ 8.1e-6; dropping the B5 overlap term gives ≥ 0.49.
    expect(maxDiff).toBeLessThan(5e-5);
  });
});

describe('preprocessAudio decodes only the frames its clips read', () => {
  it.each([
    ['stereo int16 22050 Hz, 17 s', 22050, 2, 17, 16],
    ['mono int16 44100 Hz, 9 s', 44100, 1, 9, 16],
    ['3 channels int24 48 kHz, 7.3 s (the DataView path)', 48000, 3, 7.3, 24],
    ['stereo float32 8 kHz, 12 s (upsampling)', 8000, 2, 12, 32],
    ['mono int16 16 kHz, 30 s (no resampling)', 16000, 1, 30, 16],
    ['stereo int16 22050 Hz, 2.5 s (overlapping clips)', 22050, 2, 2.5, 16],
  ] as const)(
    '%s: the same tensor, bit for bit, as decoding every frame',
    (_, rate, count, seconds, bits) => {
      const length = Math.round(seconds * rate);
      const channels = Array.from({ length: count }, (_, c) =>
        Float32Array.from(noise(length, 5 + c), (v) => 0.4 * v + 0.1 * c),
      );
      const wav = encodeWav(channels, rate, bits === 32 ? { encoding: 'float' } : { bitsPerSample: bits });
      const partial = preprocessAudio(wav);
      const whole = preprocessWaveform(decodeWav(wav));
      expect(partial.clipRanges).toEqual(whole.clipRanges);
      expect(Buffer.from(partial.tensor.buffer).equals(Buffer.from(whole.tensor.buffer))).toBe(true);
      // and it did skip frames: what it decoded is a strict part of the file (except where the clips
      // overlap and cover the whole of a short one)
      const decoded = decodeWav(wav, { frameRanges: clipInputRanges });
      const zeros = decoded.channels[0]!.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
      if (seconds > 7) expect(zeros).toBeGreaterThan(0.1 * length);
    },
  );

  it('reads the same samples from a WAV that starts at an odd byte offset (copied, not viewed)', () => {
    const wav = encodeWav([noise(50000, 3), noise(50000, 4)], 22050);
    const shifted = new Uint8Array(wav.length + 1);
    shifted.set(wav, 1);
    const even = decodeWav(wav);
    // a Uint8Array and a Node Buffer (whose slice() is a view, not a copy) at an odd offset
    for (const bytes of [shifted.subarray(1), Buffer.from(shifted.buffer).subarray(1)]) {
      const odd = decodeWav(bytes);
      for (let c = 0; c < 2; c++)
        expect(Buffer.from(odd.channels[c]!.buffer).equals(Buffer.from(even.channels[c]!.buffer))).toBe(true);
    }
  });
});

describe('preprocessAudio: edge cases and hostile input', () => {
  it('silent audio gives the ln(eps) floor in every frame and the pad value after, never NaN/−Inf', () => {
    const result = preprocessAudio(encodeWav([new Float32Array(40000), new Float32Array(40000)], 16000));
    expect(result.framesPerClip).toEqual([198, 198, 198]);
    expect(FLOOR).toBeCloseTo(-1.2775646, 6); // the golden tensor's minimum
    expect(PAD).toBeCloseTo(0.467061, 6);
    for (let c = 0; c < 3; c++) {
      for (let m = 0; m < 128; m++) {
        for (let t = 0; t < 204; t++) expect(at(result.tensor, c, m, t)).toBe(t < 198 ? FLOOR : PAD);
      }
    }
    expect(result.tensor.every(Number.isFinite)).toBe(true);
  });

  it('audio of one window (25 ms after resampling) gives one frame, padded with zeros (as the official code)', () => {
    // 551 frames at 22050 Hz resample to ceil(320·551/441) = 400 samples: one fbank frame.
    const result = preprocessAudio(encodeWav([noise(551, 3)], 22050));
    expect(result.resampledLength).toBe(400);
    expect(result.clipRanges).toEqual([
      [0, 400],
      [0, 400],
      [0, 400],
    ]);
    expect(result.framesPerClip).toEqual([1, 1, 1]);
    expect(result.warnings).toHaveLength(3);
    expect(at(result.tensor, 0, 64, 0)).not.toBe(PAD);
    expect(at(result.tensor, 2, 64, 1)).toBe(PAD);
  });

  it('audio shorter than one window is refused (torchaudio asserts; the official loader fails)', () => {
    // 549 frames at 22050 Hz resample to 399 samples, one short of a 400-sample window.
    expectDomainError(
      () => preprocessAudio(encodeWav([noise(549, 3)], 22050)),
      'INVALID_INPUT',
      /too short.*400 samples at 16 kHz/,
    );
  });

  it('hostile files surface the decoder errors', () => {
    expectDomainError(() => preprocessAudio(new Uint8Array(0)), 'UNSUPPORTED_MEDIA', /empty/);
    expectDomainError(
      () => preprocessAudio(new TextEncoder().encode('fLaC....')),
      'UNSUPPORTED_MEDIA',
      /FLAC.*ffmpeg/,
    );
    const long = encodeWav([new Float32Array(16000 * 3)], 16000);
    expectDomainError(() => preprocessAudio(long, { maxDurationSeconds: 2 }), 'PAYLOAD_TOO_LARGE', /limit/);
    expect(preprocessAudio(long, { maxDurationSeconds: 3 }).resampledLength).toBe(48000);
  });

  it('float 44.1 kHz input is resampled and produces a finite tensor of the fixed shape', () => {
    const result = preprocessAudio(
      encodeWav([noise(44100 * 7, 5).map((v) => 0.2 * v)], 44100, { encoding: 'float', extensible: true }),
    );
    expect(result.resampledLength).toBe(16000 * 7);
    expect(result.clipRanges).toEqual([
      [0, 32000],
      [40000, 72000],
      [80000, 112000],
    ]);
    expect(result.tensor).toHaveLength(3 * PLANE);
    expect(result.tensor.every(Number.isFinite)).toBe(true);
  });
});
