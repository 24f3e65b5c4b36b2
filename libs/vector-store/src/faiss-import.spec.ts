import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bufferSource, readFaissFlatIndex, readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { topKInnerProduct } from '@imagebind-llm/domain';
import { ErrorCode } from '@imagebind-llm/errors';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { EmbeddedVectorStore } from './embedded.driver';
import { importFaissIndex } from './faiss-import';
import { domainRejection } from './testing/domain-rejection';
import { faissFlatIndexBytes } from './testing/faiss-fixture';
import { randomVectors } from './testing/random-vectors';
import { CACHE_COLLECTION } from './vector-store.port';

// The golden manifest's "knn_index" entry: the official cache index, IxFI with d=1024, ntotal=2048.
const KNN_INDEX = goldenPath('knn.index');

describe('importFaissIndex', () => {
  it('imports the golden knn.index row by row, ids = row numbers, reporting each batch', async () => {
    const store = await EmbeddedVectorStore.open();
    const progress: [number, number][] = [];
    const result = await importFaissIndex(store, CACHE_COLLECTION, KNN_INDEX, {
      batchSize: 500,
      onProgress: (imported, total) => progress.push([imported, total]),
    });
    expect(result).toEqual({ imported: 2048, total: 2048, indexType: 'IndexFlatIP' });
    expect(progress).toEqual([
      [500, 2048],
      [1000, 2048],
      [1500, 2048],
      [2000, 2048],
      [2048, 2048],
    ]);
    expect(await store.describe(CACHE_COLLECTION)).toEqual({
      name: CACHE_COLLECTION,
      dimension: 1024,
      count: 2048,
      driver: 'embedded',
    });

    const { vectors } = await readFaissFlatIndex(KNN_INDEX);
    for (const row of [0, 1, 777, 2047]) {
      const own = vectors.slice(row * 1024, (row + 1) * 1024);
      const [hits] = await store.search(CACHE_COLLECTION, own, { k: 3, includeVectors: true });
      expect(hits![0]!.id).toBe(row);
      expect(hits![0]!.vector).toEqual(own);
      expect(hits!.map(({ id, score }) => ({ id, score }))).toEqual(topKInnerProduct(vectors, 1024, own, 3));
    }
  });

  it('reproduces the official cache neighbours (golden fusion/point_knn-on)', async () => {
    const store = await EmbeddedVectorStore.open();
    await importFaissIndex(store, CACHE_COLLECTION, KNN_INDEX);
    const expected = (name: string): Float32Array =>
      toFloat32(readNpy(goldenPath('expected', 'fusion', 'point_knn-on', name)));
    const q = expected('q.npy');
    const ids = expected('knn_ids.npy');
    const scores = expected('knn_scores.npy');
    const [hits] = await store.search(CACHE_COLLECTION, q, { k: ids.length });
    expect(hits!.map((h) => h.id)).toEqual(Array.from(ids));
    // faiss sums the 1024 products in float32 in its own order; 1e-5 covers that at scores ~0.1.
    hits!.forEach((h, i) => expect(Math.abs(h.score - scores[i]!)).toBeLessThan(1e-5));
  });

  it('refuses an L2 index before touching the store, saying why', async () => {
    const store = await EmbeddedVectorStore.open();
    const bytes = faissFlatIndexBytes('IxF2', 4, randomVectors(3, 4, 1));
    const error = await domainRejection(importFaissIndex(store, 'l2', bufferSource('l2.index', bytes)));
    expect(error.code).toBe(ErrorCode.FailedPrecondition);
    expect(error.message).toMatch(/l2\.index is an IndexFlatL2 .*needs an inner-product index.*IndexFlatIP/);
    expect(await store.describe('l2')).toBeUndefined();
  });

  it('refuses other index kinds, missing files and bad batch sizes', async () => {
    const store = await EmbeddedVectorStore.open();
    const hnsw = faissFlatIndexBytes('IxFI', 2, Float32Array.of(1, 2));
    hnsw.set(new TextEncoder().encode('IHNf'), 0);
    const kind = await domainRejection(importFaissIndex(store, 'c', bufferSource('hnsw.index', hnsw)));
    expect(kind.code).toBe(ErrorCode.FailedPrecondition);
    expect(kind.message).toMatch(/IndexHNSWFlat.*not supported/);

    const missing = await domainRejection(importFaissIndex(store, 'c', '/nonexistent/knn.index'));
    expect(missing.code).toBe(ErrorCode.NotFound);

    const batch = await domainRejection(importFaissIndex(store, 'c', KNN_INDEX, { batchSize: 0 }));
    expect(batch.code).toBe(ErrorCode.InvalidInput);
  });

  it('refuses a non-empty collection unless replace is set, then replaces it', async () => {
    const store = await EmbeddedVectorStore.open();
    const d = 8;
    await store.ensureCollection('c', d);
    await store.upsert('c', [{ id: 99, vector: new Float32Array(d).fill(1) }]);
    const source = (): ReturnType<typeof bufferSource> =>
      bufferSource('small.index', faissFlatIndexBytes('IxFI', d, randomVectors(10, d, 2)));

    const refused = await domainRejection(importFaissIndex(store, 'c', source()));
    expect(refused.code).toBe(ErrorCode.FailedPrecondition);
    expect(refused.message).toMatch(/already holds 1 points; pass replace: true/);

    expect(await importFaissIndex(store, 'c', source(), { replace: true, batchSize: 3 })).toEqual({
      imported: 10,
      total: 10,
      indexType: 'IndexFlatIP',
    });
    expect((await store.describe('c'))?.count).toBe(10);
    expect(await store.delete('c', [99])).toBe(0);

    const wrongDim = await domainRejection(
      importFaissIndex(
        store,
        'c',
        bufferSource('d4.index', faissFlatIndexBytes('IxFI', 4, new Float32Array(4))),
      ),
    );
    expect(wrongDim.code).toBe(ErrorCode.FailedPrecondition);
    expect(wrongDim.message).toMatch(/dimension 8, not 4/);
  });

  it('stops at the next batch when cancelled', async () => {
    const store = await EmbeddedVectorStore.open();
    const controller = new AbortController();
    const d = 4;
    const error = await domainRejection(
      importFaissIndex(
        store,
        'c',
        bufferSource('x.index', faissFlatIndexBytes('IxFI', d, randomVectors(10, d, 3))),
        {
          batchSize: 4,
          signal: controller.signal,
          onProgress: () => controller.abort(),
        },
      ),
    );
    expect(error.code).toBe(ErrorCode.Cancelled);
    expect(error.message).toMatch(/after 4 of 10 rows/);
    expect((await store.describe('c'))?.count).toBe(4);
  });

  it('streams a large index into a disk-resident collection; a cancelled re-import keeps the old rows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'faiss-import-'));
    try {
      const d = 16;
      const first = randomVectors(900, d, 5, true);
      const options = { dir, residentBelow: 500, exactBelow: 600, quantization: 'i8' as const };
      const store = await EmbeddedVectorStore.open(options);
      const progress: number[] = [];
      const result = await importFaissIndex(
        store,
        'c',
        bufferSource('big.index', faissFlatIndexBytes('IxFI', d, first)),
        { batchSize: 256, onProgress: (done) => progress.push(done) },
      );
      expect(result).toEqual({ imported: 900, total: 900, indexType: 'IndexFlatIP' });
      expect(progress).toEqual([256, 512, 768, 900]);
      // Written, graph included, by the import itself: nothing left for a flush.
      expect(readdirSync(join(dir, 'c')).sort()).toEqual([
        'ids.1.npy',
        'index.1.ivf',
        'manifest.json',
        'payloads.1.json',
        'vectors.1.0.npy',
      ]);
      const q = first.slice(42 * d, 43 * d);
      const [hits] = await store.search('c', q, { k: 3 });
      expect(hits![0]!.id).toBe(42);
      expect(hits!.map(({ id, score }) => ({ id, score })).slice(0, 1)).toEqual(
        topKInnerProduct(first, d, q, 1),
      );

      const controller = new AbortController();
      const cancelled = await domainRejection(
        importFaissIndex(
          store,
          'c',
          bufferSource('other.index', faissFlatIndexBytes('IxFI', d, randomVectors(900, d, 6, true))),
          { replace: true, batchSize: 256, signal: controller.signal, onProgress: () => controller.abort() },
        ),
      );
      expect(cancelled.code).toBe(ErrorCode.Cancelled);
      expect(cancelled.message).toMatch(/after 256 of 900 rows/);
      expect((await store.describe('c'))?.count).toBe(900);
      expect((await store.search('c', q, { k: 3 }))[0]).toEqual(hits);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
