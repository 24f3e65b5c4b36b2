import {
  embeddedStoreEnv,
  env,
  envVar,
  preprocessEnv,
  tracingEnv,
  z,
  type EnvOf,
} from '@imagebind-llm/config';

const list = () =>
  z
    .string()
    .optional()
    .transform((v) =>
      (v ?? '')
        .split(',')
        .map((s) => s.trim().toLowerCase())
        .filter((s) => s !== ''),
    );

/** Every setting of the gateway process. Nothing else in the service reads process.env. */
export const gatewayEnvSchema = {
  GATEWAY_MODE: envVar(
    z
      .enum(['distributed', 'standalone'], { error: 'must be distributed or standalone' })
      .default('distributed'),
    'distributed: call the services over gRPC; standalone: host every service in this process (ARCHITECTURE §3)',
  ),
  GATEWAY_MODEL_REPO: envVar(
    env.optionalString(),
    'standalone: the model repository folder (ARCHITECTURE §4)',
  ),
  GATEWAY_DATA_DIR: envVar(
    env.optionalString(),
    'standalone: folder the embedded vector store persists to; unset keeps it in memory',
  ),
  // standalone: the embedded vector store's tuning, the same variables the retriever reads
  ...embeddedStoreEnv(),
  GATEWAY_GRPC_HOST: envVar(env.host('127.0.0.1'), 'interface the public gRPC API binds; 0.0.0.0 in a pod'),
  GATEWAY_GRPC_PORT: envVar(env.port(50051), 'port of the public gRPC API; 0 picks a free port'),
  GATEWAY_HTTP_HOST: envVar(
    env.host('127.0.0.1'),
    'interface of the HTTP listener (REST API, playground, /metrics, /healthz, /readyz)',
  ),
  GATEWAY_HTTP_PORT: envVar(env.port(8080), 'port of the HTTP listener; 0 picks a free port'),
  GATEWAY_ENCODER_VISION_TARGET: envVar(
    env.optionalString(),
    'distributed: encoder-vision address(es), host:port[,host:port] or dns:///svc:port',
  ),
  GATEWAY_ENCODER_AUDIO_TARGET: envVar(env.optionalString(), 'distributed: encoder-audio address(es)'),
  GATEWAY_ENCODER_TEXT_TARGET: envVar(env.optionalString(), 'distributed: encoder-text address(es)'),
  GATEWAY_ENCODER_POINT_TARGET: envVar(env.optionalString(), 'distributed: encoder-point address(es)'),
  GATEWAY_RETRIEVER_TARGET: envVar(env.optionalString(), 'distributed: retriever address(es)'),
  GATEWAY_BIND_TARGET: envVar(env.optionalString(), 'distributed: bind address(es)'),
  GATEWAY_DECODER_TARGET: envVar(
    env.optionalString(),
    'distributed: decoder address(es); with several, a broken stream resumes on another one',
  ),
  GATEWAY_HOP_TIMEOUT_MS: envVar(
    env.positiveInt(30_000, 600_000),
    'deadline of each unary downstream call (encode, search, project), capped by the client deadline',
  ),
  GATEWAY_DECODER_RESUME_ATTEMPTS: envVar(
    env.nonNegativeInt(4, 32),
    'distributed: how often a broken decoder stream is resumed (on another replica) before the client sees the error; standalone never resumes',
  ),
  GATEWAY_API_KEYS: envVar(
    env.optionalString(),
    'API keys as tenant:key or tenant:sha256:<hex>, comma-separated; required unless bound to loopback',
  ),
  GATEWAY_RATE_LIMIT_RPM: envVar(env.positiveInt(600, 1_000_000), 'requests per minute allowed per API key'),
  GATEWAY_RATE_LIMIT_BURST: envVar(env.positiveInt(60, 1_000_000), 'burst size of the per-key rate limit'),
  GATEWAY_RATE_LIMIT_OVERRIDES: envVar(
    env.optionalString(),
    "per-tenant limits instead of the default, tenant:rpm[:burst],... (e.g. batch-worker:60000:2000 for the batch workers' key)",
  ),
  GATEWAY_FETCH_ALLOWED_HOSTS: envVar(
    list(),
    'hosts uri inputs may be fetched from over https (example.com or *.example.com); empty disables fetching',
  ),
  GATEWAY_FETCH_TIMEOUT_MS: envVar(env.positiveInt(10_000, 120_000), 'timeout of one uri fetch'),
  GATEWAY_MAX_MESSAGE_BYTES: envVar(
    env.positiveInt(64 * 1024 * 1024, 1024 * 1024 * 1024),
    'largest gRPC request accepted, in bytes (inline media counts); larger ones get RESOURCE_EXHAUSTED',
  ),
  GATEWAY_MAX_BODY_BYTES: envVar(
    env.positiveInt(48 * 1024 * 1024, 1024 * 1024 * 1024),
    'largest REST request body, in bytes (base64 media counts); larger ones get HTTP 413',
  ),
  GATEWAY_MAX_INPUTS: envVar(env.positiveInt(16, 1024), 'most multimodal inputs one request may carry'),
  GATEWAY_EMBED_MANY_MAX_REQUESTS: envVar(
    env.positiveInt(64, 1024),
    'most Embed requests one EmbedMany call may carry (each also counts against the rate limit)',
  ),
  GATEWAY_MAX_INPUT_BYTES: envVar(
    env.positiveInt(32 * 1024 * 1024, 1024 * 1024 * 1024),
    'largest single inline input (image, audio, video, point cloud), in bytes',
  ),
  STANDALONE_DECODER_MAX_BATCH: envVar(env.positiveInt(16, 256), 'standalone: decoder sequences per step'),
  // Standalone: raw inputs are decoded in this process, on its preprocessing worker threads.
  ...preprocessEnv(),
  GATEWAY_REDIS_URL: envVar(
    env.optionalString(),
    'Redis of the batch-job queues (noeviction + AOF) and of the rate limits shared by every replica; unset disables the batch API and keeps rate limits per process',
  ),
  GATEWAY_QUEUE_PREFIX: envVar(
    env.stringWithDefault('ibllm'),
    'key prefix of the queues in Redis (same as the workers)',
  ),
  GATEWAY_BATCH_MAX_ITEMS: envVar(env.positiveInt(10_000, 1_000_000), 'most items in one batch job'),
  GATEWAY_BATCH_OBJECT_STORE_ENDPOINT: envVar(
    env.optionalString(),
    'object store (https endpoint) s3:// URIs of batch items are read from by the workers; unset refuses s3 URIs',
  ),
  GATEWAY_BATCH_OBJECT_STORE_BUCKETS: envVar(list(), 'buckets s3:// URIs of batch items may name'),
  GATEWAY_BATCH_MAX_ACTIVE_JOBS: envVar(
    env.positiveInt(20, 100),
    'unfinished batch jobs one API key may have at once (the per-tenant limit on batch work)',
  ),
  GATEWAY_BATCH_ATTEMPTS: envVar(env.positiveInt(4, 50), 'tries of a batch item that fails transiently'),
  GATEWAY_BATCH_CHUNK_ITEMS: envVar(
    env.nonNegativeInt(0, 1_000),
    'items per queue job of a batch job (a worker claims, runs and records them together); 0 = per kind: 16 for embed and index-build, 1 for generate and index-import',
  ),
  GATEWAY_BATCH_RETENTION_S: envVar(
    z.coerce
      .number({ error: 'must be a number' })
      .int('must be an integer')
      .refine((v) => v === -1 || v >= 1, 'must be a number of seconds (at least 1), or -1 to keep')
      .default(7 * 24 * 3600),
    'seconds a finished batch job (record, items, results) stays in Redis; -1 keeps it until deleted by hand',
  ),
  GATEWAY_BATCH_WORKER: envVar(
    env.boolean(true),
    'standalone with GATEWAY_REDIS_URL: run a batch worker in this process (its items call this gateway directly, outside the public API keys and rate limits); false leaves the queue to batch-worker processes',
  ),
  GATEWAY_BATCH_WORKER_CONCURRENCY: envVar(
    env.positiveInt(16, 1024),
    "the in-process batch worker's items in flight: its only limit, and what the encoders' batchers see",
  ),
  GATEWAY_BATCH_ITEM_TIMEOUT_MS: envVar(
    env.positiveInt(120_000, 3_600_000),
    'deadline of one item in the in-process batch worker',
  ),
  GATEWAY_BATCH_FILE_ROOT: envVar(
    env.optionalString(),
    'folder batch manifests may name files under (file: URIs); unset refuses file URIs',
  ),
  GATEWAY_PLAYGROUND: envVar(
    env.boolean(true),
    'serve the web playground at / (static files; its API calls need the same keys as any client)',
  ),
  GATEWAY_PLAYGROUND_DIR: envVar(
    env.optionalString(),
    'folder of the built playground (vite build output); unset means services/gateway/web/dist',
  ),
  SHUTDOWN_GRACE_MS: envVar(
    env.positiveInt(25_000, 600_000),
    'how long SIGTERM waits for calls in flight; keep below the pod terminationGracePeriodSeconds',
  ),
  LOG_LEVEL: envVar(env.logLevel(), 'minimum level of the JSON logs'),
  ...tracingEnv(),
};

export type GatewayEnv = EnvOf<typeof gatewayEnvSchema>;
