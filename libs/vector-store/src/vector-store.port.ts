/**
 * The retriever's storage port (ARCHITECTURE §3): named collections of float32 vectors with
 * string payloads, searched by inner product. Drivers: the embedded store (default, one machine)
 * and Qdrant (production, distributed). The visual cache (MODEL_SPEC §1.4) needs exact top-k with
 * faiss IndexFlatIP's order — best score first, lower id first on equal scores — so every driver
 * documents whether its search is exact.
 */
export interface VectorPoint {
  /** Unique in its collection; faiss rows keep their row number. Safe integer ≥ 0. */
  readonly id: number;
  /** Length = the collection's dimension. */
  readonly vector: Float32Array;
  readonly payload?: Readonly<Record<string, string>>;
}

export interface ScoredVectorPoint {
  readonly id: number;
  /** Inner product between the query and the stored vector. */
  readonly score: number;
  /** Present when `includeVectors` was asked. */
  readonly vector?: Float32Array;
  /** Present when `includePayloads` was asked (empty object when the point has none). */
  readonly payload?: Readonly<Record<string, string>>;
}

export interface CollectionInfo {
  readonly name: string;
  readonly dimension: number;
  readonly count: number;
  /** `embedded` or `qdrant`. */
  readonly driver: string;
}

export interface SearchOptions {
  /** Hits per query, 1..1000. */
  readonly k: number;
  readonly includeVectors?: boolean;
  readonly includePayloads?: boolean;
  readonly signal?: AbortSignal;
}

export interface VectorStore {
  /** `embedded` or `qdrant`. */
  readonly driver: string;
  /** Creates the collection when missing; a different dimension of an existing one is FAILED_PRECONDITION. */
  ensureCollection(name: string, dimension: number): Promise<void>;
  /** Inserts or replaces points by id; returns how many were written. */
  upsert(collection: string, points: readonly VectorPoint[]): Promise<number>;
  /** Removes points by id (missing ids ignored); returns how many existed. */
  delete(collection: string, ids: readonly number[]): Promise<number>;
  /**
   * Nearest neighbours for each query (`queries` is [n, dim] row-major), best first; `results[i]`
   * belongs to query i. Unknown collection is NOT_FOUND; wrong query width is INVALID_INPUT.
   */
  search(collection: string, queries: Float32Array, options: SearchOptions): Promise<ScoredVectorPoint[][]>;
  /** Undefined when the collection does not exist. */
  describe(collection: string): Promise<CollectionInfo | undefined>;
  /** Drops every point of a collection (it stays, with its dimension). */
  clear(collection: string): Promise<void>;
  /** Flushes to durable storage where the driver has any. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** The collection of the visual cache (MODEL_SPEC §1.4), imported from the official knn.index. */
export const CACHE_COLLECTION = 'visual-cache';
