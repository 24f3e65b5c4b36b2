import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  checkCollectionName as checkName,
  checkIds,
  checkK,
  checkPoints,
  type CollectionInfo,
  type ScoredVectorPoint,
  type SearchOptions,
  type VectorPoint,
  type VectorStore,
} from '@imagebind-llm/vector-store';
// The client package is `"type": "module"` with a CommonJS build behind its `require` condition, but
// its only typings are ESM, so a CommonJS file must ask for them in import mode and load the value
// with import() (see `loadClient`).
import type { QdrantClient, Schemas } from '@qdrant/js-client-rest' with { 'resolution-mode': 'import' };
import {
  checkCompatible,
  checkDimension,
  createCollectionRequest,
  singleVectorSize,
} from './qdrant.collections';
import { missingCollection, namedVectorsError, toDomainError } from './qdrant.errors';
import {
  resolveQdrantOptions,
  type QdrantVectorStoreOptions,
  type ResolvedQdrantOptions,
} from './qdrant.options';
import {
  checkNotAborted,
  queryRequest,
  queryRows,
  searchSettlingTies,
  toScoredPoint,
  withSignal,
  type QuerySettings,
} from './qdrant.search';
import { isArray, pointId, toPointStruct } from './qdrant.wire';

export { toDomainError } from './qdrant.errors';
export type { QdrantVectorStoreOptions } from './qdrant.options';

/*
 * The driver's parts: qdrant.options.ts (checked settings), qdrant.errors.ts (client failures →
 * DomainError), qdrant.collections.ts (creating and checking collections), qdrant.search.ts (query
 * rows, tie settling, hits), qdrant.wire.ts (points and payloads on the wire). This file holds the
 * client, the dimension cache and the VectorStore methods that tie them together.
 */

interface QdrantModule {
  readonly QdrantClient: typeof QdrantClient;
}

/**
 * The production `VectorStore` driver (ARCHITECTURE §3) on Qdrant's REST API through the official
 * client. One unnamed vector per point with `Dot` distance (inner product, like faiss IndexFlatIP),
 * integer ids, string payloads.
 *
 * Exactness: with `exactSearch` the scores and the top-k set are exact; equal scores are re-ordered
 * lower id first here because Qdrant does not promise faiss's order (see `search`). Without it,
 * HNSW is approximate.
 */
export class QdrantVectorStore implements VectorStore {
  readonly driver = 'qdrant';

  private readonly options: ResolvedQdrantOptions;
  /** Dimension per collection seen so far: saves a round trip per search and per upsert. */
  private readonly dimensions = new Map<string, number>();
  private clientPromise: Promise<QdrantClient> | undefined;
  private closed = false;

  constructor(options: QdrantVectorStoreOptions) {
    this.options = resolveQdrantOptions(options);
  }

  async ensureCollection(name: string, dimension: number): Promise<void> {
    checkName(name);
    checkDimension(dimension);
    const existing = await this.collectionInfo(name);
    if (existing !== undefined) {
      this.dimensions.set(name, checkCompatible(name, existing, dimension));
      return;
    }
    const client = await this.client();
    try {
      await client.createCollection(name, createCollectionRequest(this.options.createParams, dimension));
    } catch (error) {
      // Another replica of the retriever may have created it between our read and our create:
      // accept its collection when it is the one we wanted.
      const raced = await this.collectionInfo(name).catch(() => undefined);
      if (raced === undefined) throw this.toDomainError(error, `create collection '${name}'`);
      this.dimensions.set(name, checkCompatible(name, raced, dimension));
      return;
    }
    this.dimensions.set(name, dimension);
  }

  /** Writes in batches of `upsertBatchSize`, each acknowledged once applied (`wait=true`). A failure
   * part-way leaves earlier batches written; upsert is idempotent by id, so retry the whole call. */
  async upsert(collection: string, points: readonly VectorPoint[]): Promise<number> {
    checkName(collection);
    if (!isArray(points)) throw DomainError.invalidInput('points must be an array', 'points');
    const dimension = await this.dimensionOf(collection);
    // The embedded store's rules, so a batch is refused alike whichever driver is configured.
    checkPoints(points, dimension);
    const structs = points.map(toPointStruct);
    const client = await this.client();
    const { batchSize } = this.options;
    for (let start = 0; start < structs.length; start += batchSize) {
      const batch = structs.slice(start, start + batchSize);
      await this.call(collection, `upsert points into '${collection}'`, async () =>
        client.upsert(collection, { wait: true, points: batch }),
      );
    }
    return structs.length;
  }

  /**
   * Qdrant's delete does not say how many points it removed, so each batch first retrieves which of
   * the ids exist (no vectors, no payloads) and then deletes exactly those. The count is exact unless
   * another writer touches the same ids between the two calls.
   */
  async delete(collection: string, ids: readonly number[]): Promise<number> {
    checkName(collection);
    checkIds(ids);
    await this.dimensionOf(collection);
    const unique = [...new Set(ids)];
    const client = await this.client();
    const { batchSize } = this.options;
    let removed = 0;
    for (let start = 0; start < unique.length; start += batchSize) {
      const batch = unique.slice(start, start + batchSize);
      const found = await this.call(collection, `look up points in '${collection}'`, async () =>
        client.retrieve(collection, { ids: batch, with_payload: false, with_vector: false }),
      );
      const existing = found.map((record) => pointId(record.id));
      if (existing.length === 0) continue;
      await this.call(collection, `delete points from '${collection}'`, async () =>
        client.delete(collection, { wait: true, points: existing }),
      );
      removed += existing.length;
    }
    return removed;
  }

  /**
   * One `query/batch` request for all queries (more only to settle ties at the k-th place, see
   * `searchSettlingTies`), results ordered by score and then lower id first, as faiss orders them.
   */
  async search(
    collection: string,
    queries: Float32Array,
    options: SearchOptions,
  ): Promise<ScoredVectorPoint[][]> {
    checkName(collection);
    const k = options.k;
    checkK(k);
    if (!(queries instanceof Float32Array)) {
      throw DomainError.invalidInput('queries must be a Float32Array of [n, dimension] floats', 'queries');
    }
    checkNotAborted(options.signal);
    const dimension = await this.dimensionOf(collection);
    const rows = queryRows(queries, dimension);
    if (rows.length === 0) return [];
    const client = await this.client();
    const settings: QuerySettings = {
      withPayload: options.includePayloads === true,
      withVector: options.includeVectors === true,
      exact: this.options.exactSearch,
      ignoreQuantization: this.options.createParams.quantization_config != null,
    };
    const hits = await searchSettlingTies(rows, k, async (asked) =>
      withSignal(
        options.signal,
        this.call(collection, `search '${collection}'`, async () =>
          client.queryBatch(collection, { searches: asked.map((query) => queryRequest(query, settings)) }),
        ),
      ),
    );
    return hits.map((points) =>
      points.map((point) => toScoredPoint(point, settings.withVector, settings.withPayload, dimension)),
    );
  }

  /** `count` is Qdrant's `points_count`, which it documents as approximate while it optimizes segments. */
  async describe(collection: string): Promise<CollectionInfo | undefined> {
    checkName(collection);
    const info = await this.collectionInfo(collection);
    if (info === undefined) return undefined;
    const dimension = singleVectorSize(info);
    if (dimension === undefined) throw namedVectorsError(collection);
    this.dimensions.set(collection, dimension);
    return { name: collection, dimension, count: info.points_count ?? 0, driver: this.driver };
  }

  /**
   * Deletes every point with an empty filter (which matches all points) rather than dropping and
   * recreating the collection: the collection keeps its configuration, aliases and snapshots, and
   * searches never see it missing in between.
   */
  async clear(collection: string): Promise<void> {
    checkName(collection);
    await this.dimensionOf(collection);
    const client = await this.client();
    await this.call(collection, `clear '${collection}'`, async () =>
      client.delete(collection, { wait: true, filter: {} }),
    );
  }

  /** Nothing to do: every write above used `wait=true`, so Qdrant has applied it (and logged it in its WAL). */
  async flush(): Promise<void> {
    this.checkOpen();
    return Promise.resolve();
  }

  /** The client keeps no resources worth waiting for (idle keep-alive sockets expire on their own). */
  async close(): Promise<void> {
    this.closed = true;
    this.clientPromise = undefined;
    return Promise.resolve();
  }

  private async client(): Promise<QdrantClient> {
    this.checkOpen();
    const { url, prefix, apiKey, timeoutMs } = this.options;
    this.clientPromise ??= loadClient().then(
      ({ QdrantClient: Client }) =>
        // checkCompatibility stays on: the client asks `GET /` once and warns on a major/minor mismatch.
        new Client({ url, prefix, apiKey, timeout: timeoutMs }),
    );
    return this.clientPromise;
  }

  private checkOpen(): void {
    if (this.closed) {
      throw new DomainError(ErrorCode.FailedPrecondition, 'the Qdrant vector store is closed');
    }
  }

  /** The collection's info, or undefined when Qdrant says 404. */
  private async collectionInfo(name: string): Promise<Schemas['CollectionInfo'] | undefined> {
    const client = await this.client();
    try {
      return await client.getCollection(name);
    } catch (error) {
      const mapped = this.toDomainError(error, `read collection '${name}'`);
      if (mapped.code === ErrorCode.NotFound) {
        this.dimensions.delete(name);
        return undefined;
      }
      throw mapped;
    }
  }

  private async dimensionOf(collection: string): Promise<number> {
    const known = this.dimensions.get(collection);
    if (known !== undefined) return known;
    const described = await this.describe(collection);
    if (described === undefined) throw missingCollection(collection);
    return described.dimension;
  }

  /** Runs one client call, mapping its failure; a 404 or 400 also forgets the cached dimension. */
  private async call<T>(collection: string, what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      const mapped = this.toDomainError(error, what);
      if (mapped.code === ErrorCode.NotFound) {
        this.dimensions.delete(collection);
        throw missingCollection(collection);
      }
      if (mapped.code === ErrorCode.InvalidInput) this.dimensions.delete(collection);
      throw mapped;
    }
  }

  private toDomainError(error: unknown, what: string): DomainError {
    return toDomainError(error, what, this.options.url);
  }
}

/** Loads the client's ESM build (see the type import above). Node caches the module. */
async function loadClient(): Promise<QdrantModule> {
  return import('@qdrant/js-client-rest');
}
