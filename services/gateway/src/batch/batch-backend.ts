import type { MediaSourcePolicy } from '@imagebind-llm/media-source';
import { registerQueueJobsGauge, type Logger, type ServiceMetrics } from '@imagebind-llm/observability';
import { BATCH_QUEUE, BatchJobStore, BatchQueue, createRedis, waitForReady } from '@imagebind-llm/queue';
import type { GatewayEnv } from '../env.schema';
import { BatchJobsService } from './batch-jobs.service';

/** The batch API's Redis-backed parts; undefined when GATEWAY_REDIS_URL is unset. */
export interface BatchBackend {
  readonly service: BatchJobsService;
  close(): Promise<void>;
}

/** The media rules for URIs in batch manifests (issue #6: allow-listed https, files under a root). */
export function batchMediaPolicy(env: GatewayEnv): MediaSourcePolicy {
  return {
    allowedHosts: env.GATEWAY_FETCH_ALLOWED_HOSTS,
    ...(env.GATEWAY_BATCH_FILE_ROOT === undefined ? {} : { fileRoot: env.GATEWAY_BATCH_FILE_ROOT }),
    ...(env.GATEWAY_BATCH_OBJECT_STORE_ENDPOINT === undefined
      ? {}
      : {
          objectStore: {
            scheme: 's3' as const,
            endpoint: env.GATEWAY_BATCH_OBJECT_STORE_ENDPOINT,
            buckets: env.GATEWAY_BATCH_OBJECT_STORE_BUCKETS,
          },
        }),
    maxBytes: env.GATEWAY_MAX_INPUT_BYTES,
    timeoutMs: env.GATEWAY_FETCH_TIMEOUT_MS,
  };
}

export async function createBatchBackend(
  env: GatewayEnv,
  logger: Logger,
  metrics: ServiceMetrics,
): Promise<BatchBackend | undefined> {
  if (env.GATEWAY_REDIS_URL === undefined) return undefined;
  const redis = createRedis(env.GATEWAY_REDIS_URL, 'producer', (error) =>
    logger.warn({ event: 'redis.error', err: error.message }, 'Redis connection error; reconnecting'),
  );
  await waitForReady(redis);
  const store = new BatchJobStore(redis, {
    prefix: `${env.GATEWAY_QUEUE_PREFIX}:batch:`,
    retentionS: env.GATEWAY_BATCH_RETENTION_S,
  });
  const queue = new BatchQueue({ connection: redis, prefix: env.GATEWAY_QUEUE_PREFIX });
  registerQueueJobsGauge(metrics, BATCH_QUEUE, async () => queue.counts());
  const service = new BatchJobsService(
    store,
    queue,
    {
      maxInputs: env.GATEWAY_MAX_INPUTS,
      maxInputBytes: env.GATEWAY_MAX_INPUT_BYTES,
      maxItems: env.GATEWAY_BATCH_MAX_ITEMS,
      maxManifestBytes: env.GATEWAY_MAX_BODY_BYTES,
      maxActiveJobs: env.GATEWAY_BATCH_MAX_ACTIVE_JOBS,
    },
    batchMediaPolicy(env),
    { attempts: env.GATEWAY_BATCH_ATTEMPTS, backoffMs: 500, chunkItems: env.GATEWAY_BATCH_CHUNK_ITEMS },
  );
  return {
    service,
    close: async () => {
      await queue.close();
      redis.disconnect();
    },
  };
}
