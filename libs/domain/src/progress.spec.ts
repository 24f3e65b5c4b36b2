import { describe, expect, it } from 'vitest';
import { formatByteRate, formatBytes, formatDuration, ProgressMeter, RateEstimator } from './progress';

describe('RateEstimator', () => {
  it('needs a second of history, then gives the rate over the window and the ETA', () => {
    const rate = new RateEstimator(10_000);
    expect(rate.observe(0, 0, 100)).toEqual({ perSecond: undefined, etaSeconds: undefined });
    expect(rate.observe(500, 5, 100).perSecond).toBeUndefined();
    expect(rate.observe(2000, 20, 100)).toEqual({ perSecond: 10, etaSeconds: 8 });
    // After the window the early samples no longer count: the pace is now 2 per second.
    rate.observe(12_000, 40, 100);
    expect(rate.observe(22_000, 60, 100)).toEqual({ perSecond: 2, etaSeconds: 20 });
  });

  it('gives no ETA while nothing moves, and none from a count that went backwards', () => {
    const rate = new RateEstimator();
    rate.observe(0, 10, 100);
    expect(rate.observe(5000, 10, 100)).toEqual({ perSecond: 0, etaSeconds: undefined });
    expect(rate.observe(6000, 5, 100)).toEqual({ perSecond: undefined, etaSeconds: undefined });
  });
});

describe('formatting', () => {
  it('formats durations as m:ss and h:mm:ss', () => {
    expect(formatDuration(7)).toBe('0:07');
    expect(formatDuration(725)).toBe('12:05');
    expect(formatDuration(3723)).toBe('1:02:03');
  });

  it('formats bytes in decimal units with three significant figures', () => {
    expect(formatBytes(812)).toBe('812 B');
    expect(formatBytes(4_200_000)).toBe('4.20 MB');
    expect(formatBytes(13_312_000_000)).toBe('13.3 GB');
    expect(formatBytes(512_000_000)).toBe('512 MB');
    expect(formatByteRate(210_340_000)).toBe('210.3 MB/s');
  });
});

describe('ProgressMeter', () => {
  it('measures percent, rate and ETA with the clock it is given', () => {
    const meter = new ProgressMeter();
    meter.observe(0, 0, 1000);
    expect(meter.observe(4000, 200, 1000)).toEqual({
      done: 200,
      total: 1000,
      percent: 20,
      perSecond: 50,
      etaSeconds: 16,
    });
    expect(meter.observe(4000, 5, 0).percent).toBeUndefined();
  });

  it('makes a plain line due every interval, at every step of percent and at the end, never twice', () => {
    const meter = new ProgressMeter({ intervalMs: 5000, stepPercent: 10 });
    const lines: number[] = [];
    const tick = (nowMs: number, done: number, final = false): void => {
      if (meter.due(meter.observe(nowMs, done, 1000), nowMs, final)) lines.push(done);
    };
    tick(0, 0); // the first: yes
    tick(1000, 50); // 5 %, 1 s later: no
    tick(2000, 100); // reached 10 %: yes
    tick(3000, 150); // no
    tick(7000, 160); // 5 s since the last line: yes
    tick(7100, 160); // the same count again: no
    tick(8000, 400); // jumped to 40 %: yes
    tick(8100, 1000, true); // final: yes
    tick(8200, 1000, true); // the same final count again: no
    expect(lines).toEqual([0, 100, 160, 400, 1000]);
  });
});
