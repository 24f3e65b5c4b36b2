import { describe, expect, it } from 'vitest';
import { cosineSimilarity, similarityMatrix } from './similarity';

describe('cosine similarity', () => {
  it('is the dot product of the unit vectors, whatever the lengths', () => {
    expect(cosineSimilarity([1, 0], [0, 1])).toBeCloseTo(0, 12);
    expect(cosineSimilarity([3, 4], [6, 8])).toBeCloseTo(1, 12);
    expect(cosineSimilarity([1, 0], [-2, 0])).toBeCloseTo(-1, 12);
    expect(cosineSimilarity([1, 1], [1, 0])).toBeCloseTo(Math.SQRT1_2, 12);
  });

  it('is 0 against a zero vector and refuses different dimensions', () => {
    expect(cosineSimilarity([0, 0], [1, 2])).toBe(0);
    expect(() => cosineSimilarity([1], [1, 2])).toThrow(/1 and 2 dimensions/);
  });

  it('builds a symmetric matrix with 1 on the diagonal', () => {
    const v = [
      [1, 2, 3],
      [-1, 0.5, 2],
      [0.1, -3, 1],
    ];
    const m = similarityMatrix(v);
    for (let i = 0; i < 3; i++) {
      expect(m[i]![i]).toBeCloseTo(1, 12);
      for (let j = 0; j < 3; j++) expect(m[i]![j]).toBe(m[j]![i]);
    }
    expect(m[0]![1]).toBeCloseTo(cosineSimilarity(v[0]!, v[1]!), 12);
  });

  it('stays within [-1, 1] for unit vectors despite rounding', () => {
    const n = 1024;
    const v = Array.from({ length: n }, (_, i) => Math.sin(i + 1));
    const norm = Math.hypot(...v);
    const unit = v.map((x) => x / norm);
    expect(cosineSimilarity(unit, unit)).toBeLessThanOrEqual(1);
    expect(cosineSimilarity(unit, unit)).toBeCloseTo(1, 12);
  });
});
