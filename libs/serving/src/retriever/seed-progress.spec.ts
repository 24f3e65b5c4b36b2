import { describe, expect, it } from 'vitest';
import { seedProgressLogger, type SeedProgressFields } from './seed-progress';

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
});
