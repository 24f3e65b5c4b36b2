import 'reflect-metadata';
import { embeddedStoreSettings, loadConfigOrExit } from '@imagebind-llm/config';
import { bootstrapService, createServiceParts } from '@imagebind-llm/grpc-kit';
import type { Logger } from '@imagebind-llm/observability';
import { RetrieverServiceImpl, seedCacheFromRepository, seedProgressLogger } from '@imagebind-llm/serving';
import { EmbeddedVectorStore, type VectorStore } from '@imagebind-llm/vector-store';
import { RetrieverModule } from './app.module';
import { retrieverEnvSchema, type RetrieverEnv } from './env.schema';
import { QdrantVectorStore } from './qdrant/qdrant.driver';

async function openStore(env: RetrieverEnv): Promise<VectorStore> {
  if (env.RETRIEVER_DRIVER === 'qdrant') {
    if (env.QDRANT_URL === undefined) throw new Error('RETRIEVER_DRIVER=qdrant needs QDRANT_URL');
    return new QdrantVectorStore({
      url: env.QDRANT_URL,
      ...(env.QDRANT_API_KEY === undefined ? {} : { apiKey: env.QDRANT_API_KEY }),
      shardNumber: env.QDRANT_SHARDS,
      replicationFactor: env.QDRANT_REPLICAS,
      writeConsistencyFactor: env.QDRANT_WRITE_CONSISTENCY,
      quantization: env.QDRANT_QUANTIZATION,
      onDiskPayload: env.QDRANT_ON_DISK_PAYLOAD,
      exactSearch: env.QDRANT_EXACT,
    });
  }
  return EmbeddedVectorStore.open({
    ...(env.RETRIEVER_DATA_DIR === undefined ? {} : { dir: env.RETRIEVER_DATA_DIR }),
    ...embeddedStoreSettings(env),
  });
}

/**
 * The embedded store writes to disk only when flushed; without this, a killed pod would lose every
 * upsert since the last clean shutdown. Unchanged collections cost nothing (the store tracks
 * versions), and flushes never overlap.
 */
function startPeriodicFlush(env: RetrieverEnv, store: VectorStore, logger: Logger): void {
  if (store.driver !== 'embedded' || env.RETRIEVER_DATA_DIR === undefined) return;
  if (env.RETRIEVER_FLUSH_INTERVAL_MS === 0) return;
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    store
      .flush()
      .catch((error: unknown) =>
        logger.error({ event: 'store.flush_failed', err: (error as Error).message }, 'periodic flush failed'),
      )
      .finally(() => {
        running = false;
      });
  }, env.RETRIEVER_FLUSH_INTERVAL_MS);
  timer.unref();
}

async function main(): Promise<void> {
  const env = loadConfigOrExit('retriever', retrieverEnvSchema);
  const { logger, metrics, grpc } = createServiceParts({
    service: 'retriever',
    logLevel: env.LOG_LEVEL,
    host: env.GRPC_HOST,
    port: env.GRPC_PORT,
    maxMessageBytes: env.MAX_MESSAGE_BYTES,
    otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
  });
  const store = await openStore(env);
  const retriever = new RetrieverServiceImpl(store, {
    ...(env.RETRIEVER_IMPORT_ROOT === undefined ? {} : { importRoot: env.RETRIEVER_IMPORT_ROOT }),
  });
  await bootstrapService({
    service: 'retriever',
    module: RetrieverModule.forRoot({ grpc, metrics, shutdownGraceMs: env.SHUTDOWN_GRACE_MS, retriever }),
    grpc,
    logger,
    http: { host: env.HTTP_HOST, port: env.HTTP_PORT },
    warmup: async () => {
      // A retriever started like the other model services (MODEL_REPO only) serves the repository's
      // visual cache too, instead of answering every cached chat with "collection does not exist".
      const seedFrom = env.RETRIEVER_SEED_FROM_REPO ?? env.MODEL_REPO;
      const seeded =
        seedFrom === undefined
          ? 0
          : await seedCacheFromRepository(store, seedFrom, {
              // The real cache takes minutes to stream in: a line every 5 s or 10 % with rate and ETA.
              onProgress: seedProgressLogger((fields) => logger.info(fields, 'seeding the visual cache')),
            });
      startPeriodicFlush(env, store, logger);
      return { driver: store.driver, seeded, ...(seedFrom === undefined ? {} : { seedFrom }) };
    },
  });
}

main().catch((error: unknown) => {
  // One line that says what failed; the orchestrator restarts the pod.
  process.stderr.write(
    `retriever failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
