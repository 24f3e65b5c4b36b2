import { topKInnerProduct } from '@imagebind-llm/domain';
import { describe, expect, it } from 'vitest';
import { exactTopK, rescoreRows } from './exact-top-k';
import { seededRandom } from './testing/random-vectors';

describe('exactTopK', () => {
  // Components spread over eight orders of magnitude: float64 sums then depend on the order of the
  // additions, so only a score computed in topKInnerProduct's order matches it bit for bit.
  const d = 37;
  const n = 203; // not a multiple of the four-row blocks, so the tail loop runs too
  const next = seededRandom(5);
  const wild = (): number => (next() * 2 - 1) * 10 ** Math.floor(next() * 8 - 4);
  const vectors = Float32Array.from({ length: n * d }, wild);
  const identity = Array.from({ length: n }, (_, i) => i);

  it('matches topKInnerProduct bit for bit when rows are ids', () => {
    for (let t = 0; t < 20; t++) {
      const q = Float32Array.from({ length: d }, wild);
      for (const k of [1, 5, 64, n + 10]) {
        const hits = exactTopK(vectors, identity, n, q, k);
        expect(hits.map(({ id, score }) => ({ id, score }))).toEqual(topKInnerProduct(vectors, d, q, k));
        hits.forEach((h) => expect(h.row).toBe(h.id));
      }
    }
  });

  it('breaks ties by id, not by row', () => {
    const same = new Float32Array(3 * 2).fill(1);
    expect(exactTopK(same, [9, 4, 7], 3, Float32Array.of(1, 1), 3)).toEqual([
      { row: 1, id: 4, score: 2 },
      { row: 2, id: 7, score: 2 },
      { row: 0, id: 9, score: 2 },
    ]);
    expect(exactTopK(same, [9, 4, 7], 3, Float32Array.of(1, 1), 1)).toEqual([{ row: 1, id: 4, score: 2 }]);
  });

  it('only reads the first count rows', () => {
    expect(exactTopK(vectors, identity, 0, vectors.subarray(0, d), 3)).toEqual([]);
    expect(
      exactTopK(vectors, identity, 2, vectors.subarray(0, d), 3)
        .map((h) => h.id)
        .sort(),
    ).toEqual([0, 1]);
  });

  it('re-scores candidates with the same scores and order', () => {
    const q = Float32Array.from({ length: d }, wild);
    const exact = exactTopK(vectors, identity, n, q, 10);
    const best = exact.map((h) => h.row);
    const others = identity.filter((row) => !best.includes(row)).slice(0, 5);
    const candidates = [...others, ...best.reverse()];
    expect(rescoreRows(vectors, identity, candidates, q, 10)).toEqual(exact);
  });
});
