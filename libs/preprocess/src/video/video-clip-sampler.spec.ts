import { describe, expect, it } from 'vitest';

import { sampleVideoClips, uniformTemporalIndices } from './video-clip-sampler';

/** The golden landscape video (manifest): tb 1/10240, start 0, duration 54272, 53 frames at 10 fps. */
const GOLDEN = {
  timeBase: { num: 1n, den: 10240n },
  startPts: 0n,
  durationPts: 54272n,
  framePts: Array.from({ length: 53 }, (_, i) => BigInt(i * 1024)),
};

describe('sampleVideoClips (MODEL_SPEC §2.2 steps 1–4)', () => {
  it('reproduces the golden windows: D = 5.3 s, u = 0.825 s, ceil pts bounds, first and last frame', () => {
    const s = sampleVideoClips(GOLDEN);
    expect(s.duration).toEqual({ num: 54272n, den: 10240n });
    expect(s.clips.map((c) => c.ptsWindow)).toEqual([
      [0n, 20480n],
      [8448n, 28928n],
      [16896n, 37376n],
      [25344n, 45824n],
      [33792n, 54272n],
    ]);
    // End bounds are exclusive: pts 20480 (frame 20) is not in clip 0, 54272 would not be in clip 4.
    expect(s.clips.map((c) => c.frameIndices)).toEqual([
      [0, 19],
      [9, 28],
      [17, 36],
      [25, 44],
      [33, 52],
    ]);
    expect(s.clips.every((c) => c.framesInWindow === 20)).toBe(true);
  });

  it('uses the same [0, 2 s) window for every clip of a short video, and one frame twice', () => {
    const s = sampleVideoClips({ ...GOLDEN, durationPts: 1024n, framePts: [0n] });
    for (const clip of s.clips) {
      expect(clip.ptsWindow).toEqual([0n, 20480n]);
      expect(clip.frameIndices).toEqual([0, 0]);
    }
  });

  it('subtracts start_time from the duration (B8) and adds it back to the pts bounds', () => {
    const s = sampleVideoClips({
      ...GOLDEN,
      startPts: 2048n,
      framePts: GOLDEN.framePts.map((p) => p + 2048n),
    });
    expect(s.duration).toEqual({ num: 52224n, den: 10240n });
    // M = 5.1 − 2 = 3.1 s, u = 0.775 s = 7936 pts.
    expect(s.clips.map((c) => c.ptsWindow[0])).toEqual([2048n, 9984n, 17920n, 25856n, 33792n]);
  });

  it('takes the last frame pts as the duration when the stream has none', () => {
    const s = sampleVideoClips({ ...GOLDEN, durationPts: undefined });
    expect(s.duration).toEqual({ num: 53248n, den: 10240n });
  });

  it('keeps the last frame decoded with a repeated pts and sorts by pts', () => {
    const s = sampleVideoClips({ ...GOLDEN, durationPts: 10240n, framePts: [0n, 1024n, 1024n, 512n] });
    expect(s.clips[0]?.framesInWindow).toBe(3);
    expect(s.clips[0]?.frameIndices).toEqual([0, 2]);
  });

  it('throws when a clip window has no frames (the official "No clip found")', () => {
    expect(() => sampleVideoClips({ ...GOLDEN, framePts: [0n, 1024n] })).toThrow(/no frames in clip 1/);
  });
});

describe('uniformTemporalIndices', () => {
  it('keeps the first and last of T frames, and index 0 twice when T = 1', () => {
    expect(uniformTemporalIndices(20, 2)).toEqual([0, 19]);
    expect(uniformTemporalIndices(1, 2)).toEqual([0, 0]);
    expect(uniformTemporalIndices(9, 3)).toEqual([0, 4, 8]);
  });
});
