import { readNpy } from '@imagebind-llm/checkpoint';
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
  const npy = readNpy(resolveComponent(repo, 'knn-cache').file('vectors'));
  const [rows = 0, dim = 0] = npy.shape;
  const vectors = new Float32Array(npy.data.buffer, npy.data.byteOffset, rows * dim);
  await store.ensureCollection(collection, dim);
  const batch = options.batchSize ?? 4096;
  let written = 0;
  for (let start = 0; start < rows; start += batch) {
    const end = Math.min(rows, start + batch);
    const points = [];
    for (let i = start; i < end; i++) points.push({ id: i, vector: vectors.slice(i * dim, (i + 1) * dim) });
    written += await store.upsert(collection, points);
  }
  await store.flush();
  return written;
}
