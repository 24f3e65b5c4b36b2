import { describe, expect, it } from 'vitest';
import { runtimeSettings, sessionSettings, type ModelServiceEnv } from './model-service-env.schema';

describe('runtimeSettings', () => {
  it('reads the batcher and session settings, giving the queue room for a full batch', () => {
    const env = {
      BATCH_MAX_SIZE: 16,
      BATCH_MAX_DELAY_MS: 5,
      BATCH_MAX_QUEUE: 4,
      BATCH_CONCURRENCY: 2,
      EXECUTION_PROVIDERS: ' cuda, ,cpu',
      INTRA_OP_THREADS: 3,
    } as ModelServiceEnv;
    expect(runtimeSettings(env)).toEqual({
      batcher: { maxBatchSize: 16, maxQueueDelayMs: 5, maxQueueSize: 16, maxConcurrentBatches: 2 },
      providers: ['cuda', 'cpu'],
      intraOpThreads: 3,
    });
  });
});

describe('sessionSettings', () => {
  it('reads the provider preference and thread settings of a service without a batcher', () => {
    expect(
      sessionSettings({
        MODEL_REPO: '/models',
        EXECUTION_PROVIDERS: 'webgpu,cpu',
        INTRA_OP_THREADS: 0,
        ORT_ALLOW_SPINNING: true,
      }),
    ).toEqual({ providers: ['webgpu', 'cpu'], intraOpThreads: 0, allowSpinning: true });
  });
});
