import { describe, expect, it } from 'vitest';
import { argmax, pickToken, sampleTopP, softmaxWithTemperature, uniformAt } from './sampling';

describe('argmax', () => {
  it('returns the first index of the maximum, as torch.argmax', () => {
    expect(argmax(Float32Array.of(1, 3, 3, 2))).toBe(1);
    expect(argmax(Float32Array.of(-5))).toBe(0);
  });
});

describe('sampleTopP (MODEL_SPEC §5.8)', () => {
  const probs = Float64Array.of(0.2, 0.5, 0.3);

  it('keeps entries whose exclusive cumulative mass is at most top_p', () => {
    // sorted: 0.5 (excl 0), 0.3 (excl 0.5 → kept, not > 0.5), 0.2 (excl 0.8 → masked)
    const picked = new Set<number>();
    for (let i = 0; i < 200; i++) picked.add(sampleTopP(probs, 0.5, i / 200).id);
    expect([...picked].sort()).toEqual([1, 2]);
  });

  it('renormalises over the kept entries', () => {
    expect(sampleTopP(probs, 0.5, 0).prob).toBeCloseTo(0.5 / 0.8, 12);
    expect(sampleTopP(probs, 0.5, 0.7).id).toBe(2); // 0.7·0.8 = 0.56 > 0.5
  });

  it('degenerates to greedy at top_p = 0 (the first entry always survives)', () => {
    for (const u of [0, 0.5, 0.999]) expect(sampleTopP(probs, 0, u)).toEqual({ id: 1, prob: 1 });
  });

  it('keeps everything at top_p = 1', () => {
    const picked = new Set<number>();
    for (let i = 0; i < 100; i++) picked.add(sampleTopP(probs, 1, i / 100).id);
    expect(picked.size).toBe(3);
  });
});

describe('uniformAt', () => {
  it('is a pure function of (seed, step) in [0, 1)', () => {
    expect(uniformAt(42n, 3)).toBe(uniformAt(42n, 3));
    expect(uniformAt(42n, 3)).not.toBe(uniformAt(42n, 4));
    expect(uniformAt(42n, 3)).not.toBe(uniformAt(43n, 3));
    let sum = 0;
    for (let i = 0; i < 10_000; i++) {
      const u = uniformAt(7n, i);
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      sum += u;
    }
    expect(sum / 10_000).toBeCloseTo(0.5, 1);
  });
});

describe('pickToken', () => {
  const logits = Float32Array.of(0, 2, 1, 2.5);

  it('is greedy at temperature 0 and reports the log-probability', () => {
    const t = pickToken(logits, { temperature: 0, topP: 0.75, seed: 1n }, 0);
    expect(t.id).toBe(3);
    expect(t.logprob).toBeCloseTo(Math.log(softmaxWithTemperature(logits, 1)[3]!), 12);
    expect(pickToken(logits, { temperature: 0, topP: 0.75, seed: 1n }, 0, false)).toEqual({ id: 3 });
  });

  it('samples reproducibly for a seed and step', () => {
    const params = { temperature: 1, topP: 1, seed: 99n };
    const draws = Array.from({ length: 50 }, (_, i) => pickToken(logits, params, i).id);
    expect(Array.from({ length: 50 }, (_, i) => pickToken(logits, params, i).id)).toEqual(draws);
    expect(new Set(draws).size).toBeGreaterThan(1);
  });

  it('sharpens with low temperature', () => {
    const params = { temperature: 0.01, topP: 1, seed: 5n };
    for (let i = 0; i < 20; i++) expect(pickToken(logits, params, i).id).toBe(3);
  });
});

describe('sampleTopP matches the full-sort definition (MODEL_SPEC §5.8)', () => {
  // The definition, written the slow way: sort the whole vocabulary.
  function reference(probs: Float64Array, topP: number, u: number): { id: number; prob: number } {
    const order = Array.from({ length: probs.length }, (_, i) => i);
    order.sort((a, b) => probs[b]! - probs[a]! || a - b);
    let cumulative = 0;
    let kept = 0;
    for (const idx of order) {
      if (cumulative > topP) break;
      cumulative += probs[idx]!;
      kept++;
    }
    let acc = 0;
    for (let i = 0; i < kept; i++) {
      acc += probs[order[i]!]!;
      if (u * cumulative < acc) return { id: order[i]!, prob: probs[order[i]!]! / cumulative };
    }
    const last = order[kept - 1]!;
    return { id: last, prob: probs[last]! / cumulative };
  }

  it('gives the same token and probability for peaked, flat and tied distributions', () => {
    let state = 12345;
    const rand = (): number => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state / 2 ** 31;
    };
    for (const temperature of [0.05, 0.1, 0.7, 1, 3]) {
      for (const topP of [0, 0.3, 0.75, 0.95, 1]) {
        for (let trial = 0; trial < 6; trial++) {
          const logits = Float32Array.from({ length: 3000 }, () => Math.round(rand() * 40) / 4);
          const probs = softmaxWithTemperature(logits, temperature);
          const u = rand();
          expect(sampleTopP(probs, topP, u)).toEqual(reference(probs, topP, u));
        }
      }
    }
  });
});
