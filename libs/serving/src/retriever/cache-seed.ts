import { readNpyRows } from '@imagebind-llm/checkpoint';
import { listComponents, resolveComponent } from '@imagebind-llm/inference';
import { CACHE_COLLECTION, type VectorStore } from '@imagebind-llm/vector-store';

/**
 * Loads the model repository's `knn-cache` component (the official knn.index rows, ARCHITECTURE §4)
 * into the cache collection when that collection is missing or empty, so a fresh retriever serves
 * the visual cache without a separate import. Rows keep their row number as id (faiss order).
 * Returns how many points were written (0 when the collection was already filled or the
 * repository has no cache).
 */
export async function seedCacheFromRepository(
  store: VectorStore,
  repo: string,
  options: { collection?: string; batchSize?: number } = {},
): Promise<number> {
  const collection = options.collection ?? CACHE_COLLECTION;
  if (!listComponents(repo).some((c) => c.component === 'knn-cache')) return 0;
  const existing = await store.describe(collection);
  if (existing !== undefined && existing.count > 0) return 0;
  // Streamed: the real cache (~3M × 1024 float32, 12.3 GB) is far past what one read can return.
  const path = resolveComponent(repo, 'knn-cache').file('vectors');
  const batch = options.batchSize ?? 4096;
  let written = 0;
  let ensured = false;
  for await (const chunk of readNpyRows(path, batch)) {
    const [, dim = 0] = chunk.shape;
    if (!ensured) {
      // Same dtype and shape in every chunk: checked once, on the first.
      if (chunk.dtype !== 'float32' || chunk.shape.length !== 2) {
        throw new Error(`${path}: the cache vectors must be a float32 [rows, dim] array, got ${chunk.dtype}`);
      }
      await store.ensureCollection(collection, dim);
      ensured = true;
    }
    const vectors = new Float32Array(chunk.data.buffer, chunk.data.byteOffset, chunk.rows * dim);
    const points = [];
    for (let i = 0; i < chunk.rows; i++) {
      points.push({ id: chunk.start + i, vector: vectors.subarray(i * dim, (i + 1) * dim) });
    }
    written += await store.upsert(collection, points);
  }
  await store.flush();
  return written;
}
