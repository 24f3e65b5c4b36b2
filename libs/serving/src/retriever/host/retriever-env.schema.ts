import { baseServiceEnv, embeddedStoreEnv, env, envVar, z, type EnvOf } from '@imagebind-llm/config';

/** Every setting of the retriever service (services/retriever). Nothing else in it reads process.env. */
export const retrieverEnvSchema = {
  ...baseServiceEnv({ grpcPort: 50091, httpPort: 9091 }),
  RETRIEVER_DRIVER: envVar(
    z.enum(['embedded', 'qdrant'], { error: 'must be embedded or qdrant' }).default('embedded'),
    'VectorStore driver: embedded (one machine, default) or qdrant (distributed)',
  ),
  RETRIEVER_DATA_DIR: envVar(
    env.optionalString(),
    'embedded driver: folder the collections persist to; unset keeps them in memory only',
  ),
  ...embeddedStoreEnv(),
  RETRIEVER_FLUSH_INTERVAL_MS: envVar(
    env.nonNegativeInt(60_000, 86_400_000),
    'embedded driver with RETRIEVER_DATA_DIR: write changed collections this often (ms; 0 = only at shutdown), bounding what a crash loses',
  ),
  RETRIEVER_SEED_FROM_REPO: envVar(
    env.optionalString(),
    'model repository whose knn-cache component fills the cache collection when it is missing or empty',
  ),
  MODEL_REPO: envVar(
    env.optionalString(),
    'model repository, as every model service takes it; without RETRIEVER_SEED_FROM_REPO its knn-cache seeds a missing or empty cache collection',
  ),
  RETRIEVER_IMPORT_ROOT: envVar(
    env.optionalString(),
    'folder ImportIndex may read faiss files from (paths in requests are relative to it); unset disables imports',
  ),
  QDRANT_URL: envVar(env.optionalString(), 'qdrant driver: REST URL, e.g. http://qdrant:6333'),
  QDRANT_API_KEY: envVar(env.optionalString(), 'qdrant driver: API key, if the cluster requires one'),
  QDRANT_SHARDS: envVar(env.positiveInt(1, 1024), 'qdrant driver: shard_number of new collections'),
  QDRANT_REPLICAS: envVar(env.positiveInt(1, 16), 'qdrant driver: replication_factor of new collections'),
  QDRANT_WRITE_CONSISTENCY: envVar(
    env.positiveInt(1, 16),
    'qdrant driver: write_consistency_factor of new collections (replicas that must ack a write; ≤ QDRANT_REPLICAS)',
  ),
  QDRANT_QUANTIZATION: envVar(
    z.enum(['none', 'int8'], { error: 'must be none or int8' }).default('none'),
    'qdrant driver: int8 scalar quantization of new collections (a 4x smaller in-RAM copy; exact search ignores it)',
  ),
  QDRANT_ON_DISK_PAYLOAD: envVar(
    env.boolean(true),
    'qdrant driver: keep payloads on disk in new collections',
  ),
  QDRANT_EXACT: envVar(
    env.boolean(true),
    'qdrant driver: exact search (params.exact) so the visual cache matches faiss IndexFlatIP',
  ),
};

export type RetrieverEnv = EnvOf<typeof retrieverEnvSchema>;
