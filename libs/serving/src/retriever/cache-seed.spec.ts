import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy } from '@imagebind-llm/checkpoint';
import { resolveComponent } from '@imagebind-llm/inference';
import { goldenModelRepository } from '@imagebind-llm/testing';
import { CACHE_COLLECTION, EmbeddedVectorStore, innerProductScore } from '@imagebind-llm/vector-store';
import { afterAll, describe, expect, it } from 'vitest';
import { seedCacheFromRepository } from './cache-seed';

const dir = mkdtempSync(join(tmpdir(), 'cache-seed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('seedCacheFromRepository', () => {
  it('streams a cache of residentBelow rows or more into a disk-resident collection', async () => {
    const repo = goldenModelRepository();
    const npy = readNpy(resolveComponent(repo, 'knn-cache').file('vectors'));
    const [rows = 0, dim = 0] = npy.shape;
    const vectors = new Float32Array(npy.data.buffer, npy.data.byteOffset, rows * dim);
    const options = { dir, residentBelow: 1000, exactBelow: 0 };
    const store = await EmbeddedVectorStore.open(options);
    const progress: [number, number][] = [];
    const seeded = await seedCacheFromRepository(store, repo, {
      batchSize: 1000,
      onProgress: (written, total) => progress.push([written, total]),
    });
    expect(seeded).toBe(rows);
    expect(progress.at(-1)).toEqual([rows, rows]);
    expect(progress).toHaveLength(Math.ceil(rows / 1000));
    // Committed by the import, IVF lists included.
    expect(readdirSync(join(dir, CACHE_COLLECTION))).toContain('index.1.ivf');
    await expect(store.upsert(CACHE_COLLECTION, [{ id: 1, vector: vectors.slice(0, dim) }])).rejects.toThrow(
      /read-only/,
    );
    // Already filled: a second seed writes nothing.
    expect(await seedCacheFromRepository(store, repo)).toBe(0);
    await store.close();

    const reopened = await EmbeddedVectorStore.open(options);
    for (const row of [0, 5, rows - 1]) {
      const q = vectors.slice(row * dim, (row + 1) * dim);
      const [hits] = await reopened.search(CACHE_COLLECTION, q, { k: 3, includeVectors: true });
      expect(hits![0]!.id).toBe(row);
      expect(hits![0]!.vector).toEqual(q);
      for (const hit of hits!) expect(hit.score).toBe(innerProductScore(q, vectors, hit.id));
    }
    await reopened.close();
  }, 120_000);
});
