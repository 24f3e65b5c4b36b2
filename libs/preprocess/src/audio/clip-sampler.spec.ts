import { describe, expect, it } from 'vitest';

import { audioClipRanges } from './clip-sampler';

describe('audio clip ranges (ConstantClipsPerVideoSampler, 3 × 2 s at 16 kHz)', () => {
  it('girl_bgm: 277552 samples (MODEL_SPEC §2.3 worked example)', () => {
    expect(audioClipRanges(277552)).toEqual([
      [0, 32000],
      [122776, 154776],
      [245552, 277552],
    ]);
  });

  it('floors the exact rational (D − 2 as an exact binary fraction)', () => {
    // D = 5 s: M = 3, u = 1.5 → starts 0, 24000, 48000; overlapping clips.
    expect(audioClipRanges(80000)).toEqual([
      [0, 32000],
      [24000, 56000],
      [48000, 80000],
    ]);
    // Where the double product would round up to an integer but the exact rational is just below
    // it (values from Python: int(Fraction(N/16000 - 2)/2 * i * 16000)).
    expect(audioClipRanges(32001)[2]).toEqual([0, 32000]); // exact 0.99999999999767
    expect(audioClipRanges(48001)[2]).toEqual([16000, 48000]); // exact 16000.999999999998
    expect(audioClipRanges(33333)).toEqual([
      [0, 32000],
      [666, 32666],
      [1332, 33332], // exact 1332.9999999999984, so the last sample is never read
    ]);
    expect(audioClipRanges(100003)[2]).toEqual([68003, 100003]);
  });

  it('short audio: every clip is [0, 2 s) clamped to the waveform', () => {
    expect(audioClipRanges(20000)).toEqual([
      [0, 20000],
      [0, 20000],
      [0, 20000],
    ]);
    expect(audioClipRanges(32000)).toEqual([
      [0, 32000],
      [0, 32000],
      [0, 32000],
    ]);
  });
});
