import { env, envVar } from './env-schema';

/** Listener defaults of one service (each runs in its own pod, so the names carry no prefix). */
export interface ServiceEnvDefaults {
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly maxMessageBytes?: number;
}

/**
 * The settings every model service shares: its gRPC and HTTP listeners, message limit, shutdown
 * grace and log level. A service spreads this into its own schema and adds what it tunes.
 */
export function baseServiceEnv(defaults: ServiceEnvDefaults) {
  return {
    GRPC_HOST: envVar(env.host('127.0.0.1'), 'interface the gRPC server binds; 0.0.0.0 in a pod'),
    GRPC_PORT: envVar(env.port(defaults.grpcPort), 'gRPC port; 0 picks a free port'),
    HTTP_HOST: envVar(env.host('127.0.0.1'), 'interface of the HTTP listener (/metrics, /healthz, /readyz)'),
    HTTP_PORT: envVar(env.port(defaults.httpPort), 'HTTP port; 0 picks a free port'),
    MAX_MESSAGE_BYTES: envVar(
      env.positiveInt(defaults.maxMessageBytes ?? 64 * 1024 * 1024, 1024 * 1024 * 1024),
      'largest gRPC message accepted or sent, in bytes; larger requests get RESOURCE_EXHAUSTED',
    ),
    SHUTDOWN_GRACE_MS: envVar(
      env.positiveInt(25_000, 600_000),
      'how long SIGTERM waits for calls in flight; keep below the pod terminationGracePeriodSeconds',
    ),
    LOG_LEVEL: envVar(env.logLevel(), 'minimum level of the JSON logs'),
  };
}

/** Dynamic batcher settings (ARCHITECTURE §6), shared by the encoders and the bind network. */
export function batcherEnv(defaults: { maxBatch: number; maxDelayMs: number; maxQueue: number }) {
  return {
    BATCH_MAX_SIZE: envVar(
      env.positiveInt(defaults.maxBatch, 4096),
      'largest batch handed to the model, in units (an image is 1, a video its clip count)',
    ),
    BATCH_MAX_DELAY_MS: envVar(
      env.positiveInt(defaults.maxDelayMs, 10_000),
      'a partial batch runs once its oldest request has waited this long (ms)',
    ),
    BATCH_MAX_QUEUE: envVar(
      env.positiveInt(defaults.maxQueue, 1_000_000),
      'most units that may wait; beyond it requests get RESOURCE_EXHAUSTED at once',
    ),
    BATCH_CONCURRENCY: envVar(env.positiveInt(1, 64), 'batches executing at once'),
  };
}

/** Where the service finds its models (ARCHITECTURE §4) and which execution providers it prefers. */
export function modelRepositoryEnv() {
  return {
    MODEL_REPO: envVar(
      env.requiredString(
        'the model repository folder, e.g. /models (build one with `ibllm models build` or `ibllm models demo`)',
      ),
      'model repository folder (ARCHITECTURE §4)',
    ),
    EXECUTION_PROVIDERS: envVar(
      env.stringWithDefault('cpu'),
      'comma-separated execution provider preference, e.g. cuda,cpu',
    ),
    INTRA_OP_THREADS: envVar(env.nonNegativeInt(0, 1024), 'ONNX Runtime intra-op threads; 0 = its default'),
    ORT_ALLOW_SPINNING: envVar(
      env.boolean(false),
      'let idle ONNX Runtime threads spin-wait: lower latency when the process owns its cores, wasted CPU when it shares them',
    ),
  };
}
