import { mkdirSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { encodeNpy } from '@imagebind-llm/checkpoint';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { Index, MetricKind, ScalarKind } from 'usearch';
import {
  defaultVectorFileRows,
  generationFiles,
  MANIFEST_FILE,
  MAX_STORED_FLOATS,
  QUANTIZATIONS,
  readCollection,
  removeStrayFiles,
  STORE_FORMAT,
  STORE_FORMAT_VERSION,
  tempPath,
  writeCollection,
  type CollectionSnapshot,
  type IndexKind,
  type Quantization,
} from './collection-files';
import { DiskRows, mergeTopK } from './disk-rows';
import { rescoreRows, type RowHit } from './exact-top-k';
import { ExactScanPool } from './scan-pool';
import { sharedFloat32, sharedFloat64 } from './shared-memory';
import { GenerationWriter } from './generation-writer';
import { IVF_DEFAULTS, IvfBuilder, IvfIndex, type IvfBuildProgress } from './ivf';
import {
  checkCollectionName,
  checkDimension,
  checkId,
  checkIds,
  checkK,
  checkPoints,
  checkQueries,
  COLLECTION_NAME,
} from './validation';
import type {
  CollectionInfo,
  ScoredVectorPoint,
  SearchOptions,
  VectorPoint,
  VectorStore,
} from './vector-store.port';

export type { IndexKind, Quantization } from './collection-files';

/** IVF parameters (ivf.ts): the index of a streamed, disk-resident import by default. */
export interface IvfOptions {
  /** Lists (k-means centroids) built at import. Default √rows. */
  readonly lists?: number;
  /** Lists scanned per query (nprobe). Default 32. */
  readonly probes?: number;
  /** Candidates (best int8 scores over the probed lists) re-scored in exact float32. Default 128. */
  readonly rescoreCandidates?: number;
}

/** HNSW graph parameters of usearch (its defaults are tuned for larger graphs than a cache needs). */
export interface HnswOptions {
  /** Edges per node (usearch "connectivity", HNSW M). Default 16. */
  readonly connectivity?: number;
  /**
   * Candidate list while inserting (efConstruction). Default 64: at d=1024 it built 100k i8 rows
   * 2.75× faster than 128 on 2 cores with the same recall after re-scoring 128 candidates.
   */
  readonly expansionAdd?: number;
  /** Candidate list while searching (ef); raised to the number of candidates asked. Default 128. */
  readonly expansionSearch?: number;
  /**
   * i8 only: the graph is asked for max(2·k, this) candidates, all re-scored in exact float32.
   * At d=1024 the int8 components are coarse (a unit vector's ~0.03 components round to a few
   * levels), so 2·k alone loses true neighbours; 128 gave recall@10 ≈ 0.999 on 100 k clustered
   * rows, 0.988 on 200 k, but 0.64 on 3.25 M over 4,096 clusters, where the graph (not the codes)
   * misses them (docs/operations.md §1.8). Default 128.
   */
  readonly rescoreCandidates?: number;
}

export interface EmbeddedVectorStoreOptions {
  /** Persistence directory, one subfolder per collection; undefined keeps everything in memory. */
  readonly dir?: string;
  /**
   * Scalar type of the HNSW index (approximate path only). `i8` keeps 1 byte per component: usearch
   * scales every vector (stored and query) to unit length and truncates 127·x to an integer, so the
   * graph ranks candidates by cosine — the same order as inner product only when the stored vectors
   * are (near) unit-norm, as the CC3M image features are. Candidates are then re-scored with the
   * exact float32 inner product, and the float32 vectors are kept in full for exact search and
   * `includeVectors`. Default `f32`.
   */
  readonly quantization?: Quantization;
  /**
   * Collections with fewer points than this are searched exactly (brute force, faiss IndexFlatIP
   * order); larger ones through the HNSW index. `Infinity` means always exact. Default 200 000.
   */
  readonly exactBelow?: number;
  readonly hnsw?: HnswOptions;
  /** Rows per vectors `.npy` part on disk. Default: 256 MiB of rows (65 536 at d=1024). */
  readonly vectorFileRows?: number;
  /**
   * With `dir`: a persisted collection of this many points or more is opened disk-resident — its
   * float32 rows stay in the generation's `.npy` parts and are read on demand (re-scoring, exact
   * search, `includeVectors`) — and is read-only until re-imported (see importRows). `Infinity`
   * keeps every collection in memory. Default 1 000 000.
   */
  readonly residentBelow?: number;
  /**
   * Worker threads of an exact search (ExactScanPool): each scans a share of the rows for every
   * query of the request, off the event loop. 0 scans on the calling thread. Default the CPU count
   * (at most 8).
   */
  readonly scanThreads?: number;
  /**
   * The index a streamed import builds for a collection of `exactBelow` rows or more: `ivf`
   * (default; spherical k-means lists of int8 codes, every centroid compared with the query) or
   * `hnsw` (usearch's graph with `quantization`). At 3.25 M rows over thousands of unrelated
   * clusters the graph's greedy routing missed a third of the true neighbours (recall@10 0.64)
   * where the IVF lists find them (docs/operations.md §1.8).
   */
  readonly streamedIndex?: IndexKind;
  readonly ivf?: IvfOptions;
}

/** Progress and cancellation of {@link EmbeddedVectorStore.importRows}. */
export interface ImportRowsOptions {
  /** Called after every chunk with the rows written so far. */
  readonly onProgress?: (imported: number, total: number) => void;
  /** Called while a streamed import builds its IVF lists (after the last row): training, then assignment. */
  readonly onIndexProgress?: (progress: IvfBuildProgress) => void;
  /** Checked between chunks; an aborted streamed import leaves the previous generation in place. */
  readonly signal?: AbortSignal;
}

export interface ImportRowsResult {
  readonly imported: number;
  /** Whether the rows stayed on disk (streamed import) rather than in memory. */
  readonly diskResident: boolean;
}

/** Collections smaller than this build their HNSW graph on one thread (see addToIndex). */
const SINGLE_THREAD_ADD_BELOW = 8192;

export const EMBEDDED_DEFAULTS = {
  quantization: 'f32',
  exactBelow: 200_000,
  connectivity: 16,
  expansionAdd: 64,
  expansionSearch: 128,
  rescoreCandidates: 128,
  residentBelow: 1_000_000,
  streamedIndex: 'ivf',
  ivfProbes: IVF_DEFAULTS.probes,
  ivfRescoreCandidates: IVF_DEFAULTS.rescoreCandidates,
} as const;

/** Rows per read of an exact scan over disk-resident rows (64 MiB at d=1024; two reads in flight). */
const SCAN_CHUNK_ROWS = 16384;

/**
 * An i8 index ranks with rounded components, so the true k-th neighbour can sit a little lower in
 * its list: ask it for this many times k and keep the best k after exact re-scoring.
 */
const I8_OVERSAMPLE = 2;

const EMPTY_PAYLOAD: Readonly<Record<string, string>> = Object.freeze({});

/** The payload a point holds now (empty when it was deleted while a search was answering). */
function payloadOf(c: Collection, id: number): Readonly<Record<string, string>> {
  const row = c.rowById.get(id);
  return (row === undefined ? undefined : c.payloads[row]) ?? EMPTY_PAYLOAD;
}

/** One collection in memory: dense float32 rows plus an id → row map; deletes move the last row. */
class Collection {
  count = 0;
  vectors: Float32Array;
  ids: Float64Array;
  payloads: (Readonly<Record<string, string>> | undefined)[] = [];
  readonly rowById = new Map<number, number>();
  /** Built lazily by the first search that needs it, then kept in step with every mutation. */
  index: Index | undefined;
  /** The IVF lists of a disk-resident collection imported with them (read-only, like its rows). */
  ivf: IvfIndex | undefined;
  /** A flush is still writing `vectors`: copy it before changing a row (copy on write). */
  vectorsShared = false;
  /** Exact scans in flight on worker threads, per rows buffer they read: writers copy first. */
  private readonly scans = new Map<Float32Array, number>();
  /** Bumped by every mutation; flush writes only collections whose version moved. */
  version = 1;
  persistedVersion = 0;
  generation = 0;
  /** Set while the float32 rows live on disk: then `vectors` is empty and the collection is read-only. */
  disk: DiskRows | undefined;
  /** Disk-resident with ids 0..count-1 in row order (imports): `rowById` stays empty. */
  identityIds = false;
  /** An import is replacing the collection: flushes skip it, other writes are refused. */
  importing = false;

  constructor(
    readonly name: string,
    readonly dimension: number,
    capacity = 16,
  ) {
    this.vectors = sharedFloat32(capacity * dimension);
    this.ids = sharedFloat64(capacity);
  }

  reserve(rows: number): void {
    if (rows <= this.ids.length) return;
    const capacity = Math.min(
      Math.max(rows, Math.ceil(this.ids.length * 1.5)),
      Math.floor(MAX_STORED_FLOATS / this.dimension),
    );
    const vectors = sharedFloat32(capacity * this.dimension);
    vectors.set(this.vectors.subarray(0, this.count * this.dimension));
    const ids = sharedFloat64(capacity);
    ids.set(this.ids.subarray(0, this.count));
    this.vectors = vectors;
    this.ids = ids;
    this.vectorsShared = false;
  }

  /**
   * Makes `vectors` and `ids` safe to modify while a flush may still be encoding the old buffer
   * or a scan reading it: such a buffer is copied, never written.
   */
  ownVectors(): void {
    if (!this.vectorsShared && !this.scans.has(this.vectors)) return;
    const vectors = sharedFloat32(this.vectors.length);
    vectors.set(this.vectors);
    const ids = sharedFloat64(this.ids.length);
    ids.set(this.ids);
    this.vectors = vectors;
    this.ids = ids;
    this.vectorsShared = false;
  }

  /** Marks the current rows as read by a scan until the returned function is called. */
  pinForScan(): () => void {
    const vectors = this.vectors;
    this.scans.set(vectors, (this.scans.get(vectors) ?? 0) + 1);
    return () => {
      const left = (this.scans.get(vectors) ?? 1) - 1;
      if (left === 0) this.scans.delete(vectors);
      else this.scans.set(vectors, left);
    };
  }

  row(row: number): Float32Array {
    return this.vectors.subarray(row * this.dimension, (row + 1) * this.dimension);
  }
}

/**
 * The embedded `VectorStore` driver (ARCHITECTURE §3, standalone mode): collections live in this
 * process, optionally persisted to a directory.
 *
 * Exactness: collections below `exactBelow` points are searched by brute force and reproduce faiss
 * IndexFlatIP exactly — same float32 scores as topKInnerProduct (@imagebind-llm/domain), best score
 * first, lower id first on ties — which the visual cache needs (MODEL_SPEC §1.4). Larger ones go
 * through a usearch HNSW index (approximate: a true neighbour can be missed), whose candidates are
 * re-scored with the exact float32 score, so a returned score never depends on the path or the
 * quantization.
 *
 * Every mutation runs in one synchronous section, so concurrent calls in one Node process see each
 * other's writes whole.
 */
export class EmbeddedVectorStore implements VectorStore {
  readonly driver = 'embedded';
  private readonly collections = new Map<string, Collection>();
  private closed = false;
  private flushTail: Promise<void> = Promise.resolve();
  private readonly quantization: Quantization;
  private readonly exactBelow: number;
  private readonly hnsw: Required<HnswOptions>;
  private readonly dir: string | undefined;
  private readonly vectorFileRowsOption: number | undefined;
  private readonly residentBelow: number;
  /** Streamed imports in progress; close() cancels them and waits. */
  private readonly imports = new Set<Promise<unknown>>();
  private closing = false;
  private readonly scanPool: ExactScanPool;
  private readonly streamedIndex: IndexKind;
  private readonly ivf: IvfOptions & { readonly probes: number; readonly rescoreCandidates: number };

  private constructor(options: EmbeddedVectorStoreOptions) {
    this.dir = options.dir;
    this.vectorFileRowsOption = options.vectorFileRows;
    this.quantization = options.quantization ?? EMBEDDED_DEFAULTS.quantization;
    this.exactBelow = options.exactBelow ?? EMBEDDED_DEFAULTS.exactBelow;
    this.residentBelow = options.residentBelow ?? EMBEDDED_DEFAULTS.residentBelow;
    this.scanPool = new ExactScanPool(
      options.scanThreads === undefined ? {} : { threads: options.scanThreads },
    );
    this.hnsw = {
      connectivity: options.hnsw?.connectivity ?? EMBEDDED_DEFAULTS.connectivity,
      expansionAdd: options.hnsw?.expansionAdd ?? EMBEDDED_DEFAULTS.expansionAdd,
      expansionSearch: options.hnsw?.expansionSearch ?? EMBEDDED_DEFAULTS.expansionSearch,
      rescoreCandidates: options.hnsw?.rescoreCandidates ?? EMBEDDED_DEFAULTS.rescoreCandidates,
    };
    this.streamedIndex = options.streamedIndex ?? EMBEDDED_DEFAULTS.streamedIndex;
    this.ivf = {
      ...(options.ivf?.lists === undefined ? {} : { lists: options.ivf.lists }),
      probes: options.ivf?.probes ?? EMBEDDED_DEFAULTS.ivfProbes,
      rescoreCandidates: options.ivf?.rescoreCandidates ?? EMBEDDED_DEFAULTS.ivfRescoreCandidates,
    };
  }

  /** Opens a store; with `dir`, creates the directory when missing and loads every collection in it. */
  static async open(options: EmbeddedVectorStoreOptions = {}): Promise<EmbeddedVectorStore> {
    checkOptions(options);
    const store = new EmbeddedVectorStore(options);
    if (store.dir !== undefined) await store.load(store.dir);
    return store;
  }

  async ensureCollection(name: string, dimension: number): Promise<void> {
    await this.ready();
    checkCollectionName(name);
    checkDimension(dimension);
    const existing = this.collections.get(name);
    if (existing === undefined) {
      this.collections.set(name, new Collection(name, dimension));
      return;
    }
    if (existing.dimension !== dimension) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `collection ${JSON.stringify(name)} exists with dimension ${existing.dimension}, not ${dimension}; ` +
          'use another name or clear and recreate it with the new dimension',
        { field: 'dimension' },
      );
    }
  }

  /** Returns `points.length`: every point is written (a repeated id in one batch: the last wins). */
  async upsert(collection: string, points: readonly VectorPoint[]): Promise<number> {
    await this.ready();
    const c = this.get(collection);
    checkPoints(points, c.dimension);
    if (points.length === 0) return 0;
    this.checkWritable(c, 'upsert into');
    return this.upsertInto(c, points);
  }

  /** The body of upsert, for callers that checked the collection may take it. */
  private upsertInto(c: Collection, points: readonly VectorPoint[]): number {
    const maxRows = Math.floor(MAX_STORED_FLOATS / c.dimension);
    if (c.count + points.length > maxRows) {
      const added = new Set(points.filter((p) => !c.rowById.has(p.id)).map((p) => p.id)).size;
      if (c.count + added > maxRows) {
        throw new DomainError(
          ErrorCode.PayloadTooLarge,
          `collection ${JSON.stringify(c.name)} would hold ${c.count + added} vectors; the embedded store ` +
            `holds at most ${maxRows} of dimension ${c.dimension} per collection (use the qdrant driver)`,
        );
      }
    }
    c.reserve(Math.min(c.count + points.length, maxRows));
    c.ownVectors();
    const replaced: number[] = [];
    const touched = new Set<number>();
    for (const point of points) {
      let row = c.rowById.get(point.id);
      if (row === undefined) {
        row = c.count++;
        c.rowById.set(point.id, row);
        c.ids[row] = point.id;
      } else if (c.index !== undefined && !touched.has(point.id)) {
        replaced.push(point.id);
      }
      touched.add(point.id);
      c.vectors.set(point.vector, row * c.dimension);
      c.payloads[row] =
        point.payload === undefined || Object.keys(point.payload).length === 0
          ? undefined
          : Object.freeze({ ...point.payload });
    }
    if (c.index !== undefined) {
      if (replaced.length > 0) c.index.remove(BigUint64Array.from(replaced, (id) => BigInt(id)));
      this.addToIndex(c, c.index, [...touched]);
    }
    c.version++;
    return points.length;
  }

  async delete(collection: string, ids: readonly number[]): Promise<number> {
    await this.ready();
    const c = this.get(collection);
    checkIds(ids);
    if (ids.length === 0) return 0;
    this.checkWritable(c, 'delete from');
    const removed: number[] = [];
    for (const id of ids) {
      const row = c.rowById.get(id);
      if (row === undefined) continue;
      const last = c.count - 1;
      if (row !== last) {
        c.ownVectors();
        const movedId = c.ids[last]!;
        c.vectors.copyWithin(row * c.dimension, last * c.dimension, (last + 1) * c.dimension);
        c.ids[row] = movedId;
        c.payloads[row] = c.payloads[last];
        c.rowById.set(movedId, row);
      }
      c.payloads[last] = undefined;
      c.rowById.delete(id);
      c.count--;
      removed.push(id);
    }
    if (removed.length === 0) return 0;
    c.payloads.length = c.count;
    if (c.index !== undefined) {
      // Below the threshold searches are exact again: the graph would only cost memory.
      if (c.count < this.exactBelow) c.index = undefined;
      else c.index.remove(BigUint64Array.from(removed, (id) => BigInt(id)));
    }
    c.version++;
    return removed.length;
  }

  async search(
    collection: string,
    queries: Float32Array,
    options: SearchOptions,
  ): Promise<ScoredVectorPoint[][]> {
    await this.ready();
    const c = this.get(collection);
    const n = checkQueries(queries, c.dimension);
    if (typeof options !== 'object' || options === null) {
      throw DomainError.invalidInput('search options with k are required', 'options');
    }
    checkK(options.k);
    const { k, signal } = options;
    // The search itself is one synchronous section (nothing can abort it midway), so the signal
    // is honoured once, before any work.
    throwIfAborted(signal);
    const query = (i: number): Float32Array => queries.subarray(i * c.dimension, (i + 1) * c.dimension);
    if (c.disk !== undefined) return this.searchDisk(c, queries.subarray(0, n * c.dimension), query, options);
    let hits: RowHit[][];
    // The rows this search reads: a write during an exact scan (which awaits its workers) copies
    // them first, so vectors are returned from this snapshot and payloads looked up by id.
    const vectorsRead = c.vectors;
    if (c.count === 0) {
      hits = Array.from({ length: n }, () => []);
    } else if (c.count < this.exactBelow) {
      // One pass over the rows for every query, split across the scan threads. The rows read are
      // pinned: a write meanwhile copies them first, so the scan sees one consistent snapshot.
      const release = c.pinForScan();
      try {
        hits = await this.scanPool.topK({
          vectors: c.vectors,
          ids: c.ids,
          rows: c.count,
          queries: queries.subarray(0, n * c.dimension),
          dimension: c.dimension,
          k,
        });
      } finally {
        release();
      }
    } else {
      const index = this.indexOf(c);
      const candidates = this.candidates(c.count, k);
      hits = [];
      for (let i = 0; i < n; i++) {
        // One query per call on one thread: usearch's thread pool costs more than it saves here.
        const found = index.search(query(i), candidates, 1);
        const rows: number[] = [];
        for (const key of found.keys) {
          const row = c.rowById.get(Number(key));
          if (row !== undefined) rows.push(row);
        }
        hits.push(rescoreRows(c.vectors, c.ids, rows, query(i), k));
      }
    }
    return hits.map((list) =>
      list.map((hit) => ({
        id: hit.id,
        score: hit.score,
        ...(options.includeVectors === true
          ? { vector: vectorsRead.slice(hit.row * c.dimension, (hit.row + 1) * c.dimension) }
          : {}),
        ...(options.includePayloads === true ? { payload: payloadOf(c, hit.id) } : {}),
      })),
    );
  }

  /** Candidates asked of the graph: k for f32, max(2·k, rescoreCandidates) for i8; at most count. */
  private candidates(count: number, k: number): number {
    if (this.quantization !== 'i8') return Math.min(count, k);
    return Math.min(count, Math.max(k * I8_OVERSAMPLE, this.hnsw.rescoreCandidates));
  }

  /**
   * Search of a disk-resident collection: the same hits and bit-identical scores as the resident
   * path over the same rows and graph, with the float32 rows read from the generation's parts —
   * the candidates' rows after a graph search, or every row in chunks for an exact search.
   */
  private async searchDisk(
    c: Collection,
    queries: Float32Array,
    query: (i: number) => Float32Array,
    options: SearchOptions,
  ): Promise<ScoredVectorPoint[][]> {
    const { k, signal } = options;
    // Captured once: an import committing meanwhile swaps these objects, never changes them.
    const disk = c.disk!;
    const { ids, count, index, ivf, payloads } = c;
    const rowOf = c.identityIds
      ? (id: number): number => id
      : (id: number): number | undefined => c.rowById.get(id);
    const n = queries.length / c.dimension;
    let hits: RowHit[][] = Array.from({ length: n }, () => []);
    if (count > 0 && (count < this.exactBelow || (index === undefined && ivf === undefined))) {
      // Exact: one pass over the rows for all queries (each chunk split across the scan threads),
      // merging each chunk's top-k in faiss order.
      for await (const chunk of disk.chunks(SCAN_CHUNK_ROWS)) {
        throwIfAborted(signal);
        const rows = chunk.vectors.length / c.dimension;
        const local = await this.scanPool.topK({
          vectors: chunk.vectors,
          ids: ids.subarray(chunk.first, chunk.first + rows),
          rows,
          queries,
          dimension: c.dimension,
          k,
          rowOffset: chunk.first,
        });
        for (let i = 0; i < n; i++) hits[i] = mergeTopK(hits[i]!, local[i]!, k);
        // Let other requests run between chunks: a full scan of a large collection takes seconds.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } else if (count > 0) {
      const candidates =
        ivf === undefined
          ? this.candidates(count, k)
          : Math.min(count, Math.max(k * I8_OVERSAMPLE, this.ivf.rescoreCandidates));
      hits = [];
      for (let i = 0; i < n; i++) {
        throwIfAborted(signal);
        const rows: number[] = [];
        if (ivf !== undefined) {
          // IVF lists index rows (an import's ids are its rows).
          rows.push(...ivf.search(query(i), this.ivf.probes, candidates));
        } else {
          const found = index!.search(query(i), candidates, 1);
          for (const key of found.keys) {
            const row = rowOf(Number(key));
            if (row !== undefined && row < count) rows.push(row);
          }
        }
        const packed = await disk.readRows(rows);
        const candidateIds = Float64Array.from(rows, (row) => ids[row]!);
        hits.push(
          rescoreRows(packed, candidateIds, Array.from(rows.keys()), query(i), k).map((hit) => ({
            ...hit,
            row: rows[hit.row]!,
          })),
        );
      }
    }
    const vectors =
      options.includeVectors === true
        ? await Promise.all(hits.map((list) => disk.readRows(list.map((hit) => hit.row))))
        : undefined;
    return hits.map((list, i) =>
      list.map((hit, j) => ({
        id: hit.id,
        score: hit.score,
        ...(vectors === undefined
          ? {}
          : { vector: vectors[i]!.slice(j * c.dimension, (j + 1) * c.dimension) }),
        ...(options.includePayloads === true ? { payload: payloads[hit.row] ?? EMPTY_PAYLOAD } : {}),
      })),
    );
  }

  /**
   * Grows a collection's row buffer to hold `rows` points at once, so a big import does not
   * regrow (and briefly double) it batch after batch. A hint: never shrinks, never needed.
   */
  async reserve(collection: string, rows: number): Promise<void> {
    await this.ready();
    const c = this.get(collection);
    checkId(rows, 'rows');
    if (c.disk !== undefined) return;
    c.reserve(Math.min(rows, Math.floor(MAX_STORED_FLOATS / c.dimension)));
  }

  /**
   * Builds the HNSW graph of a collection at or above `exactBelow` now, instead of in its first
   * search (building blocks the event loop: seconds per 10k float32 vectors of d=1024). Call it
   * after a large import, before serving. Returns whether the collection is searched through a graph.
   */
  async buildIndex(collection: string): Promise<boolean> {
    await this.ready();
    const c = this.get(collection);
    if (c.count === 0 || c.count < this.exactBelow) return false;
    if (c.disk !== undefined) {
      if (c.index !== undefined || c.ivf !== undefined) return true;
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `collection ${JSON.stringify(c.name)} is disk-resident and its saved graph is missing or was built ` +
          `for another quantization; re-import it (importFaissIndex with replace: true) to build one ` +
          '(until then it is searched exactly, scanning every row)',
      );
    }
    this.indexOf(c);
    return true;
  }

  /**
   * Whether {@link importRows} of `total` rows streams them to disk (a `dir` is set and `total` ≥
   * `residentBelow`) rather than loading them into memory.
   */
  streamsImport(total: number): boolean {
    return this.dir !== undefined && total >= this.residentBelow;
  }

  /**
   * Replaces a collection's points with `total` rows, row i under id i (faiss order), read from
   * `chunks` ([n, dimension] row-major float32 each, any n).
   *
   * Streamed (see {@link streamsImport}): every chunk is appended to the `.npy` parts of a new
   * generation on disk and added to a fresh HNSW graph with usearch's multi-threaded add (when
   * `total` ≥ exactBelow), so neither the rows nor a second copy of them is ever held; then the
   * graph is saved and the manifest committed. The collection stays readable — with its previous
   * points — until the commit, and is disk-resident and read-only after it. An abort, a failure or
   * a crash leaves the previous generation intact (the next open drops the partial files).
   *
   * Otherwise the rows are upserted into memory chunk by chunk (an abort leaves the rows already
   * imported), the graph is built when the collection reaches exactBelow, and the store flushed.
   */
  async importRows(
    collection: string,
    dimension: number,
    total: number,
    chunks: AsyncIterable<Float32Array> | Iterable<Float32Array>,
    options: ImportRowsOptions = {},
  ): Promise<ImportRowsResult> {
    await this.ready();
    checkDimension(dimension);
    if (!Number.isSafeInteger(total) || total < 0 || total > Math.floor(MAX_STORED_FLOATS / dimension)) {
      throw DomainError.invalidInput(
        `total must be an integer in 0..${Math.floor(MAX_STORED_FLOATS / dimension)} at dimension ${dimension}, got ${String(total)}`,
        'total',
      );
    }
    await this.ensureCollection(collection, dimension);
    const c = this.get(collection);
    if (c.importing) this.checkWritable(c, 'import into');
    c.importing = true;
    const run = (
      this.streamsImport(total)
        ? this.importStreamed(c, total, chunks, options)
        : this.importResident(c, total, chunks, options)
    ).finally(() => {
      c.importing = false;
    });
    this.imports.add(run);
    let result: ImportRowsResult;
    try {
      result = await run;
    } finally {
      this.imports.delete(run);
    }
    // The streamed path committed its own generation; the resident one is written like any change.
    if (!result.diskResident) await this.enqueueFlushOf(c);
    return result;
  }

  private async importResident(
    c: Collection,
    total: number,
    chunks: AsyncIterable<Float32Array> | Iterable<Float32Array>,
    options: ImportRowsOptions,
  ): Promise<ImportRowsResult> {
    this.clearCollection(c);
    c.reserve(Math.min(total, Math.floor(MAX_STORED_FLOATS / c.dimension)));
    let imported = 0;
    for await (const vectors of chunks) {
      this.checkImportGoing(c, imported, total, options.signal);
      const rows = checkChunk(vectors, c.dimension, imported, total);
      const points: VectorPoint[] = Array.from({ length: rows }, (_, i) => ({
        id: imported + i,
        vector: vectors.subarray(i * c.dimension, (i + 1) * c.dimension),
      }));
      this.upsertInto(c, points);
      imported += rows;
      options.onProgress?.(imported, total);
    }
    if (imported !== total) throw shortImport(c.name, imported, total);
    if (c.count >= this.exactBelow && c.count > 0) this.indexOf(c);
    return { imported, diskResident: false };
  }

  private async importStreamed(
    c: Collection,
    total: number,
    chunks: AsyncIterable<Float32Array> | Iterable<Float32Array>,
    options: ImportRowsOptions,
  ): Promise<ImportRowsResult> {
    const folder = join(this.dir!, c.name);
    await mkdir(folder, { recursive: true });
    // A flush that captured this collection before the import began finishes first, so the
    // generation number below is free; later flushes skip the collection while it imports.
    await this.flushTail;
    const indexKind = total > 0 && total >= this.exactBelow ? this.streamedIndex : null;
    const writer = new GenerationWriter({
      folder,
      name: c.name,
      dimension: c.dimension,
      total,
      generation: c.generation + 1,
      vectorFileRows: this.vectorFileRows(c),
      quantization: this.quantization,
      index: indexKind,
    });
    const threads = availableParallelism();
    const index = indexKind === 'hnsw' ? this.newIndex(c.dimension) : undefined;
    const ivfBuilder =
      indexKind === 'ivf'
        ? new IvfBuilder(c.dimension, total, {
            threads,
            ...(this.ivf.lists === undefined ? {} : { lists: this.ivf.lists }),
          })
        : undefined;
    let ivf: IvfIndex | undefined;
    let imported = 0;
    let manifest;
    try {
      for await (const vectors of chunks) {
        this.checkImportGoing(c, imported, total, options.signal);
        const rows = checkChunk(vectors, c.dimension, imported, total);
        const written = writer.append(vectors);
        try {
          // The graph grows on usearch's threads while libuv writes the same rows to disk.
          index?.add(
            BigUint64Array.from({ length: rows }, (_, i) => BigInt(imported + i)),
            vectors,
            threads,
          );
          ivfBuilder?.add(vectors);
        } finally {
          await written;
        }
        imported += rows;
        options.onProgress?.(imported, total);
      }
      this.checkImportGoing(c, imported, total, options.signal);
      if (imported !== total) throw shortImport(c.name, imported, total);
      if (index !== undefined) index.save(writer.indexTempPath());
      if (ivfBuilder !== undefined) {
        await ivfBuilder.writeIndex(
          writer.indexTempPath(),
          (progress) => {
            this.checkImportGoing(c, imported, total, options.signal);
            options.onIndexProgress?.(progress);
          },
          options.signal,
        );
        // Read back from the file just written: the builder's codes are released by then.
        ivf = await IvfIndex.load(writer.indexTempPath(), { dimension: c.dimension, size: total });
      }
      manifest = await writer.commit();
    } catch (error) {
      await writer.abort();
      throw error;
    }
    const stored = await readCollection(folder, { loadVectors: false });
    const disk = await DiskRows.open(stored.vectorParts, c.dimension, total);
    // One synchronous swap: a search sees either the old rows or the new ones, never a mix.
    void c.disk?.retire();
    c.disk = disk;
    c.identityIds = true;
    c.vectors = new Float32Array(0);
    c.vectorsShared = false;
    c.ids = sharedFloat64(total);
    for (let i = 0; i < total; i++) c.ids[i] = i;
    c.count = total;
    c.payloads = [];
    c.rowById.clear();
    c.index = index;
    c.ivf = ivf;
    c.generation = manifest.generation;
    c.version++;
    c.persistedVersion = c.version;
    return { imported, diskResident: true };
  }

  private checkImportGoing(c: Collection, imported: number, total: number, signal?: AbortSignal): void {
    if (signal?.aborted === true || this.closing) {
      throw new DomainError(
        ErrorCode.Cancelled,
        `import into ${JSON.stringify(c.name)} was cancelled after ${imported} of ${total} rows` +
          (this.closing ? ' (the store is closing)' : ''),
      );
    }
  }

  /** Disk-resident collections and collections being imported take no point-wise writes. */
  private checkWritable(c: Collection, what: string): void {
    if (c.importing) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `cannot ${what} collection ${JSON.stringify(c.name)} while an import is replacing it; wait for the import to finish`,
      );
    }
    if (c.disk !== undefined) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `collection ${JSON.stringify(c.name)} holds ${c.count} points on disk (residentBelow ${this.residentBelow}) and is ` +
          `read-only: cannot ${what} it. Re-import it with replace: true, or reopen the store with a residentBelow ` +
          'above its size to load it into memory',
      );
    }
  }

  private async enqueueFlushOf(c: Collection): Promise<void> {
    if (this.dir === undefined || c.version === c.persistedVersion) return;
    await this.enqueueFlush();
  }

  async describe(collection: string): Promise<CollectionInfo | undefined> {
    await this.ready();
    checkCollectionName(collection);
    const c = this.collections.get(collection);
    return c === undefined
      ? undefined
      : { name: c.name, dimension: c.dimension, count: c.count, driver: this.driver };
  }

  async clear(collection: string): Promise<void> {
    await this.ready();
    const c = this.get(collection);
    if (c.importing) this.checkWritable(c, 'clear');
    this.clearCollection(c);
  }

  private clearCollection(c: Collection): void {
    if (c.disk !== undefined) {
      // The rows on disk stay the committed generation until the next flush commits the empty one.
      void c.disk.retire();
      c.disk = undefined;
      c.identityIds = false;
    }
    const empty = new Collection(c.name, c.dimension);
    c.count = 0;
    c.vectors = empty.vectors;
    c.ids = empty.ids;
    c.vectorsShared = false;
    c.payloads = [];
    c.rowById.clear();
    c.index = undefined;
    c.ivf = undefined;
    c.version++;
  }

  /**
   * Writes every changed collection to `dir` (no-op in memory). Flushes are serialised; each
   * collection is captured in one synchronous step, so writes racing a flush land whole in this
   * flush or the next.
   */
  async flush(): Promise<void> {
    await this.ready();
    await this.enqueueFlush();
  }

  /** Flushes, then refuses further calls. Calling it twice is harmless. */
  async close(): Promise<void> {
    if (this.closed) return;
    // Running imports stop at their next chunk and remove what they wrote.
    this.closing = true;
    await Promise.allSettled([...this.imports]);
    await this.enqueueFlush();
    this.closed = true;
    await Promise.all([...this.collections.values()].map(async (c) => c.disk?.retire()));
    this.collections.clear();
    await this.scanPool.close();
  }

  private async enqueueFlush(): Promise<void> {
    const run = this.flushTail.then(() => this.flushChanged());
    // A failed flush must not block the next one; its caller gets the error.
    this.flushTail = run.catch(() => undefined);
    await run;
  }

  private async flushChanged(): Promise<void> {
    const dir = this.dir;
    if (dir === undefined) return;
    for (const c of [...this.collections.values()]) {
      // A disk-resident collection is its committed generation; an import commits its own.
      if (c.version === c.persistedVersion || c.disk !== undefined || c.importing) continue;
      const folder = join(dir, c.name);
      await mkdir(folder, { recursive: true });
      const snapshot = this.snapshot(c, folder);
      try {
        await writeCollection(folder, snapshot);
      } finally {
        if (c.vectors === snapshot.vectors) c.vectorsShared = false;
      }
      c.generation = snapshot.manifest.generation;
      c.persistedVersion = snapshot.version;
    }
  }

  /** Synchronous on purpose: no mutation can interleave while the collection is captured. */
  private snapshot(c: Collection, folder: string): CollectionSnapshot & { version: number } {
    const generation = c.generation + 1;
    const files = generationFiles(
      generation,
      c.count,
      this.vectorFileRows(c),
      c.index !== undefined ? 'hnsw' : null,
    );
    let indexTempFile: string | undefined;
    if (c.index !== undefined && files.index !== null) {
      mkdirSync(folder, { recursive: true });
      indexTempFile = tempPath(join(folder, files.index));
      c.index.save(indexTempFile);
    }
    const ids = BigInt64Array.from(c.ids.subarray(0, c.count), (id) => BigInt(id));
    const payloads: Record<string, Readonly<Record<string, string>>> = {};
    for (let row = 0; row < c.count; row++) {
      const payload = c.payloads[row];
      if (payload !== undefined) payloads[String(c.ids[row])] = payload;
    }
    c.vectorsShared = true;
    return {
      version: c.version,
      manifest: {
        format: STORE_FORMAT,
        formatVersion: STORE_FORMAT_VERSION,
        name: c.name,
        dimension: c.dimension,
        count: c.count,
        quantization: this.quantization,
        generation,
        vectorFileRows: this.vectorFileRows(c),
        files,
      },
      // Shared, not copied: the rows are encoded part by part during the write, and mutations
      // meanwhile copy the buffer first (Collection.ownVectors).
      vectors: c.vectors,
      ids: encodeNpy({ dtype: 'int64', shape: [c.count], data: new Uint8Array(ids.buffer) }),
      payloads: JSON.stringify(payloads),
      ...(indexTempFile === undefined ? {} : { indexTempFile }),
    };
  }

  private async load(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const entries = await readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      if (!entry.isDirectory() || !COLLECTION_NAME.test(entry.name)) continue;
      const folder = join(dir, entry.name);
      // A folder without a manifest never finished its first flush: there is nothing to load.
      if (!(await readdir(folder)).includes(MANIFEST_FILE)) continue;
      const stored = await readCollection(folder, {
        loadVectors: (m) => m.count < this.residentBelow,
      });
      const { manifest } = stored;
      const c = new Collection(manifest.name, manifest.dimension, 0);
      c.ids = stored.ids;
      c.count = manifest.count;
      c.generation = manifest.generation;
      c.version = 1;
      c.persistedVersion = 1;
      if (manifest.count >= this.residentBelow) {
        c.identityIds = c.ids.every((id, row) => id === row);
        for (let row = 0; row < c.count; row++) {
          const id = c.ids[row]!;
          if (!c.identityIds) c.rowById.set(id, row);
          const payload = stored.payloads.get(id);
          if (payload !== undefined) c.payloads[row] = payload;
        }
        c.disk = await DiskRows.open(stored.vectorParts, c.dimension, c.count);
        if (stored.indexFile !== undefined && c.count >= this.exactBelow) {
          if (stored.indexKind === 'ivf') {
            // Read whole (about one byte per component): a bad file leaves the exact scan.
            c.ivf = await IvfIndex.load(stored.indexFile, { dimension: c.dimension, size: c.count }).catch(
              () => undefined,
            );
          } else {
            // Memory-mapped: the graph's pages are shared with the page cache, not copied in.
            c.index = this.loadIndex(c, stored.indexFile, manifest.quantization, true);
          }
        }
      } else {
        c.vectors = stored.vectors;
        for (let row = 0; row < c.count; row++) {
          const id = c.ids[row]!;
          c.rowById.set(id, row);
          c.payloads[row] = stored.payloads.get(id);
        }
        if (stored.indexFile !== undefined && stored.indexKind === 'hnsw' && c.count >= this.exactBelow) {
          c.index = this.loadIndex(c, stored.indexFile, manifest.quantization, false);
          // An index built with another quantization is rebuilt on first search; the next flush
          // must then write it.
          if (c.index === undefined) c.persistedVersion = 0;
        }
      }
      await removeStrayFiles(folder, manifest);
      this.collections.set(c.name, c);
    }
  }

  /** The saved graph when it matches the stored rows exactly; otherwise undefined (rebuilt lazily). */
  private loadIndex(
    c: Collection,
    file: string,
    quantization: Quantization,
    view: boolean,
  ): Index | undefined {
    if (quantization !== this.quantization) return undefined;
    const index = this.newIndex(c.dimension);
    try {
      // A viewed index is immutable, which a disk-resident collection is anyway.
      if (view) index.view(file);
      else index.load(file);
    } catch {
      return undefined;
    }
    if (index.dimensions() !== c.dimension || index.size() !== c.count) return undefined;
    const present = index.contains(BigUint64Array.from(c.ids.subarray(0, c.count), (id) => BigInt(id)));
    if (Array.isArray(present) ? !present.every(Boolean) : !present) return undefined;
    return index;
  }

  private vectorFileRows(c: Collection): number {
    return this.vectorFileRowsOption ?? defaultVectorFileRows(c.dimension);
  }

  private newIndex(dimension: number): Index {
    return new Index({
      dimensions: dimension,
      metric: MetricKind.IP,
      quantization: this.quantization === 'i8' ? ScalarKind.I8 : ScalarKind.F32,
      connectivity: this.hnsw.connectivity,
      expansion_add: this.hnsw.expansionAdd,
      // usearch searches with max(expansion_search, wanted); set at construction, it survives load/view.
      expansion_search:
        this.quantization === 'i8'
          ? Math.max(this.hnsw.expansionSearch, this.hnsw.rescoreCandidates)
          : this.hnsw.expansionSearch,
      multi: false,
    });
  }

  private indexOf(c: Collection): Index {
    if (c.index !== undefined) return c.index;
    const index = this.newIndex(c.dimension);
    this.addToIndex(c, index, Array.from(c.ids.subarray(0, c.count)));
    c.index = index;
    // The graph is worth persisting: rebuilding a large one is the slow part of a restart.
    c.version++;
    return index;
  }

  private addToIndex(c: Collection, index: Index, ids: readonly number[]): void {
    const vectors = new Float32Array(ids.length * c.dimension);
    ids.forEach((id, i) => vectors.set(c.row(c.rowById.get(id)!), i * c.dimension));
    // An explicit count: usearch's automatic choice (0) was slower than this on small containers.
    // Below SINGLE_THREAD_ADD_BELOW rows one thread: a graph grown by several threads at once
    // leaves some rows unreachable from the entry point (usearch 2.x, 397 random 32-d rows, 2
    // threads: a search for all of them with expansion 800 found 395–397 in 12 builds; one thread
    // found 397 every time), and a small collection's search must not lose its best hit that way.
    index.add(
      BigUint64Array.from(ids, (id) => BigInt(id)),
      vectors,
      ids.length < SINGLE_THREAD_ADD_BELOW ? 1 : availableParallelism(),
    );
  }

  private get(name: string): Collection {
    checkCollectionName(name);
    const c = this.collections.get(name);
    if (c === undefined) {
      throw DomainError.notFound(
        `collection ${JSON.stringify(name)} does not exist; create it with ensureCollection(name, dimension) first`,
      );
    }
    return c;
  }

  /**
   * Every port method is async by contract; awaiting this keeps the synchronous body after it in
   * one turn of the event loop, which is what makes mutations atomic for concurrent callers.
   */
  private readonly ready = (): Promise<void> =>
    this.closed
      ? Promise.reject(
          new DomainError(
            ErrorCode.FailedPrecondition,
            'the embedded vector store is closed; open a new one',
          ),
        )
      : Promise.resolve();
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true)
    throw new DomainError(ErrorCode.Cancelled, 'search was cancelled by the caller');
}

function checkOptions(options: EmbeddedVectorStoreOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw DomainError.invalidInput('embedded vector store options must be an object', 'options');
  }
  const { dir, quantization, exactBelow, hnsw, vectorFileRows, residentBelow, scanThreads } = options;
  if (
    scanThreads !== undefined &&
    !(Number.isSafeInteger(scanThreads) && scanThreads >= 0 && scanThreads <= 64)
  ) {
    throw DomainError.invalidInput(
      `scanThreads must be an integer from 0 (scan on the caller) to 64, got ${String(scanThreads)}`,
      'scanThreads',
    );
  }
  if (
    residentBelow !== undefined &&
    !(
      residentBelow === Number.POSITIVE_INFINITY ||
      (Number.isSafeInteger(residentBelow) && residentBelow >= 0)
    )
  ) {
    throw DomainError.invalidInput(
      `residentBelow must be a non-negative integer or Infinity, got ${String(residentBelow)}`,
      'residentBelow',
    );
  }
  if (vectorFileRows !== undefined && !(Number.isSafeInteger(vectorFileRows) && vectorFileRows >= 1)) {
    throw DomainError.invalidInput(
      `vectorFileRows must be a positive integer, got ${String(vectorFileRows)}`,
      'vectorFileRows',
    );
  }
  if (dir !== undefined && (typeof dir !== 'string' || dir === '')) {
    throw DomainError.invalidInput(
      'dir must be a non-empty path, or left out for a memory-only store',
      'dir',
    );
  }
  if (quantization !== undefined && !QUANTIZATIONS.includes(quantization)) {
    throw DomainError.invalidInput(
      `quantization must be one of ${QUANTIZATIONS.join(', ')}, got ${JSON.stringify(quantization)}`,
      'quantization',
    );
  }
  if (
    exactBelow !== undefined &&
    !(exactBelow === Number.POSITIVE_INFINITY || (Number.isSafeInteger(exactBelow) && exactBelow >= 0))
  ) {
    throw DomainError.invalidInput(
      `exactBelow must be a non-negative integer or Infinity, got ${String(exactBelow)}`,
      'exactBelow',
    );
  }
  if (options.streamedIndex !== undefined && !['ivf', 'hnsw'].includes(options.streamedIndex)) {
    throw DomainError.invalidInput(
      `streamedIndex must be ivf or hnsw, got ${JSON.stringify(options.streamedIndex)}`,
      'streamedIndex',
    );
  }
  const ivfLimits: [keyof IvfOptions, number, number][] = [
    ['lists', 1, 65_536],
    ['probes', 1, 65_536],
    ['rescoreCandidates', 1, 4096],
  ];
  for (const [key, min, max] of ivfLimits) {
    const value = options.ivf?.[key];
    if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= max)) {
      throw DomainError.invalidInput(
        `ivf.${key} must be an integer in ${min}..${max}, got ${String(value)}`,
        `ivf.${key}`,
      );
    }
  }
  const limits: [keyof HnswOptions, number, number][] = [
    ['connectivity', 2, 256],
    ['expansionAdd', 1, 4096],
    ['expansionSearch', 1, 4096],
    ['rescoreCandidates', 1, 4096],
  ];
  for (const [key, min, max] of limits) {
    const value = hnsw?.[key];
    if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= max)) {
      throw DomainError.invalidInput(
        `hnsw.${key} must be an integer in ${min}..${max}, got ${String(value)}`,
        `hnsw.${key}`,
      );
    }
  }
}

/** Checks one import chunk; returns its row count. */
function checkChunk(vectors: Float32Array, dimension: number, imported: number, total: number): number {
  if (!(vectors instanceof Float32Array) || vectors.length % dimension !== 0) {
    throw DomainError.invalidInput(
      `import chunks must be Float32Arrays of whole rows of ${dimension} values`,
      'chunks',
    );
  }
  const rows = vectors.length / dimension;
  if (imported + rows > total) {
    throw DomainError.invalidInput(`the import yields more than the announced ${total} rows`, 'total');
  }
  for (let i = 0; i < vectors.length; i++) {
    const x = vectors[i]!;
    if (x - x !== 0) {
      throw DomainError.invalidInput(
        `row ${imported + Math.floor(i / dimension)} holds ${x}; vectors must be finite`,
        'chunks',
      );
    }
  }
  return rows;
}

function shortImport(name: string, imported: number, total: number): DomainError {
  return DomainError.invalidInput(
    `the import into ${JSON.stringify(name)} ended after ${imported} of the announced ${total} rows`,
    'total',
  );
}
