import { topKInnerProduct } from '@imagebind-llm/domain';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedVectorStore } from './embedded.driver';
import { exactTopKBatch, scalarTopK, TopK, type RowHit } from './exact-top-k';
import { ExactScanPool } from './scan-pool';
import { sharedFloat32 } from './shared-memory';
import { randomVectors, seededRandom } from './testing/random-vectors';

// Components over eight orders of magnitude: a float64 sum then depends on the order of its
// additions, so only scores formed in topKInnerProduct's order (index order, float64, one fround
// at the end) match it bit for bit.
function wildVectors(length: number, seed: number, shared = false): Float32Array {
  const next = seededRandom(seed);
  const out = shared ? sharedFloat32(length) : new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = (next() * 2 - 1) * 10 ** Math.floor(next() * 8 - 4);
  return out;
}

const strip = (hits: readonly RowHit[]): { id: number; score: number }[] =>
  hits.map(({ id, score }) => ({ id, score }));

describe('exactTopKBatch (the WebAssembly SIMD scan)', () => {
  // Dimensions around the kernel's 4-wide unroll, batch sizes around its pairs of queries and its
  // groups of four pairs, row counts around its 32-row blocks and 8-row steps.
  it.each([1, 3, 4, 37, 64, 1024])('matches topKInnerProduct bit for bit at d=%i', (d) => {
    const n = d === 1024 ? 97 : 203;
    const vectors = wildVectors(n * d, d);
    const identity = Array.from({ length: n }, (_, i) => i);
    for (const q of [1, 2, 3, 8, 9, 11]) {
      const queries = wildVectors(q * d, 1000 + q);
      for (const k of [1, 10, n + 5]) {
        const batch = exactTopKBatch(vectors, identity, n, queries, d, k);
        expect(batch).toHaveLength(q);
        batch.forEach((hits, i) => {
          const query = queries.subarray(i * d, (i + 1) * d);
          expect(strip(hits)).toEqual(topKInnerProduct(vectors, d, query, k));
          expect(hits).toEqual(scalarTopK(vectors, identity, n, query, k));
        });
      }
    }
  });

  it('gives the same hits however the rows are offered in chunks (TopK)', () => {
    const d = 19;
    const n = 300;
    const vectors = wildVectors(n * d, 7);
    const ids = Array.from({ length: n }, (_, i) => 5000 - 3 * i);
    const queries = wildVectors(5 * d, 8);
    const whole = exactTopKBatch(vectors, ids, n, queries, d, 12);
    for (const size of [1, 31, 32, 33, 100]) {
      const top = new TopK(queries, d, 12);
      for (let first = 0; first < n; first += size) {
        const rows = Math.min(size, n - first);
        top.offer(vectors.subarray(first * d), ids.slice(first, first + rows), rows, first);
      }
      expect(top.result()).toEqual(whole);
    }
  });

  it('refuses queries that are not whole vectors and an offer after the result', () => {
    expect(() => new TopK(new Float32Array(5), 2, 1)).toThrow(/whole number of 2-vectors/);
    const top = new TopK(new Float32Array(2), 2, 1);
    top.result();
    expect(() => top.offer(new Float32Array(2), [0], 1)).toThrow(/after result/);
  });
});

describe('ExactScanPool', () => {
  const pool = new ExactScanPool({ threads: 3, minRowsPerThread: 40 });
  afterAll(() => pool.close());

  it('splits the rows across worker threads and returns exactly the one-thread answer', async () => {
    const d = 37;
    const n = 1001; // 3 ranges of whole 32-row blocks and a short last one
    const vectors = wildVectors(n * d, 11, true);
    const ids = Float64Array.from({ length: n }, (_, i) => (i * 7919) % 100_003);
    expect(pool.threadsFor(n)).toBe(3);
    for (const q of [1, 4, 7]) {
      const queries = wildVectors(q * d, 20 + q);
      for (const k of [1, 10, 1200]) {
        const hits = await pool.topK({ vectors, ids, rows: n, queries, dimension: d, k, rowOffset: 500 });
        const reference = exactTopKBatch(vectors, ids, n, queries, d, k);
        expect(hits).toEqual(reference.map((list) => list.map((h) => ({ ...h, row: h.row + 500 }))));
      }
    }
  });

  it('ties across ranges go to the lower id, as in one pass', async () => {
    const d = 4;
    const n = 200;
    const vectors = sharedFloat32(n * d).fill(1);
    const ids = Float64Array.from({ length: n }, (_, i) => n - i); // lowest ids in the last range
    const hits = await pool.topK({
      vectors,
      ids,
      rows: n,
      queries: Float32Array.of(1, 1, 1, 1),
      dimension: d,
      k: 3,
    });
    expect(hits[0]!.map((h) => h.id)).toEqual([1, 2, 3]);
    expect(hits[0]!.map((h) => h.row)).toEqual([199, 198, 197]);
  });

  it('scans on the caller when the rows are not shared or too few for the threads', async () => {
    const d = 8;
    const plain = wildVectors(500 * d, 3);
    const ids = Float64Array.from({ length: 500 }, (_, i) => i);
    const queries = wildVectors(2 * d, 4);
    expect(pool.threadsFor(39)).toBe(0);
    const hits = await pool.topK({ vectors: plain, ids, rows: 500, queries, dimension: d, k: 5 });
    expect(hits).toEqual(exactTopKBatch(plain, ids, 500, queries, d, 5));
  });

  it('rejects with a clear error when its worker cannot start, and keeps serving afterwards', async () => {
    const broken = new ExactScanPool({
      threads: 2,
      minRowsPerThread: 40,
      workerFile: '/nonexistent/scan.worker.js',
    });
    const vectors = wildVectors(100 * 4, 5, true);
    const job = {
      vectors,
      ids: Float64Array.from({ length: 100 }, (_, i) => i),
      rows: 100,
      queries: Float32Array.of(1, 2, 3, 4),
      dimension: 4,
      k: 2,
    };
    await expect(broken.topK(job)).rejects.toThrow(/worker|Cannot find module/);
    await broken.close();
    // Closed: later scans run on the caller and still answer.
    expect(await broken.topK(job)).toEqual(exactTopKBatch(vectors, job.ids, 100, job.queries, 4, 2));
  });
});

describe('EmbeddedVectorStore exact search on scan threads', () => {
  it('answers like the reference, and a write during the scan never shows in its hits', async () => {
    const d = 16;
    const n = 20_000; // ≥ 2 threads × 8,192 rows: the driver's pool uses its workers
    const store = await EmbeddedVectorStore.open({ scanThreads: 2 });
    try {
      await store.ensureCollection('c', d);
      // Unit rows: each row is its own best hit.
      const vectors = randomVectors(n, d, 31, true);
      const points = Array.from({ length: n }, (_, i) => ({
        id: i + 1,
        vector: vectors.subarray(i * d, (i + 1) * d),
      }));
      await store.upsert('c', points);
      // Queries equal to the rows about to be deleted.
      const queries = vectors.slice(0, 3 * d);
      const pending = store.search('c', queries, { k: 5, includeVectors: true });
      // Deleting the first rows moves the last rows into their places; the scan must not see it.
      const deleted = await store.delete('c', [1, 2, 3, 4, 5]);
      expect(deleted).toBe(5);
      const hits = await pending;
      hits.forEach((list, q) => {
        const reference = topKInnerProduct(vectors, d, queries.subarray(q * d, (q + 1) * d), 5);
        expect(list.map(({ id, score }) => ({ id: id - 1, score }))).toEqual(reference);
        expect(list.map((hit) => hit.id)).toContain(q + 1);
        list.forEach((hit) => expect(hit.vector).toEqual(vectors.slice((hit.id - 1) * d, hit.id * d)));
      });
    } finally {
      await store.close();
    }
  });

  it('refuses a scanThreads that is not an integer from 0 to 64', async () => {
    await expect(EmbeddedVectorStore.open({ scanThreads: -1 })).rejects.toThrow(/scanThreads/);
    await expect(EmbeddedVectorStore.open({ scanThreads: 1.5 })).rejects.toThrow(/scanThreads/);
  });
});
