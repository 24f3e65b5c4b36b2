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

export interface QdrantVectorStoreOptions {
  /**
   * Qdrant REST endpoint, e.g. `http://qdrant:6333` or `https://xyz.cloud.qdrant.io:6333`. A URL
   * without a port means 6333, as in the official clients; a path (`https://proxy/qdrant`) is kept
   * as a prefix for reverse proxies.
   */
  readonly url: string;
  /** Sent as the `api-key` header; Qdrant's `service.api_key` (or a read-only key for search only). */
  readonly apiKey?: string;
  /** Client-side deadline of one REST call in milliseconds. Default 30 000. */
  readonly timeoutMs?: number;
  /** `shard_number` of new collections; unset lets Qdrant decide (1 standalone, one per node distributed). */
  readonly shardNumber?: number;
  /** `replication_factor` of new collections (copies of each shard); unset means Qdrant's default, 1. */
  readonly replicationFactor?: number;
  /** `write_consistency_factor` of new collections (replicas that must ack a write); unset means 1. */
  readonly writeConsistencyFactor?: number;
  /** `on_disk_payload` of new collections; unset means Qdrant's default. */
  readonly onDiskPayload?: boolean;
  /** `int8` gives new collections scalar quantization (a 4x smaller copy of the vectors for faster,
   * approximate scoring). Default `none`. */
  readonly quantization?: 'none' | 'int8';
  /**
   * Search with `params.exact` (brute force over the original float32 vectors, quantization ignored),
   * which is what the visual cache needs for parity with faiss IndexFlatIP (MODEL_SPEC §1.4).
   * Default false: HNSW, approximate.
   */
  readonly exactSearch?: boolean;
  /** Points per upsert request (and ids per retrieve/delete request). Default 256. */
  readonly upsertBatchSize?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_UPSERT_BATCH_SIZE = 256;
const MAX_UPSERT_BATCH_SIZE = 10_000;
/** Qdrant's own limit on a vector's size (`VectorParams.size`). */
const MAX_DIMENSION = 65_536;
/**
 * How far a search may over-fetch to settle a tie at the k-th place (see `search`). A larger tie
 * group than this (e.g. thousands of zero vectors) keeps Qdrant's choice among the tied points.
 */
const MAX_TIE_FETCH = 10_000;

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

  private readonly url: string;
  private readonly prefix: string | undefined;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly batchSize: number;
  private readonly exactSearch: boolean;
  private readonly createParams: Schemas['CreateCollection'];
  /** Dimension per collection seen so far: saves a round trip per search and per upsert. */
  private readonly dimensions = new Map<string, number>();
  private clientPromise: Promise<QdrantClient> | undefined;
  private closed = false;

  constructor(options: QdrantVectorStoreOptions) {
    const endpoint = parseEndpoint(options.url);
    this.url = endpoint.url;
    this.prefix = endpoint.prefix;
    if (options.apiKey !== undefined && options.apiKey.trim() === '') {
      throw DomainError.invalidInput('the Qdrant API key is empty; set a key or leave it unset', 'apiKey');
    }
    this.apiKey = options.apiKey;
    this.timeoutMs = positiveInteger(options.timeoutMs, DEFAULT_TIMEOUT_MS, 'timeoutMs', 3_600_000);
    this.batchSize = positiveInteger(
      options.upsertBatchSize,
      DEFAULT_UPSERT_BATCH_SIZE,
      'upsertBatchSize',
      MAX_UPSERT_BATCH_SIZE,
    );
    const quantization = options.quantization ?? 'none';
    if (quantization !== 'none' && quantization !== 'int8') {
      throw DomainError.invalidInput(
        `quantization must be 'none' or 'int8', got ${JSON.stringify(quantization)}`,
        'quantization',
      );
    }
    this.exactSearch = options.exactSearch ?? false;
    this.createParams = {
      shard_number: optionalPositiveInteger(options.shardNumber, 'shardNumber'),
      replication_factor: optionalPositiveInteger(options.replicationFactor, 'replicationFactor'),
      write_consistency_factor: optionalPositiveInteger(
        options.writeConsistencyFactor,
        'writeConsistencyFactor',
      ),
      on_disk_payload: options.onDiskPayload,
      quantization_config: quantization === 'int8' ? { scalar: { type: 'int8' } } : undefined,
    };
    if (
      this.createParams.write_consistency_factor != null &&
      this.createParams.replication_factor != null &&
      this.createParams.write_consistency_factor > this.createParams.replication_factor
    ) {
      throw DomainError.invalidInput(
        `writeConsistencyFactor (${this.createParams.write_consistency_factor}) cannot exceed replicationFactor ` +
          `(${this.createParams.replication_factor}): every write would fail`,
        'writeConsistencyFactor',
      );
    }
  }

  async ensureCollection(name: string, dimension: number): Promise<void> {
    checkName(name);
    if (!Number.isInteger(dimension) || dimension < 1 || dimension > MAX_DIMENSION) {
      throw DomainError.invalidInput(
        `dimension must be an integer in 1..${MAX_DIMENSION}, got ${String(dimension)}`,
        'dimension',
      );
    }
    const existing = await this.collectionInfo(name);
    if (existing !== undefined) {
      this.checkCompatible(name, existing, dimension);
      return;
    }
    const client = await this.client();
    try {
      await client.createCollection(name, {
        ...this.createParams,
        vectors: { size: dimension, distance: 'Dot' },
      });
    } catch (error) {
      // Another replica of the retriever may have created it between our read and our create:
      // accept its collection when it is the one we wanted.
      const raced = await this.collectionInfo(name).catch(() => undefined);
      if (raced === undefined) throw this.toDomainError(error, `create collection '${name}'`);
      this.checkCompatible(name, raced, dimension);
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
    for (let start = 0; start < structs.length; start += this.batchSize) {
      const batch = structs.slice(start, start + this.batchSize);
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
    let removed = 0;
    for (let start = 0; start < unique.length; start += this.batchSize) {
      const batch = unique.slice(start, start + this.batchSize);
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
   * One `query/batch` request for all queries. Qdrant orders equal scores as it pleases, while the
   * visual cache expects faiss's lower-id-first order (MODEL_SPEC §1.4), so results are re-sorted
   * here. A re-sort alone cannot fix a tie that straddles the k-th place (Qdrant may have kept a
   * higher id and dropped a lower one), so each query asks for k + 1 hits and, when the tie reaches
   * the end of what came back, asks again for more (up to MAX_TIE_FETCH) before cutting at k.
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
    if (queries.length % dimension !== 0) {
      throw DomainError.invalidInput(
        `queries holds ${queries.length} floats, which is not a whole number of vectors of the ` +
          `collection's dimension ${dimension}`,
        'queries',
      );
    }
    const n = queries.length / dimension;
    const rows: number[][] = [];
    for (let i = 0; i < n; i += 1) {
      const row = queries.subarray(i * dimension, (i + 1) * dimension);
      const bad = row.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) {
        throw DomainError.invalidInput(
          `queries[${i}][${bad}] is ${row[bad]}; every value must be finite`,
          'queries',
        );
      }
      rows.push(Array.from(row));
    }
    if (n === 0) return [];
    const client = await this.client();
    const withPayload = options.includePayloads === true;
    const withVector = options.includeVectors === true;
    const request = (row: number[], limit: number): Schemas['QueryRequest'] => ({
      query: row,
      limit,
      with_payload: withPayload,
      with_vector: withVector,
      ...(this.exactSearch
        ? {
            params: {
              exact: true,
              ...(this.createParams.quantization_config ? { quantization: { ignore: true } } : {}),
            },
          }
        : {}),
    });

    const limits = rows.map(() => Math.min(k + 1, MAX_TIE_FETCH));
    const hits: Schemas['ScoredPoint'][][] = rows.map(() => []);
    let pending = rows.map((_, i) => i);
    while (pending.length > 0) {
      const asked = pending;
      const responses = await withSignal(
        options.signal,
        this.call(collection, `search '${collection}'`, async () =>
          client.queryBatch(collection, { searches: asked.map((i) => request(rows[i]!, limits[i]!)) }),
        ),
      );
      if (responses.length !== asked.length) {
        throw internal(`Qdrant answered ${responses.length} results for ${asked.length} queries`);
      }
      pending = [];
      asked.forEach((queryIndex, j) => {
        const points = [...responses[j]!.points].sort(byScoreThenId);
        hits[queryIndex] = points;
        const limit = limits[queryIndex]!;
        const kth = points[k - 1];
        const last = points[points.length - 1];
        if (points.length === limit && kth !== undefined && last !== undefined && last.score === kth.score) {
          if (limit < MAX_TIE_FETCH) {
            limits[queryIndex] = Math.min(limit * 2, MAX_TIE_FETCH);
            pending.push(queryIndex);
          }
        }
      });
    }
    return hits.map((points) =>
      points.slice(0, k).map((point) => toScoredPoint(point, withVector, withPayload, dimension)),
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
    this.clientPromise ??= loadClient().then(
      ({ QdrantClient: Client }) =>
        // checkCompatibility stays on: the client asks `GET /` once and warns on a major/minor mismatch.
        new Client({ url: this.url, prefix: this.prefix, apiKey: this.apiKey, timeout: this.timeoutMs }),
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

  private checkCompatible(name: string, info: Schemas['CollectionInfo'], dimension: number): void {
    const vectors = info.config.params.vectors;
    const size = singleVectorSize(info);
    if (size === undefined) throw namedVectorsError(name);
    if (size !== dimension) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `Qdrant collection '${name}' has dimension ${size}, not ${dimension}; drop it or use another collection name`,
        { field: 'dimension' },
      );
    }
    const distance = (vectors as Schemas['VectorParams']).distance;
    if (distance !== 'Dot') {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `Qdrant collection '${name}' uses ${distance} distance, but the retriever scores by inner product ` +
          `('Dot'); drop it or use another collection name`,
      );
    }
    this.dimensions.set(name, size);
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
    return toDomainError(error, what, this.url);
  }
}

/** Loads the client's ESM build (see the type import above). Node caches the module. */
async function loadClient(): Promise<QdrantModule> {
  return import('@qdrant/js-client-rest');
}

/**
 * Maps what the Qdrant client throws to a DomainError. The client rejects with the HTTP error of
 * `@qdrant/openapi-typescript-fetch` (`status`, `data`, `headers`) for any non-2xx answer, its own
 * named errors for timeouts and 429s, and undici's `TypeError('fetch failed')` when no connection
 * could be made.
 */
export function toDomainError(error: unknown, what: string, url: string): DomainError {
  if (error instanceof DomainError) return error;
  if (!(error instanceof Error)) return internal(`failed to ${what}: ${String(error)}`, error);
  const http = httpFailure(error);
  if (http !== undefined) {
    const reason = `Qdrant refused to ${what} (HTTP ${http.status}: ${http.message})`;
    switch (http.status) {
      case 400:
      case 422:
        return new DomainError(ErrorCode.InvalidInput, reason, {}, { cause: error });
      case 401:
        return new DomainError(
          ErrorCode.Unauthenticated,
          `${reason}; check the Qdrant API key the retriever is configured with`,
          {},
          { cause: error },
        );
      case 403:
        return new DomainError(
          ErrorCode.PermissionDenied,
          `${reason}; the API key may not do this (a read-only key cannot write)`,
          {},
          { cause: error },
        );
      case 404:
        return new DomainError(ErrorCode.NotFound, reason, {}, { cause: error });
      case 409:
        return new DomainError(ErrorCode.AlreadyExists, reason, {}, { cause: error });
      case 429:
        return new DomainError(ErrorCode.Overloaded, `${reason}; retry later`, retryAfter(http.retryAfterS), {
          cause: error,
        });
      case 408:
      case 502:
      case 503:
      case 504:
        return new DomainError(ErrorCode.DependencyUnavailable, reason, {}, { cause: error });
      default:
        return internal(reason, error);
    }
  }
  switch (error.name) {
    case 'QdrantClientTimeoutError':
      return new DomainError(
        ErrorCode.DependencyUnavailable,
        `Qdrant at ${url} did not answer in time to ${what}; check its load or raise timeoutMs`,
        {},
        { cause: error },
      );
    case 'QdrantClientResourceExhaustedError': {
      const seconds = (error as Error & { retry_after?: unknown }).retry_after;
      return new DomainError(
        ErrorCode.Overloaded,
        `Qdrant is rate limiting (${what}); retry later`,
        retryAfter(typeof seconds === 'number' ? seconds : undefined),
        { cause: error },
      );
    }
    default:
      break;
  }
  const network = networkCode(error);
  if (network !== undefined) {
    return DomainError.unavailable(
      `cannot reach Qdrant at ${url} to ${what} (${network}); check the URL and that Qdrant is running`,
      error,
    );
  }
  return internal(`failed to ${what}: ${error.message}`, error);
}

interface HttpFailure {
  readonly status: number;
  readonly message: string;
  readonly retryAfterS: number | undefined;
}

function httpFailure(error: Error): HttpFailure | undefined {
  const candidate = error as Error & { status?: unknown; data?: unknown; headers?: unknown };
  if (typeof candidate.status !== 'number' || !('data' in candidate)) return undefined;
  const data = candidate.data;
  let message = candidate.message || 'no details';
  if (typeof data === 'string' && data.trim() !== '') {
    message = data.trim();
  } else if (isRecord(data) && isRecord(data['status']) && typeof data['status']['error'] === 'string') {
    message = data['status']['error'];
  }
  let retryAfterS: number | undefined;
  if (candidate.headers instanceof Headers) {
    const header = Number(candidate.headers.get('retry-after'));
    retryAfterS = Number.isFinite(header) && header > 0 ? header : undefined;
  }
  return { status: candidate.status, message, retryAfterS };
}

/** The system error code behind a failed connection (undici wraps it in `cause`), if any. */
function networkCode(error: Error): string | undefined {
  const codes = new Set([
    'ECONNREFUSED',
    'ECONNRESET',
    'ENOTFOUND',
    'EAI_AGAIN',
    'EHOSTUNREACH',
    'ENETUNREACH',
    'ETIMEDOUT',
    'EPIPE',
  ]);
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth += 1) {
    const code = (current as Error & { code?: unknown }).code;
    if (typeof code === 'string' && (codes.has(code) || code.startsWith('UND_ERR_'))) return code;
    current = current.cause;
  }
  if (error instanceof TypeError && error.message === 'fetch failed') return 'fetch failed';
  return undefined;
}

function retryAfter(seconds: number | undefined): { retryAfterMs?: number } {
  return seconds === undefined ? {} : { retryAfterMs: seconds * 1000 };
}

function internal(message: string, cause?: unknown): DomainError {
  return new DomainError(ErrorCode.Internal, message, {}, { cause });
}

function missingCollection(name: string): DomainError {
  return DomainError.notFound(`Qdrant has no collection '${name}'; create it first (ensureCollection)`);
}

function namedVectorsError(name: string): DomainError {
  return new DomainError(
    ErrorCode.FailedPrecondition,
    `Qdrant collection '${name}' stores named vectors; the retriever needs one unnamed vector per point, ` +
      `so drop it or use another collection name`,
  );
}

function singleVectorSize(info: Schemas['CollectionInfo']): number | undefined {
  const vectors = info.config.params.vectors;
  if (isRecord(vectors) && typeof vectors['size'] === 'number') return vectors['size'];
  return undefined;
}

function parseEndpoint(url: unknown): { url: string; prefix: string | undefined } {
  if (typeof url !== 'string' || url.trim() === '') {
    throw DomainError.invalidInput('the Qdrant URL is empty; set it, e.g. http://qdrant:6333', 'url');
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw DomainError.invalidInput(
      `the Qdrant URL '${url}' is not a URL; use e.g. http://qdrant:6333`,
      'url',
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw DomainError.invalidInput(`the Qdrant URL must start with http:// or https://, got '${url}'`, 'url');
  }
  if (parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '') {
    throw DomainError.invalidInput(
      'the Qdrant URL must not carry credentials, a query or a fragment; put the key in apiKey',
      'url',
    );
  }
  const path = parsed.pathname.replace(/\/+$/, '');
  return { url: `${parsed.protocol}//${parsed.host}`, prefix: path === '' ? undefined : path };
}

function positiveInteger(value: number | undefined, fallback: number, field: string, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw DomainError.invalidInput(`${field} must be an integer in 1..${max}, got ${String(value)}`, field);
  }
  return value;
}

function optionalPositiveInteger(value: number | undefined, field: string): number | undefined {
  return value === undefined ? undefined : positiveInteger(value, 1, field, 1_000_000);
}

/** A point already checked by `checkPoints` → Qdrant's wire form. */
function toPointStruct(point: VectorPoint): Schemas['PointStruct'] {
  const struct: Schemas['PointStruct'] = { id: point.id, vector: Array.from(point.vector) };
  if (point.payload !== undefined) struct.payload = { ...point.payload };
  return struct;
}

function pointId(id: unknown): number {
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return id;
  throw new DomainError(
    ErrorCode.FailedPrecondition,
    `Qdrant returned point id ${String(id)}, which is not an unsigned safe integer: the collection was ` +
      `written by something other than the retriever`,
  );
}

function byScoreThenId(a: Schemas['ScoredPoint'], b: Schemas['ScoredPoint']): number {
  return b.score - a.score || pointId(a.id) - pointId(b.id);
}

function toScoredPoint(
  point: Schemas['ScoredPoint'],
  withVector: boolean,
  withPayload: boolean,
  dimension: number,
): ScoredVectorPoint {
  // Qdrant computes and serialises float32 scores; fround gives back the float32 value faiss would.
  const hit: { id: number; score: number; vector?: Float32Array; payload?: Record<string, string> } = {
    id: pointId(point.id),
    score: Math.fround(point.score),
  };
  if (withVector) {
    const vector = point.vector;
    if (
      !Array.isArray(vector) ||
      vector.length !== dimension ||
      !vector.every((v) => typeof v === 'number')
    ) {
      throw internal(
        `Qdrant returned point ${hit.id} without a ${dimension}-float vector although one was asked`,
      );
    }
    hit.vector = Float32Array.from(vector);
  }
  if (withPayload) hit.payload = toStringPayload(point.payload);
  return hit;
}

/** Payloads the retriever wrote are strings already; anything else someone else wrote becomes JSON. */
function toStringPayload(payload: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(payload)) return out;
  for (const [key, value] of Object.entries(payload)) {
    out[key] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return out;
}

function checkNotAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw cancelled();
}

function cancelled(): DomainError {
  return new DomainError(ErrorCode.Cancelled, 'the search was cancelled by the caller');
}

/**
 * The client takes no AbortSignal, so a cancelled search stops waiting here; the HTTP request
 * itself runs to its end (or to timeoutMs) and its answer is dropped.
 */
async function withSignal<T>(signal: AbortSignal | undefined, work: Promise<T>): Promise<T> {
  if (signal === undefined) return work;
  checkNotAborted(signal);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(cancelled());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : internal(String(error)));
      },
    );
  });
}

/** Array.isArray would narrow a readonly array parameter to any[]. */
function isArray(value: unknown): boolean {
  return Array.isArray(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
