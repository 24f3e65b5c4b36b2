import { describe, expect, it } from 'vitest';
import {
  indexProgressLogger,
  seedProgressLogger,
  type IndexProgressFields,
  type SeedProgressFields,
} from './seed-progress';

describe('seedProgressLogger', () => {
  it('logs rows, rate and ETA every 10 % or 5 s and the last row, with the clock it is given', () => {
    const lines: SeedProgressFields[] = [];
    let now = 0;
    const onProgress = seedProgressLogger((f) => lines.push(f), { clock: () => now });
    const total = 1_000_000;
    for (const [at, rows] of [
      [0, 4096], // the first line
      [1000, 50_000], // 5 %: no
      [2000, 100_000], // 10 %: yes
      [3000, 150_000], // no
      [8000, 160_000], // 5 s later: yes
      [20_000, total], // the end: yes
    ] as const) {
      now = at;
      onProgress(rows, total);
    }
    expect(lines.map((l) => l.rows)).toEqual([4096, 100_000, 160_000, total]);
    expect(lines[1]).toEqual({
      event: 'store.seed_progress',
      rows: 100_000,
      total,
      percent: 10,
      rowsPerSecond: 47_952, // (100 000 − 4096) rows in 2 s
      etaSeconds: 19,
    });
    expect(lines.at(-1)).toMatchObject({ percent: 100, etaSeconds: 0 });
  });

  it('logs the IVF build per phase: its first step, every 10 % or 5 s, and its end', () => {
    const lines: IndexProgressFields[] = [];
    let now = 0;
    const onIndexProgress = indexProgressLogger((f) => lines.push(f), { clock: () => now });
    const steps: [number, 'train' | 'assign', number, number][] = [
      [0, 'train', 1, 10], // a phase's first step: yes
      [1000, 'train', 2, 10], // 20 %: yes (10 % more)
      [10_000, 'train', 10, 10], // the end: yes
      [10_500, 'assign', 1024, 1_000_000], // a new phase starts its own meter: yes
      [11_000, 'assign', 50_000, 1_000_000], // no
      [20_000, 'assign', 60_000, 1_000_000], // 5 s later: yes
      [60_000, 'assign', 1_000_000, 1_000_000], // the end: yes
    ];
    for (const [at, phase, done, total] of steps) {
      now = at;
      onIndexProgress({ phase, done, total });
    }
    expect(lines.map((l) => [l.phase, l.done])).toEqual([
      ['train', 1],
      ['train', 2],
      ['train', 10],
      ['assign', 1024],
      ['assign', 60_000],
      ['assign', 1_000_000],
    ]);
    expect(lines[2]).toMatchObject({ event: 'store.index_progress', percent: 100, etaSeconds: 0 });
    expect(lines[3]).toMatchObject({ phase: 'assign', total: 1_000_000, etaSeconds: undefined });
  });
});
