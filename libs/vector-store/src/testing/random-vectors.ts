import { seededRandom } from '../seeded-random';

export { seededRandom };

/** [n, d] row-major, components uniform in [-1, 1); `normalise` scales each row to unit length. */
export function randomVectors(n: number, d: number, seed: number, normalise = false): Float32Array {
  const next = seededRandom(seed);
  const out = new Float32Array(n * d);
  for (let row = 0; row < n; row++) {
    let norm = 0;
    for (let i = 0; i < d; i++) {
      const v = next() * 2 - 1;
      out[row * d + i] = v;
      norm += v * v;
    }
    if (normalise) {
      const scale = 1 / Math.sqrt(norm);
      for (let i = 0; i < d; i++) out[row * d + i]! *= scale;
    }
  }
  return out;
}

/** Fisher–Yates with the seeded generator. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const next = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
