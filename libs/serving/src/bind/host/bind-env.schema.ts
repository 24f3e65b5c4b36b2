import { env, envVar } from '@imagebind-llm/config';
import { modelServiceEnv } from '../../host/model-service-env.schema';
import { DEFAULT_BIND_MAX_ROWS } from '../bind.service-impl';

/** The bind service's batcher defaults; standalone mode batches its bind calls the same way. */
export const BIND_BATCHER_DEFAULTS = { maxBatch: 64, maxDelayMs: 2, maxQueue: 1024 } as const;

/** Every setting of the bind service. */
export const bindEnvSchema = {
  ...modelServiceEnv({ grpcPort: 50081, httpPort: 9081, ...BIND_BATCHER_DEFAULTS }),
  BIND_MAX_ROWS: envVar(
    env.positiveInt(DEFAULT_BIND_MAX_ROWS, 65_536),
    'most query rows one Project request may carry; more get RESOURCE_EXHAUSTED',
  ),
};
