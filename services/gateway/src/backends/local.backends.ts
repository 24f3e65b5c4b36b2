import { availableParallelism } from 'node:os';
import { embeddedStoreSettings, preprocessPoolSettings } from '@imagebind-llm/config';
import type { Logger, ServiceMetrics } from '@imagebind-llm/observability';
import { createLocalBackends } from '@imagebind-llm/serving';
import type { PlatformBackends } from '@imagebind-llm/serving/platform';
import type { GatewayEnv } from '../env.schema';

/**
 * Standalone mode's backends (libs/serving `createLocalBackends`) with the gateway's settings.
 * main.ts loads this module only in standalone mode: the distributed gateway never loads onnxruntime.
 */
export async function createStandaloneBackends(
  env: GatewayEnv & { GATEWAY_MODEL_REPO: string },
  logger: Logger,
  metrics: ServiceMetrics,
): Promise<PlatformBackends> {
  return createLocalBackends(
    {
      modelRepo: env.GATEWAY_MODEL_REPO,
      ...(env.GATEWAY_DATA_DIR === undefined ? {} : { dataDir: env.GATEWAY_DATA_DIR }),
      store: embeddedStoreSettings(env),
      preprocessing: preprocessPoolSettings(env, availableParallelism()),
      decoderMaxBatch: env.STANDALONE_DECODER_MAX_BATCH,
    },
    logger,
    metrics,
  );
}
