import { DomainError } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';

import { FLOAT32_EPSILON, fbankFrameCount, hannWindow, kaldiFbank, melFilterbank } from './kaldi-fbank';

const LOG_EPS = Math.fround(Math.log(FLOAT32_EPSILON)); // −15.942385, float32 as torch's log
const M_LO = 1127 * Math.log(1 + 20 / 700);
const M_HI = 1127 * Math.log(1 + 8000 / 700);
const DELTA = (M_HI - M_LO) / 129;

/** Frequency (Hz) of the centre of mel bin b. */
const centreHz = (b: number): number => 700 * (Math.exp((M_LO + (b + 1) * DELTA) / 1127) - 1);

function tone(freq: number, length = 32000, amplitude = 0.3): Float32Array {
  return Float32Array.from({ length }, (_, i) => amplitude * Math.sin((2 * Math.PI * freq * i) / 16000));
}

describe('Kaldi fbank (ImageBind settings)', () => {
  it('uses the mel edges of MODEL_SPEC §2.3.5', () => {
    expect(M_LO).toBeCloseTo(31.74858, 4);
    expect(M_HI).toBeCloseTo(2840.03771, 4);
    expect(DELTA).toBeCloseTo(21.76968, 4);
  });

  it('has complementary triangles and a zero Nyquist column', () => {
    const banks = melFilterbank(128, 512, 16000);
    expect(banks).toHaveLength(128 * 257);
    for (let b = 0; b < 128; b++) expect(banks[b * 257 + 256]).toBe(0);
    // Between the first and the last centre every FFT bin's weights sum to 1 (up + down slopes).
    for (let j = 0; j < 256; j++) {
      const hz = 31.25 * j;
      if (hz <= centreHz(0) || hz >= centreHz(127)) continue;
      let sum = 0;
      for (let b = 0; b < 128; b++) sum += banks[b * 257 + j]!;
      expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
    }
    // Below 20 Hz (FFT bin 0) nothing is collected.
    for (let b = 0; b < 128; b++) expect(banks[b * 257]).toBe(0);
  });

  it('uses the symmetric Hann window', () => {
    const w = hannWindow(400);
    expect(w[0]).toBe(0);
    expect(Math.abs(w[399]!)).toBeLessThan(1e-7);
    expect(w[200]).toBeCloseTo(0.5 - 0.5 * Math.cos((2 * Math.PI * 200) / 399), 6);
    for (let i = 0; i < 200; i++) expect(Math.abs(w[i]! - w[399 - i]!)).toBeLessThan(1e-6);
  });

  it('counts frames as 1 + (L − 400) // 160 (2 s → 198)', () => {
    expect(fbankFrameCount(32000)).toBe(198);
    expect(fbankFrameCount(400)).toBe(1);
    expect(fbankFrameCount(559)).toBe(1);
    expect(fbankFrameCount(560)).toBe(2);
    expect(fbankFrameCount(399)).toBe(0);
    expect(kaldiFbank(new Float32Array(560)).frames).toBe(2);
  });

  it('silence (and a pure DC offset, removed per frame) gives ln(eps), never −Infinity or NaN', () => {
    for (const value of [0, 0.3]) {
      const fb = kaldiFbank(new Float32Array(32000).fill(value));
      expect(fb.frames).toBe(198);
      expect(fb.numMelBins).toBe(128);
      expect(fb.data).toHaveLength(198 * 128);
      for (const v of fb.data) expect(v).toBe(LOG_EPS);
    }
    expect(LOG_EPS).toBeCloseTo(-15.942385, 5);
  });

  it.each([10, 60, 100])('puts a pure tone at the centre of mel bin %i in that bin', (bin) => {
    const fb = kaldiFbank(tone(centreHz(bin)));
    for (const frame of [0, 50, 197]) {
      const row = fb.data.subarray(frame * 128, (frame + 1) * 128);
      let best = 0;
      for (let b = 1; b < 128; b++) if (row[b]! > row[best]!) best = b;
      expect(best).toBe(bin);
      // Far-away bins sit many nats lower: the energy is concentrated.
      expect(row[bin]! - row[(bin + 40) % 128]!).toBeGreaterThan(8);
    }
  });

  it('a louder tone adds 2·ln(gain) to the log energy', () => {
    const quiet = kaldiFbank(tone(1000, 4000, 0.1));
    const loud = kaldiFbank(tone(1000, 4000, 0.4));
    const b = 43; // 1 kHz sits between bins 43 and 44
    expect(loud.data[5 * 128 + b]! - quiet.data[5 * 128 + b]!).toBeCloseTo(2 * Math.log(4), 4);
  });

  it('refuses audio shorter than one 25 ms window (torchaudio asserts there)', () => {
    let caught: unknown;
    try {
      kaldiFbank(new Float32Array(399));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DomainError);
    expect((caught as DomainError).code).toBe('INVALID_INPUT');
    expect((caught as DomainError).message).toMatch(
      /399 samples is shorter than one 400-sample fbank window/,
    );
  });
});
