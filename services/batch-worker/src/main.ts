import 'reflect-metadata';
import { describeError, isTransient, ItemProcessor, sdkPlatformApi } from '@imagebind-llm/batch-items';
import { ImageBindClient } from '@imagebind-llm/client';
import { loadConfigOrExit } from '@imagebind-llm/config';
import { registerQueueJobsGauge } from '@imagebind-llm/observability';
import { bootstrapService, createClient, createServiceParts } from '@imagebind-llm/grpc-kit';
import { retrieverV1 } from '@imagebind-llm/proto';
import {
  BATCH_QUEUE,
  BatchJobStore,
  BatchQueue,
  checkRedisForQueues,
  createRedis,
  startBatchWorker,
  waitForReady,
} from '@imagebind-llm/queue';
import { BatchWorkerModule, type Closable } from './app.module';
import { batchWorkerEnvSchema } from './env.schema';

async function main(): Promise<void> {
  const env = loadConfigOrExit('batch-worker', batchWorkerEnvSchema);
  const { logger, metrics, grpc } = createServiceParts({
    service: 'batch-worker',
    logLevel: env.LOG_LEVEL,
    host: env.GRPC_HOST,
    port: env.GRPC_PORT,
    maxMessageBytes: env.MAX_MESSAGE_BYTES,
    otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
  });
  const holder: { worker?: Closable } = {};
  await bootstrapService({
    service: 'batch-worker',
    module: BatchWorkerModule.forRoot({ grpc, metrics, shutdownGraceMs: env.SHUTDOWN_GRACE_MS, holder }),
    grpc,
    logger,
    http: { host: env.HTTP_HOST, port: env.HTTP_PORT },
    warmup: async () => {
      const redis = createRedis(env.REDIS_URL, 'worker', (error) =>
        logger.warn({ event: 'redis.error', err: error.message }, 'Redis connection error; reconnecting'),
      );
      await waitForReady(redis);
      const check = await checkRedisForQueues(redis);
      if (check.warning !== undefined) logger.warn({ event: 'redis.policy' }, check.warning);
      if (env.GATEWAY_API_KEY === undefined) {
        // The gateway then counts every item against its anonymous tenant, the bucket a user on
        // loopback shares: a big job starves them and its items fail with RESOURCE_EXHAUSTED.
        logger.warn(
          { event: 'batch.worker.anonymous' },
          "GATEWAY_API_KEY is unset: items run as the gateway's anonymous tenant and share its rate limit; give the worker its own key (GATEWAY_API_KEYS batch-worker:KEY, GATEWAY_RATE_LIMIT_OVERRIDES batch-worker:60000:2000), or use the standalone gateway's in-process worker",
        );
      }
      const gateway = new ImageBindClient({
        addresses: env.GATEWAY_TARGET.split(','),
        ...(env.GATEWAY_API_KEY === undefined ? {} : { apiKey: env.GATEWAY_API_KEY }),
        timeoutMs: env.ITEM_TIMEOUT_MS,
      });
      const retriever =
        env.RETRIEVER_TARGET === undefined
          ? undefined
          : createClient(retrieverV1.RetrieverServiceClient, env.RETRIEVER_TARGET);
      const processor = new ItemProcessor(
        sdkPlatformApi(gateway, { maxRequests: env.EMBED_MANY_REQUESTS }),
        retriever,
        {
          allowedHosts:
            env.FETCH_ALLOWED_HOSTS === '-' ? [] : env.FETCH_ALLOWED_HOSTS.split(',').map((h) => h.trim()),
          ...(env.BATCH_FILE_ROOT === undefined ? {} : { fileRoot: env.BATCH_FILE_ROOT }),
          ...(env.OBJECT_STORE_ENDPOINT === undefined
            ? {}
            : {
                objectStore: {
                  scheme: 's3' as const,
                  endpoint: env.OBJECT_STORE_ENDPOINT,
                  buckets:
                    env.OBJECT_STORE_BUCKETS === '-'
                      ? []
                      : env.OBJECT_STORE_BUCKETS.split(',').map((b) => b.trim()),
                },
              }),
          maxBytes: env.MAX_ITEM_BYTES,
          timeoutMs: 30_000,
        },
        env.ITEM_TIMEOUT_MS,
      );
      const store = new BatchJobStore(redis, { prefix: `${env.QUEUE_PREFIX}:batch:` });
      // The backlog gauge KEDA scales on; the gateway exports the same series.
      const counter = new BatchQueue({ connection: redis, prefix: env.QUEUE_PREFIX });
      registerQueueJobsGauge(metrics, BATCH_QUEUE, async () => counter.counts());
      const worker = await startBatchWorker({
        connection: redis,
        prefix: env.QUEUE_PREFIX,
        store,
        concurrency: env.WORKER_CONCURRENCY,
        processItem: async (ctx) => processor.process(ctx),
        isTransient,
        describeError,
        logger,
      });
      holder.worker = {
        close: async () => {
          await worker.close();
          await counter.close();
          gateway.close();
          retriever?.close();
          redis.disconnect();
        },
      };
      return { concurrency: env.WORKER_CONCURRENCY, redis: env.REDIS_URL.replace(/\/\/[^@]*@/, '//***@') };
    },
  });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `batch-worker failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
