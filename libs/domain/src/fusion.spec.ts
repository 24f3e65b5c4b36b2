import { describe, expect, it } from 'vitest';
import { cacheBlend, dot, fuseEmbeddings, l2Normalize, topKInnerProduct } from './fusion';

describe('fuseEmbeddings (MODEL_SPEC §1.2)', () => {
  it('normalises each embedding, divides weights by Σw + 1e-6 and does not renormalise (B2, B3)', () => {
    const q = fuseEmbeddings([Float32Array.of(3, 4)], [1]);
    expect(q[0]).toBeCloseTo(0.6 / (1 + 1e-6), 7);
    expect(q[1]).toBeCloseTo(0.8 / (1 + 1e-6), 7);
    const two = fuseEmbeddings([Float32Array.of(2, 0), Float32Array.of(0, 5)], [0.7, 0.3]);
    expect(two[0]).toBeCloseTo(0.7 / (1 + 1e-6), 7);
    expect(two[1]).toBeCloseTo(0.3 / (1 + 1e-6), 7);
    expect(Math.sqrt(dot(two, two))).toBeLessThan(1); // not re-normalised
  });

  it('refuses mismatched inputs', () => {
    expect(() => fuseEmbeddings([], [])).toThrow();
    expect(() => fuseEmbeddings([Float32Array.of(1)], [1, 2])).toThrow();
    expect(() => fuseEmbeddings([Float32Array.of(1), Float32Array.of(1, 2)], [1, 1])).toThrow(
      /embedding 1 has 2 values/,
    );
  });

  it('l2Normalize guards zero vectors like torch (eps 1e-12)', () => {
    expect(Array.from(l2Normalize([0, 0]))).toEqual([0, 0]);
  });
});

describe('topKInnerProduct', () => {
  it('returns the best k by inner product, lower id first on ties', () => {
    const vectors = Float32Array.of(1, 0, 0, 1, 1, 0, 0.5, 0.5);
    expect(topKInnerProduct(vectors, 2, [1, 0], 3)).toEqual([
      { id: 0, score: 1 },
      { id: 2, score: 1 },
      { id: 3, score: 0.5 },
    ]);
  });
});

describe('cacheBlend (MODEL_SPEC §1.4)', () => {
  it('mixes the un-normalised query with the normalised softmax-weighted neighbours', () => {
    const vectors = Float32Array.of(1, 0, 0, 1);
    const q = [0.3, 0.1];
    const { blended, neighbours } = cacheBlend(q, vectors, 2, { size: 2, temperature: 20, weight: 0.5 });
    expect(neighbours.map((n) => n.id)).toEqual([0, 1]);
    const a0 = 1 / (1 + Math.exp(20 * (0.1 - 0.3)));
    const r = [a0, 1 - a0];
    const rn = Math.hypot(r[0]!, r[1]!);
    const u = [0.5 * 0.3 + (0.5 * r[0]!) / rn, 0.5 * 0.1 + (0.5 * r[1]!) / rn];
    const un = Math.hypot(u[0]!, u[1]!);
    expect(blended[0]).toBeCloseTo(u[0]! / un, 6);
    expect(blended[1]).toBeCloseTo(u[1]! / un, 6);
    expect(Math.hypot(blended[0]!, blended[1]!)).toBeCloseTo(1, 6);
  });

  it('is the query itself (normalised) at weight 0 and the neighbour mean at weight 1', () => {
    const vectors = Float32Array.of(1, 0, 0, 1);
    expect(
      Array.from(cacheBlend([0, 2], vectors, 2, { size: 1, temperature: 20, weight: 0 }).blended),
    ).toEqual([0, 1]);
    expect(
      Array.from(cacheBlend([0.1, 2], vectors, 2, { size: 1, temperature: 20, weight: 1 }).blended),
    ).toEqual([0, 1]);
  });
});
