import { z } from 'zod';
import { env, envVar, parseEnv } from './env-schema';

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
    ...tracingEnv(),
  };
}

/** Distributed tracing (OpenTelemetry), the same variable in every service. */
export function tracingEnv() {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: envVar(
      env.optionalHttpUrl(),
      'OpenTelemetry collector (OTLP/HTTP) base URL; spans go to <url>/v1/traces. Unset: tracing off',
    ),
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
    INTRA_OP_THREADS: envVar(
      env.nonNegativeInt(0, 1024),
      'ONNX Runtime intra-op threads; 0 = one per CPU the process may use (affinity, cgroup quota)',
    ),
    ORT_ALLOW_SPINNING: envVar(
      env.boolean(false),
      'let idle ONNX Runtime threads spin-wait: lower latency when the process owns its cores, wasted CPU when it shares them',
    ),
  };
}

/** EXECUTION_PROVIDERS for the CLI commands that run models in their own process (generate, embed). */
export function executionProvidersFromEnv(
  source: Readonly<Record<string, string | undefined>> = process.env,
): string {
  return parseEnv('ibllm', { EXECUTION_PROVIDERS: modelRepositoryEnv().EXECUTION_PROVIDERS }, source)
    .EXECUTION_PROVIDERS;
}

/**
 * Preprocessing off the event loop and its memory bounds (issue #15), for every process that
 * decodes raw inputs: the encoder services, and the gateway in standalone mode. The limits bound
 * what one request may make the process allocate, whatever the file's own header declares.
 */
export function preprocessEnv() {
  return {
    PREPROCESS_WORKERS: envVar(
      env.nonNegativeInt(0, 1024),
      'worker threads that decode and preprocess raw inputs; 0 = the number of CPUs',
    ),
    PREPROCESS_MAX_QUEUE: envVar(
      env.nonNegativeInt(64, 1_000_000),
      'inputs that may wait for a preprocessing worker; beyond it requests get RESOURCE_EXHAUSTED with a retry hint',
    ),
    PREPROCESS_ANSWER_HOLD_MS: envVar(
      env.nonNegativeInt(2, 1000),
      "longest a worker holds a small input's result to send it with the next ones (fewer wake-ups of the serving thread under load); 0 = every result alone",
    ),
    PREPROCESS_MAX_AUDIO_SECONDS: envVar(
      env.positiveInt(600, 86_400),
      'longest audio input accepted, in seconds (WAV and compressed); longer files get RESOURCE_EXHAUSTED',
    ),
    PREPROCESS_MAX_AUDIO_DECODED_BYTES: envVar(
      env.positiveInt(256 * 1024 * 1024, 16 * 1024 * 1024 * 1024),
      'most bytes one compressed audio file may decode to (float32, all channels: 10 min of stereo 48 kHz is 230 MB)',
    ),
    PREPROCESS_MAX_POINTS: envVar(
      env.positiveInt(1_000_000, 100_000_000),
      'most points one point cloud may have (files and preprocessed tensors); FPS and kNN cost grows with it',
    ),
    PREPROCESS_MAX_IMAGE_DECODED_BYTES: envVar(
      env.positiveInt(256 * 1024 * 1024, 16 * 1024 * 1024 * 1024),
      'most bytes one image may decode to (16-bit samples and alpha included), checked on its header',
    ),
  };
}

/** What `preprocessEnv` reads, as PreprocessPool options (workers 0 = the CPU count). */
export function preprocessPoolSettings(
  values: {
    readonly PREPROCESS_WORKERS: number;
    readonly PREPROCESS_MAX_QUEUE: number;
    readonly PREPROCESS_ANSWER_HOLD_MS: number;
    readonly PREPROCESS_MAX_AUDIO_SECONDS: number;
    readonly PREPROCESS_MAX_AUDIO_DECODED_BYTES: number;
    readonly PREPROCESS_MAX_POINTS: number;
    readonly PREPROCESS_MAX_IMAGE_DECODED_BYTES: number;
  },
  cpus: number,
) {
  return {
    workers: values.PREPROCESS_WORKERS === 0 ? cpus : values.PREPROCESS_WORKERS,
    maxQueue: values.PREPROCESS_MAX_QUEUE,
    answerHoldMs: values.PREPROCESS_ANSWER_HOLD_MS,
    limits: {
      maxAudioSeconds: values.PREPROCESS_MAX_AUDIO_SECONDS,
      maxAudioDecodedBytes: values.PREPROCESS_MAX_AUDIO_DECODED_BYTES,
      maxPoints: values.PREPROCESS_MAX_POINTS,
      maxImageDecodedBytes: values.PREPROCESS_MAX_IMAGE_DECODED_BYTES,
    },
  };
}

/**
 * The embedded vector store's tuning (libs/vector-store), for every process that hosts one: the
 * retriever service, and the gateway in standalone mode. The names keep the RETRIEVER_ prefix in
 * both, so one setting means the same thing whichever process serves the cache.
 */
export function embeddedStoreEnv() {
  return {
    RETRIEVER_QUANTIZATION: envVar(
      z.enum(['f32', 'i8'], { error: 'must be f32 or i8' }).default('f32'),
      'embedded driver: HNSW index precision for large collections (exact search is always float32)',
    ),
    RETRIEVER_EXACT_BELOW: envVar(
      env.positiveInt(200_000),
      'embedded driver: collections smaller than this are searched exactly (faiss IndexFlatIP order)',
    ),
    RETRIEVER_RESIDENT_BELOW: envVar(
      z
        .union([
          z.literal('Infinity').transform(() => Number.POSITIVE_INFINITY),
          z.coerce
            .number({ error: 'must be a non-negative integer or Infinity' })
            .int('must be an integer or Infinity')
            .min(0, 'must be at least 0'),
        ])
        .default(1_000_000),
      'embedded driver with RETRIEVER_DATA_DIR: collections of this many points or more keep their float32 rows on disk (read on demand, read-only until re-imported) and large imports stream to disk; Infinity keeps everything in memory',
    ),
    RETRIEVER_RESCORE_CANDIDATES: envVar(
      env.positiveInt(128, 4096),
      'embedded driver: approximate-search candidates re-scored in float32 per query (at least 2·k), from the IVF lists or the i8 HNSW graph; more gives higher recall',
    ),
    RETRIEVER_STREAMED_INDEX: envVar(
      z.enum(['ivf', 'hnsw'], { error: 'must be ivf or hnsw' }).default('ivf'),
      'embedded driver: the index a streamed (disk-resident) import builds: ivf (k-means lists of int8 codes, every centroid compared with the query) or hnsw (usearch graph with RETRIEVER_QUANTIZATION)',
    ),
    RETRIEVER_IVF_LISTS: envVar(
      z.coerce
        .number({ error: 'must be an integer from 1 to 65536' })
        .int('must be an integer from 1 to 65536')
        .min(1, 'must be at least 1')
        .max(65_536, 'must be at most 65536')
        .optional(),
      'embedded driver, ivf: lists (k-means centroids) built at import; default √rows (1,803 at 3.25 M)',
    ),
    RETRIEVER_IVF_PROBES: envVar(
      env.positiveInt(32, 65_536),
      'embedded driver, ivf: lists scanned per query (nprobe); more gives higher recall for linear latency',
    ),
    RETRIEVER_SCAN_THREADS: envVar(
      z.coerce
        .number({ error: 'must be an integer from 0 to 64' })
        .int('must be an integer from 0 to 64')
        .min(0, 'must be at least 0')
        .max(64, 'must be at most 64')
        .optional(),
      'embedded driver: worker threads of an exact search, each scanning a share of the rows off the event loop; 0 scans on the serving thread; default the CPU count (at most 8)',
    ),
  };
}

/** What `embeddedStoreEnv` reads, as EmbeddedVectorStore options (without the folder). */
export function embeddedStoreSettings(values: {
  readonly RETRIEVER_QUANTIZATION: 'f32' | 'i8';
  readonly RETRIEVER_EXACT_BELOW: number;
  readonly RETRIEVER_RESIDENT_BELOW: number;
  readonly RETRIEVER_RESCORE_CANDIDATES: number;
  readonly RETRIEVER_SCAN_THREADS?: number | undefined;
  readonly RETRIEVER_STREAMED_INDEX: 'ivf' | 'hnsw';
  readonly RETRIEVER_IVF_LISTS?: number | undefined;
  readonly RETRIEVER_IVF_PROBES: number;
}) {
  return {
    quantization: values.RETRIEVER_QUANTIZATION,
    exactBelow: values.RETRIEVER_EXACT_BELOW,
    residentBelow: values.RETRIEVER_RESIDENT_BELOW,
    hnsw: { rescoreCandidates: values.RETRIEVER_RESCORE_CANDIDATES },
    streamedIndex: values.RETRIEVER_STREAMED_INDEX,
    ivf: {
      probes: values.RETRIEVER_IVF_PROBES,
      rescoreCandidates: values.RETRIEVER_RESCORE_CANDIDATES,
      ...(values.RETRIEVER_IVF_LISTS === undefined ? {} : { lists: values.RETRIEVER_IVF_LISTS }),
    },
    ...(values.RETRIEVER_SCAN_THREADS === undefined ? {} : { scanThreads: values.RETRIEVER_SCAN_THREADS }),
  } as const;
}
