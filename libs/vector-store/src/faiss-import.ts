import {
  CheckpointFormatError,
  openFaissFlatIndex,
  type ByteSource,
  type FaissFlatIndex,
} from '@imagebind-llm/checkpoint';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { IvfBuildProgress } from './ivf';
import type { VectorPoint, VectorStore } from './vector-store.port';

export interface FaissImportOptions {
  /** Clear the collection first. Without it a non-empty collection is refused (rows would mix). */
  readonly replace?: boolean;
  /** Rows read and upserted at a time, 1..1 000 000. Default 4096 (16 MiB of d=1024 vectors). */
  readonly batchSize?: number;
  /** Called after every batch with the rows imported so far. */
  readonly onProgress?: (imported: number, total: number) => void;
  /** A streamed import building IVF lists reports their training and assignment here (after the rows). */
  readonly onIndexProgress?: (progress: IvfBuildProgress) => void;
  /**
   * Checked before every batch. A streamed import (embedded store with `dir`, ntotal ≥
   * residentBelow) then leaves the collection as it was before; otherwise the rows already
   * imported stay (rerun with `replace: true`).
   */
  readonly signal?: AbortSignal;
}

export interface FaissImportResult {
  readonly imported: number;
  readonly total: number;
  /** faiss class name, e.g. `IndexFlatIP`. */
  readonly indexType: string;
}

export const FAISS_IMPORT_DEFAULT_BATCH = 4096;
const MAX_BATCH = 1_000_000;

/**
 * Copies a faiss flat index (the official `knn.index`, MODEL_SPEC §6.5) into a collection, row i
 * under id i — the ids faiss's search returns, so cache results line up with the official ones.
 * The file is streamed batch by batch: the real CC3M index is 13 GB. Only inner-product indexes
 * are accepted (MODEL_SPEC §1.4).
 */
export async function importFaissIndex(
  store: VectorStore,
  collection: string,
  source: string | ByteSource,
  options: FaissImportOptions = {},
): Promise<FaissImportResult> {
  const batchSize = options.batchSize ?? FAISS_IMPORT_DEFAULT_BATCH;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH) {
    throw DomainError.invalidInput(
      `batchSize must be an integer in 1..${MAX_BATCH}, got ${String(batchSize)}`,
      'batchSize',
    );
  }
  const index = await openIndex(source);
  try {
    if (index.metric !== 'inner_product') {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `${index.file} is an ${index.type} (${index.fourcc}, ${index.metric} metric); the visual cache needs ` +
          'an inner-product index: it ranks by q·p and feeds those scores to softmax(t·s) (MODEL_SPEC §1.4), ' +
          'and L2 distances would pick other neighbours and weigh them wrongly. Rebuild the cache with ' +
          'faiss.IndexFlatIP(d) over the same (normalised) vectors',
        { field: 'source' },
      );
    }
    await store.ensureCollection(collection, index.d);
    const existing = (await store.describe(collection))?.count ?? 0;
    if (existing > 0 && options.replace !== true) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `collection ${JSON.stringify(collection)} already holds ${existing} points; pass replace: true to ` +
          'clear it before importing (faiss rows would otherwise mix with the points already there)',
        { field: 'replace' },
      );
    }
    if (isRowImporter(store) && store.streamsImport(index.ntotal)) {
      // Streamed to disk and committed at the end: the old points stay until then.
      const { imported } = await store.importRows(
        collection,
        index.d,
        index.ntotal,
        mapAsync(index.batches(batchSize), (batch) => batch.vectors),
        {
          ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
          ...(options.onIndexProgress === undefined ? {} : { onIndexProgress: options.onIndexProgress }),
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        },
      );
      return { imported, total: index.ntotal, indexType: index.type };
    }
    if (existing > 0) await store.clear(collection);
    if (isReservable(store)) await store.reserve(collection, index.ntotal);
    let imported = 0;
    for await (const batch of index.batches(batchSize)) {
      if (options.signal?.aborted === true) {
        throw new DomainError(
          ErrorCode.Cancelled,
          `faiss import into ${JSON.stringify(collection)} was cancelled after ${imported} of ${index.ntotal} rows`,
        );
      }
      const rows = batch.vectors.length / index.d;
      const points: VectorPoint[] = Array.from({ length: rows }, (_, i) => ({
        id: batch.first + i,
        vector: batch.vectors.subarray(i * index.d, (i + 1) * index.d),
      }));
      await store.upsert(collection, points);
      imported += rows;
      options.onProgress?.(imported, index.ntotal);
    }
    return { imported, total: index.ntotal, indexType: index.type };
  } finally {
    await index.close();
  }
}

/**
 * Drivers that take a whole collection as a stream of rows (the embedded one with `dir`, for
 * collections of residentBelow rows or more): row i gets id i.
 */
export interface RowImporter {
  streamsImport(total: number): boolean;
  importRows(
    collection: string,
    dimension: number,
    total: number,
    chunks: AsyncIterable<Float32Array>,
    options?: {
      readonly onProgress?: (imported: number, total: number) => void;
      readonly onIndexProgress?: (progress: IvfBuildProgress) => void;
      readonly signal?: AbortSignal;
    },
  ): Promise<{ readonly imported: number }>;
}

export function isRowImporter(store: VectorStore): store is VectorStore & RowImporter {
  const s = store as Partial<RowImporter>;
  return typeof s.streamsImport === 'function' && typeof s.importRows === 'function';
}

export async function* mapAsync<T, U>(source: AsyncIterable<T>, fn: (item: T) => U): AsyncGenerator<U> {
  for await (const item of source) yield fn(item);
}

/** Drivers that can size a collection ahead (the embedded one) get the row count up front. */
interface Reservable {
  reserve(collection: string, rows: number): Promise<void>;
}

function isReservable(store: VectorStore): store is VectorStore & Reservable {
  return typeof (store as Partial<Reservable>).reserve === 'function';
}

async function openIndex(source: string | ByteSource): Promise<FaissFlatIndex> {
  try {
    return await openFaissFlatIndex(source);
  } catch (error) {
    if (error instanceof CheckpointFormatError) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        error.message,
        { field: 'source' },
        { cause: error },
      );
    }
    if ((error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      const name = typeof source === 'string' ? source : source.name;
      throw DomainError.notFound(`faiss index ${name} does not exist; check the path`);
    }
    throw error;
  }
}
