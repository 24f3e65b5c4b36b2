import { DomainError } from '@imagebind-llm/errors';
// The client's typings are ESM only; see the note in qdrant.driver.ts.
import type { Schemas } from '@qdrant/js-client-rest' with { 'resolution-mode': 'import' };

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

/** The options checked, with their defaults filled in and the URL split the way the client wants. */
export interface ResolvedQdrantOptions {
  /** `scheme://host[:port]`, without the path. */
  readonly url: string;
  /** The URL's path, for a Qdrant behind a reverse proxy. */
  readonly prefix: string | undefined;
  readonly apiKey: string | undefined;
  readonly timeoutMs: number;
  readonly batchSize: number;
  readonly exactSearch: boolean;
  /** The settings every collection the driver creates gets (vectors aside). */
  readonly createParams: Schemas['CreateCollection'];
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_UPSERT_BATCH_SIZE = 256;
const MAX_UPSERT_BATCH_SIZE = 10_000;

/** Checks the options and fills in the defaults; throws INVALID_INPUT naming the offending option. */
export function resolveQdrantOptions(options: QdrantVectorStoreOptions): ResolvedQdrantOptions {
  const endpoint = parseEndpoint(options.url);
  if (options.apiKey !== undefined && options.apiKey.trim() === '') {
    throw DomainError.invalidInput('the Qdrant API key is empty; set a key or leave it unset', 'apiKey');
  }
  const timeoutMs = positiveInteger(options.timeoutMs, DEFAULT_TIMEOUT_MS, 'timeoutMs', 3_600_000);
  const batchSize = positiveInteger(
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
  const createParams: Schemas['CreateCollection'] = {
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
    createParams.write_consistency_factor != null &&
    createParams.replication_factor != null &&
    createParams.write_consistency_factor > createParams.replication_factor
  ) {
    throw DomainError.invalidInput(
      `writeConsistencyFactor (${createParams.write_consistency_factor}) cannot exceed replicationFactor ` +
        `(${createParams.replication_factor}): every write would fail`,
      'writeConsistencyFactor',
    );
  }
  return {
    url: endpoint.url,
    prefix: endpoint.prefix,
    apiKey: options.apiKey,
    timeoutMs,
    batchSize,
    exactSearch: options.exactSearch ?? false,
    createParams,
  };
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
