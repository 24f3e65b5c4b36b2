import { CACHE_DEFAULTS, cacheBlend, topKInnerProduct } from '@imagebind-llm/domain';
import { ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { EmbeddedVectorStore } from './embedded.driver';
import { domainRejection } from './testing/domain-rejection';
import { randomVectors, shuffled } from './testing/random-vectors';
import type { VectorPoint, VectorStore } from './vector-store.port';

function rows(vectors: Float32Array, d: number, ids: readonly number[]): VectorPoint[] {
  return ids.map((id) => ({ id, vector: vectors.slice(id * d, (id + 1) * d) }));
}

async function hitsOf(store: VectorStore, collection: string, q: Float32Array, k: number) {
  const [hits] = await store.search(collection, q, { k });
  return hits!.map(({ id, score }) => ({ id, score }));
}

describe('EmbeddedVectorStore exact search', () => {
  const d = 16;
  const n = 500;
  const vectors = randomVectors(n, d, 7, true);
  // Duplicates of row 100 make exact ties that only the id order can break (faiss: lower id first).
  for (const copy of [10, 250, 499]) vectors.copyWithin(copy * d, 100 * d, 101 * d);

  async function filledStore(): Promise<EmbeddedVectorStore> {
    const store = await EmbeddedVectorStore.open();
    await store.ensureCollection('cache', d);
    // Shuffled so storage order differs from id order: ties must still follow the ids.
    await store.upsert('cache', rows(vectors, d, shuffled([...Array(n).keys()], 3)));
    return store;
  }

  it('returns exactly what topKInnerProduct returns, scores bit for bit', async () => {
    const store = await filledStore();
    const queries = randomVectors(25, d, 11);
    for (let i = 0; i < 25; i++) {
      const q = queries.subarray(i * d, (i + 1) * d);
      for (const k of [1, 10, 77]) {
        expect(await hitsOf(store, 'cache', q, k)).toEqual(topKInnerProduct(vectors, d, q, k));
      }
    }
  });

  it('orders equal scores by lower id first, whatever the insertion order', async () => {
    const store = await filledStore();
    const own = vectors.slice(100 * d, 101 * d);
    const hits = await hitsOf(store, 'cache', own, 6);
    expect(hits.slice(0, 4).map((h) => h.id)).toEqual([10, 100, 250, 499]);
    expect(new Set(hits.slice(0, 4).map((h) => h.score)).size).toBe(1);
    expect(hits).toEqual(topKInnerProduct(vectors, d, own, 6));
    // A zero query scores every point 0: pure id order.
    expect((await hitsOf(store, 'cache', new Float32Array(d), 5)).map((h) => h.id)).toEqual([0, 1, 2, 3, 4]);
  });

  it('returns every point, in order, when k exceeds the count', async () => {
    const store = await filledStore();
    const q = randomVectors(1, d, 5);
    const hits = await hitsOf(store, 'cache', q, 1000);
    expect(hits).toHaveLength(n);
    expect(hits).toEqual(topKInnerProduct(vectors, d, q, 1000));
  });

  it('feeds the cache blend the same neighbours as the in-process blend (MODEL_SPEC §1.4)', async () => {
    const store = await filledStore();
    const q = randomVectors(1, d, 99);
    const expected = cacheBlend(q, vectors, d, CACHE_DEFAULTS);
    const [hits] = await store.search('cache', q, { k: CACHE_DEFAULTS.size, includeVectors: true });
    expect(hits!.map(({ id, score }) => ({ id, score }))).toEqual(expected.neighbours);
    hits!.forEach((hit) => expect(hit.vector).toEqual(vectors.subarray(hit.id * d, (hit.id + 1) * d)));
  });

  it('answers each query of a batch with its own neighbours', async () => {
    const store = await filledStore();
    const queries = randomVectors(4, d, 21);
    const results = await store.search('cache', queries, { k: 3 });
    expect(results).toHaveLength(4);
    results.forEach((hits, i) =>
      expect(hits.map(({ id, score }) => ({ id, score }))).toEqual(
        topKInnerProduct(vectors, d, queries.subarray(i * d, (i + 1) * d), 3),
      ),
    );
    expect(await store.search('cache', new Float32Array(0), { k: 3 })).toEqual([]);
  });

  it('stays exact after deletes move rows around', async () => {
    const store = await filledStore();
    const gone = [0, 10, 100, 101, 250, 498];
    expect(await store.delete('cache', gone)).toBe(gone.length);
    const keptIds = [...Array(n).keys()].filter((id) => !gone.includes(id));
    const kept = new Float32Array(keptIds.length * d);
    keptIds.forEach((id, row) => kept.set(vectors.subarray(id * d, (id + 1) * d), row * d));
    const q = vectors.slice(100 * d, 101 * d);
    const expected = topKInnerProduct(kept, d, q, 20).map((h) => ({ id: keptIds[h.id]!, score: h.score }));
    const hits = await hitsOf(store, 'cache', q, 20);
    expect(hits).toEqual(expected);
    expect(hits[0]!.id).toBe(499);
  });
});

describe('EmbeddedVectorStore points', () => {
  it('returns vectors and payloads only when asked, as copies', async () => {
    const store = await EmbeddedVectorStore.open();
    await store.ensureCollection('items', 3);
    await store.upsert('items', [
      { id: 1, vector: Float32Array.of(1, 0, 0), payload: { caption: 'a cat' } },
      { id: 2, vector: Float32Array.of(0.5, 0.5, 0) },
    ]);
    const q = Float32Array.of(1, 0.1, 0);
    const [plain] = await store.search('items', q, { k: 2 });
    expect(plain!.map((h) => Object.keys(h).sort())).toEqual([
      ['id', 'score'],
      ['id', 'score'],
    ]);
    const [full] = await store.search('items', q, { k: 2, includeVectors: true, includePayloads: true });
    expect(full).toEqual([
      { id: 1, score: Math.fround(1), vector: Float32Array.of(1, 0, 0), payload: { caption: 'a cat' } },
      { id: 2, score: Math.fround(0.5 + 0.5 * 0.1), vector: Float32Array.of(0.5, 0.5, 0), payload: {} },
    ]);
    full![0]!.vector![0] = 42;
    const [again] = await store.search('items', q, { k: 1, includeVectors: true });
    expect(again![0]!.vector).toEqual(Float32Array.of(1, 0, 0));
  });

  it('replaces by id, deletes, counts and clears', async () => {
    const store = await EmbeddedVectorStore.open();
    await store.ensureCollection('items', 2);
    expect(
      await store.upsert('items', [
        { id: 5, vector: Float32Array.of(1, 0), payload: { v: 'old' } },
        { id: 6, vector: Float32Array.of(0, 1) },
      ]),
    ).toBe(2);
    expect(await store.upsert('items', [{ id: 5, vector: Float32Array.of(0, -1) }])).toBe(1);
    expect((await store.describe('items'))?.count).toBe(2);
    const [hits] = await store.search('items', Float32Array.of(0, -1), {
      k: 2,
      includeVectors: true,
      includePayloads: true,
    });
    // The replacement dropped the old payload along with the old vector.
    expect(hits![0]).toEqual({ id: 5, score: 1, vector: Float32Array.of(0, -1), payload: {} });

    // A repeated id in one batch: the last one wins.
    await store.upsert('items', [
      { id: 7, vector: Float32Array.of(1, 1) },
      { id: 7, vector: Float32Array.of(2, 2) },
    ]);
    expect((await store.describe('items'))?.count).toBe(3);
    const [seven] = await store.search('items', Float32Array.of(1, 1), { k: 1, includeVectors: true });
    expect(seven![0]!.vector).toEqual(Float32Array.of(2, 2));

    expect(await store.delete('items', [5, 999, 5])).toBe(1);
    expect(await store.delete('items', [5])).toBe(0);
    expect(await store.describe('items')).toEqual({
      name: 'items',
      dimension: 2,
      count: 2,
      driver: 'embedded',
    });

    await store.clear('items');
    expect(await store.describe('items')).toEqual({
      name: 'items',
      dimension: 2,
      count: 0,
      driver: 'embedded',
    });
    expect(await store.search('items', Float32Array.of(1, 0), { k: 3 })).toEqual([[]]);
    await store.ensureCollection('items', 2);
    expect((await domainRejection(store.ensureCollection('items', 3))).code).toBe(
      ErrorCode.FailedPrecondition,
    );
    expect(await store.describe('other')).toBeUndefined();
  });

  it('sees concurrent writes whole', async () => {
    const store = await EmbeddedVectorStore.open();
    await store.ensureCollection('items', 2);
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        store.upsert('items', [
          { id: i * 2, vector: Float32Array.of(i, 1) },
          { id: i * 2 + 1, vector: Float32Array.of(-i, 1) },
        ]),
      ),
    );
    await Promise.all([store.delete('items', [0, 1]), store.delete('items', [1, 2])]);
    expect((await store.describe('items'))?.count).toBe(97);
  });
});

describe('EmbeddedVectorStore approximate path', () => {
  const d = 64;
  const n = 5000;
  const vectors = randomVectors(n, d, 1234, true);
  const queries = randomVectors(100, d, 4321, true);

  async function recallAt10(quantization: 'f32' | 'i8'): Promise<number> {
    const exact = await EmbeddedVectorStore.open({ exactBelow: Number.POSITIVE_INFINITY });
    const approx = await EmbeddedVectorStore.open({ exactBelow: 100, quantization });
    for (const store of [exact, approx]) {
      await store.ensureCollection('c', d);
      await store.upsert('c', rows(vectors, d, [...Array(n).keys()]));
    }
    const truth = await exact.search('c', queries, { k: 10 });
    const found = await approx.search('c', queries, { k: 10 });
    let hit = 0;
    found.forEach((hits, i) => {
      const want = new Set(truth[i]!.map((h) => h.id));
      hit += hits.filter((h) => want.has(h.id)).length;
      // Candidates are re-scored in float32: a returned score is the exact inner product.
      const q = queries.subarray(i * d, (i + 1) * d);
      hits.forEach((h) =>
        expect(h.score).toBe(topKInnerProduct(vectors.subarray(h.id * d, (h.id + 1) * d), d, q, 1)[0]!.score),
      );
      expect(hits.map((h) => h.score)).toEqual([...hits.map((h) => h.score)].sort((a, b) => b - a));
    });
    return hit / (10 * found.length);
  }

  // A quality floor for the HNSW graph on random data (the hardest case), not a timing check.
  it('keeps recall@10 at or above 0.9 with an int8 index', async () => {
    expect(await recallAt10('i8')).toBeGreaterThanOrEqual(0.9);
  });

  it('keeps recall@10 at or above 0.9 with a float32 index', async () => {
    expect(await recallAt10('f32')).toBeGreaterThanOrEqual(0.9);
  });

  it('keeps the index in step with upserts and deletes', async () => {
    const store = await EmbeddedVectorStore.open({ exactBelow: 100, quantization: 'i8' });
    await store.ensureCollection('c', d);
    await store.upsert('c', rows(vectors, d, [...Array(1000).keys()]));
    const own = (id: number): Float32Array => vectors.slice(id * d, (id + 1) * d);
    expect((await hitsOf(store, 'c', own(42), 1))[0]?.id).toBe(42);
    await store.delete('c', [42]);
    expect((await hitsOf(store, 'c', own(42), 5)).map((h) => h.id)).not.toContain(42);
    // Id 7 moves to where 42 was; the index must forget its old position.
    await store.upsert('c', [{ id: 7, vector: own(42) }]);
    expect((await hitsOf(store, 'c', own(42), 1))[0]?.id).toBe(7);
    expect((await hitsOf(store, 'c', own(7), 5)).map((h) => h.id)).not.toContain(7);
    await store.upsert('c', [{ id: 5000, vector: own(4999) }]);
    expect((await hitsOf(store, 'c', own(4999), 1))[0]?.id).toBe(5000);
    expect((await store.describe('c'))?.count).toBe(1000);
  });
});

describe('EmbeddedVectorStore validation', () => {
  async function store(): Promise<EmbeddedVectorStore> {
    const s = await EmbeddedVectorStore.open();
    await s.ensureCollection('c', 3);
    return s;
  }

  it('rejects a vector of the wrong size, naming the point and the expected size', async () => {
    const s = await store();
    const error = await domainRejection(
      s.upsert('c', [
        { id: 1, vector: Float32Array.of(1, 2, 3) },
        { id: 2, vector: Float32Array.of(1, 2) },
      ]),
    );
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.message).toMatch(/points\[1\] \(id 2\): vector has 2 values, expected 3/);
    expect(error.details.field).toBe('points[1].vector');
    // Nothing of the batch was written.
    expect((await s.describe('c'))?.count).toBe(0);
  });

  it('rejects NaN and infinite components in points and queries', async () => {
    const s = await store();
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const error = await domainRejection(s.upsert('c', [{ id: 1, vector: Float32Array.of(1, bad, 3) }]));
      expect(error.code).toBe(ErrorCode.InvalidInput);
      expect(error.message).toMatch(/vector\[1\] is (NaN|Infinity).*finite/);
    }
    const error = await domainRejection(s.search('c', Float32Array.of(1, 2, 3, 4, Number.NaN, 6), { k: 1 }));
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.message).toMatch(/query 1 has NaN at position 1/);
  });

  it('rejects k outside 1..1000 and a query of the wrong width', async () => {
    const s = await store();
    for (const k of [0, -1, 1001, 2.5, Number.NaN]) {
      const error = await domainRejection(s.search('c', Float32Array.of(1, 2, 3), { k }));
      expect(error.code).toBe(ErrorCode.InvalidInput);
      expect(error.message).toMatch(/k must be an integer in 1\.\.1000/);
    }
    const error = await domainRejection(s.search('c', Float32Array.of(1, 2, 3, 4), { k: 1 }));
    expect(error.code).toBe(ErrorCode.InvalidInput);
    expect(error.message).toMatch(/4 values, not a multiple of .* 3/);
  });

  it('rejects bad collection names and ids', async () => {
    const s = await store();
    for (const name of ['', '.hidden', '../up', 'a/b', 'x'.repeat(65), 'sp ace']) {
      const error = await domainRejection(s.ensureCollection(name, 3));
      expect(error.code).toBe(ErrorCode.InvalidInput);
      expect(error.message).toMatch(/collection name .* is not allowed/);
    }
    await s.ensureCollection(`A1_b.c-${'x'.repeat(57)}`, 3);
    for (const id of [-1, 1.5, 2 ** 53]) {
      const error = await domainRejection(s.upsert('c', [{ id, vector: Float32Array.of(1, 2, 3) }]));
      expect(error.code).toBe(ErrorCode.InvalidInput);
      expect(error.message).toMatch(/points\[0\]\.id must be a non-negative safe integer/);
    }
    expect((await domainRejection(s.delete('c', [3, -2]))).message).toMatch(/ids\[1\]/);
    expect((await domainRejection(s.ensureCollection('d', 0))).code).toBe(ErrorCode.InvalidInput);
    const payload = { n: 3 } as unknown as Record<string, string>;
    const error = await domainRejection(
      s.upsert('c', [{ id: 1, vector: Float32Array.of(1, 2, 3), payload }]),
    );
    expect(error.message).toMatch(/payload\.n .* payload values must be strings/);
  });

  it('answers NOT_FOUND for an unknown collection', async () => {
    const s = await store();
    const q = Float32Array.of(1, 2, 3);
    for (const call of [
      s.search('nope', q, { k: 1 }),
      s.delete('nope', [1]),
      s.upsert('nope', [{ id: 1, vector: q }]),
      s.clear('nope'),
    ]) {
      const error = await domainRejection(call);
      expect(error.code).toBe(ErrorCode.NotFound);
      expect(error.message).toMatch(/"nope" does not exist; create it with ensureCollection/);
    }
  });

  it('rejects bad options, cancelled searches and calls after close', async () => {
    for (const options of [
      { quantization: 'f16' as 'f32' },
      { exactBelow: -1 },
      { exactBelow: 0.5 },
      { hnsw: { connectivity: 1 } },
      { dir: '' },
    ]) {
      expect((await domainRejection(EmbeddedVectorStore.open(options))).code).toBe(ErrorCode.InvalidInput);
    }
    const s = await store();
    await s.upsert('c', [{ id: 1, vector: Float32Array.of(1, 2, 3) }]);
    const controller = new AbortController();
    controller.abort();
    const cancelled = await domainRejection(
      s.search('c', Float32Array.of(1, 2, 3), { k: 1, signal: controller.signal }),
    );
    expect(cancelled.code).toBe(ErrorCode.Cancelled);
    await s.close();
    await s.close();
    expect((await domainRejection(s.describe('c'))).code).toBe(ErrorCode.FailedPrecondition);
  });
});
