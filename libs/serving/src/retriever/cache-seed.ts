import { readNpyRows, type NpyRowChunk } from '@imagebind-llm/checkpoint';
import { listComponents, resolveComponent } from '@imagebind-llm/inference';
import {
  CACHE_COLLECTION,
  isRowImporter,
  type IvfBuildProgress,
  type VectorStore,
} from '@imagebind-llm/vector-store';

export interface SeedCacheOptions {
  readonly collection?: string;
  /** Rows read (and written) at a time. Default 4096 (16 MiB at d=1024). */
  readonly batchSize?: number;
  /** Called after every batch with the rows written so far and the cache's row count. */
  readonly onProgress?: (written: number, total: number) => void;
  /** Streamed import only: the IVF lists' training and assignment, after the last row. */
  readonly onIndexProgress?: (progress: IvfBuildProgress) => void;
  /** Checked between batches (streamed import only: an aborted one leaves the collection as it was). */
  readonly signal?: AbortSignal;
}

/**
 * Loads the model repository's `knn-cache` component (the official knn.index rows, ARCHITECTURE §4)
 * into the cache collection when that collection is missing or empty, so a fresh retriever serves
 * the visual cache without a separate import. Rows keep their row number as id (faiss order).
 * Returns how many points were written (0 when the collection was already filled or the
 * repository has no cache).
 *
 * On an embedded store with `dir`, a cache of residentBelow rows or more (the real 3.25 M) is
 * streamed straight into a disk-resident generation, its index (IVF lists by default) built from
 * the same rows (EmbeddedVectorStore.importRows): the float32 rows are never all in memory.
 */
export async function seedCacheFromRepository(
  store: VectorStore,
  repo: string,
  options: SeedCacheOptions = {},
): Promise<number> {
  const collection = options.collection ?? CACHE_COLLECTION;
  if (!listComponents(repo).some((c) => c.component === 'knn-cache')) return 0;
  const existing = await store.describe(collection);
  if (existing !== undefined && existing.count > 0) return 0;
  // Streamed: the real cache (~3M × 1024 float32, 12.3 GB) is far past what one read can return.
  const path = resolveComponent(repo, 'knn-cache').file('vectors');
  const batch = options.batchSize ?? 4096;
  const rows = readNpyRows(path, batch)[Symbol.asyncIterator]();
  try {
    const first = await rows.next();
    if (first.done === true) return 0;
    const head = first.value;
    // Same dtype and shape in every chunk: checked once, on the first.
    if (head.dtype !== 'float32' || head.shape.length !== 2) {
      throw new Error(`${path}: the cache vectors must be a float32 [rows, dim] array, got ${head.dtype}`);
    }
    const [total = 0, dim = 0] = head.shape;
    await store.ensureCollection(collection, dim);
    const asFloats = (chunk: NpyRowChunk): Float32Array =>
      new Float32Array(chunk.data.buffer, chunk.data.byteOffset, chunk.rows * dim);

    if (isRowImporter(store) && store.streamsImport(total)) {
      const chunks = async function* (): AsyncGenerator<Float32Array> {
        yield asFloats(head);
        for (let next = await rows.next(); next.done !== true; next = await rows.next()) {
          yield asFloats(next.value);
        }
      };
      const { imported } = await store.importRows(collection, dim, total, chunks(), {
        ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
        ...(options.onIndexProgress === undefined ? {} : { onIndexProgress: options.onIndexProgress }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      return imported;
    }

    let written = 0;
    for (let next: IteratorResult<NpyRowChunk> = first; next.done !== true; next = await rows.next()) {
      const chunk = next.value;
      const vectors = asFloats(chunk);
      const points = [];
      for (let i = 0; i < chunk.rows; i++) {
        points.push({ id: chunk.start + i, vector: vectors.subarray(i * dim, (i + 1) * dim) });
      }
      written += await store.upsert(collection, points);
      options.onProgress?.(written, total);
    }
    await store.flush();
    return written;
  } finally {
    await rows.return?.(undefined);
  }
}
