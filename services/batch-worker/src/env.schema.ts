import { baseServiceEnv, env, envVar, type EnvOf } from '@imagebind-llm/config';

/** Every setting of the batch worker. Nothing else in the service reads process.env. */
export const batchWorkerEnvSchema = {
  ...baseServiceEnv({ grpcPort: 50101, httpPort: 9101 }),
  REDIS_URL: envVar(
    env.stringWithDefault('redis://127.0.0.1:6379'),
    'Redis holding the batch queues (noeviction + AOF)',
  ),
  QUEUE_PREFIX: envVar(env.stringWithDefault('ibllm'), 'key prefix of the queues and job records in Redis'),
  GATEWAY_TARGET: envVar(
    env.stringWithDefault('127.0.0.1:50051'),
    'the gateway the worker sends items to (host:port[,host:port])',
  ),
  GATEWAY_API_KEY: envVar(
    env.optionalString(),
    'API key of the worker at the gateway, when it requires keys',
  ),
  RETRIEVER_TARGET: envVar(
    env.optionalString(),
    'retriever for index-build and index-import jobs (host:port)',
  ),
  WORKER_CONCURRENCY: envVar(
    env.positiveInt(16, 1024),
    'items processed at once; enough to keep the encoders’ batchers full without a storm of calls',
  ),
  EMBED_MANY_REQUESTS: envVar(
    env.positiveInt(16, 1024),
    "most item embeds sent together in one EmbedMany call (within the gateway's GATEWAY_EMBED_MANY_MAX_REQUESTS and the worker key's burst); 1 sends each item alone with Embed",
  ),
  ITEM_ATTEMPTS: envVar(
    env.positiveInt(4, 50),
    'tries of an item that fails transiently (UNAVAILABLE, overload)',
  ),
  ITEM_TIMEOUT_MS: envVar(env.positiveInt(120_000, 3_600_000), 'deadline of one item'),
  BATCH_FILE_ROOT: envVar(
    env.optionalString(),
    'folder file URIs of manifests may name; unset refuses file URIs',
  ),
  FETCH_ALLOWED_HOSTS: envVar(
    env.stringWithDefault('-'),
    'hosts https URIs may name (example.com, *.example.com), comma-separated; - for none',
  ),
  OBJECT_STORE_ENDPOINT: envVar(
    env.optionalString(),
    's3://bucket/key URIs are read from <endpoint>/<bucket>/<key> over https (e.g. https://minio.internal:9000); unset refuses s3 URIs',
  ),
  OBJECT_STORE_BUCKETS: envVar(
    env.stringWithDefault('-'),
    'buckets s3 URIs may name, comma-separated; - for none',
  ),
  MAX_ITEM_BYTES: envVar(env.positiveInt(32 * 1024 * 1024, 1024 * 1024 * 1024), 'largest fetched input'),
};

export type BatchWorkerEnv = EnvOf<typeof batchWorkerEnvSchema>;
