import { baseServiceEnv, batcherEnv, modelRepositoryEnv, type EnvOf } from '@imagebind-llm/config';
import type { BatcherSettings } from '../encoder/row-batched-model';

/** The environment every batched model service reads (each adds its own variables). */
export function modelServiceEnv(defaults: {
  grpcPort: number;
  httpPort: number;
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
}) {
  return {
    ...baseServiceEnv({ grpcPort: defaults.grpcPort, httpPort: defaults.httpPort }),
    ...modelRepositoryEnv(),
    ...batcherEnv({
      maxBatch: defaults.maxBatch,
      maxDelayMs: defaults.maxDelayMs,
      maxQueue: defaults.maxQueue,
    }),
  };
}

export type ModelServiceEnv = EnvOf<ReturnType<typeof modelServiceEnv>>;

/** What modelRepositoryEnv reads: the repository and the session options. */
export type ModelRepositoryEnv = EnvOf<ReturnType<typeof modelRepositoryEnv>>;

/** The session options an env gives (every service that runs a model, batched or not). */
export function sessionSettings(env: ModelRepositoryEnv): {
  providers: string[];
  intraOpThreads: number;
  allowSpinning: boolean;
} {
  return {
    providers: env.EXECUTION_PROVIDERS.split(',')
      .map((p) => p.trim())
      .filter((p) => p !== ''),
    intraOpThreads: env.INTRA_OP_THREADS,
    allowSpinning: env.ORT_ALLOW_SPINNING,
  };
}

/** The batcher settings and session options an env gives. */
export function runtimeSettings(env: ModelServiceEnv): {
  batcher: BatcherSettings;
  providers: string[];
  intraOpThreads: number;
  allowSpinning: boolean;
} {
  return {
    batcher: {
      maxBatchSize: env.BATCH_MAX_SIZE,
      maxQueueDelayMs: env.BATCH_MAX_DELAY_MS,
      // The batcher needs room for at least one full batch.
      maxQueueSize: Math.max(env.BATCH_MAX_QUEUE, env.BATCH_MAX_SIZE),
      maxConcurrentBatches: env.BATCH_CONCURRENCY,
    },
    ...sessionSettings(env),
  };
}
