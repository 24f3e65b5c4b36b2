import { baseServiceEnv, env, envVar, modelRepositoryEnv, type EnvOf } from '@imagebind-llm/config';
import { GENERATION_LIMITS } from '@imagebind-llm/domain';

/** Every setting of the decoder service (services/decoder). Nothing else in it reads process.env. */
export const decoderEnvSchema = {
  ...baseServiceEnv({ grpcPort: 50061, httpPort: 9061 }),
  ...modelRepositoryEnv(),
  DECODER_MAX_BATCH: envVar(
    env.positiveInt(16, 1024),
    'sequences decoded together in one step (continuous batching); more wait for a free slot',
  ),
  DECODER_KV_BUDGET_POSITIONS: envVar(
    env.nonNegativeInt(0, 100_000_000),
    'KV-cache positions all running sequences may reserve together (each reserves prompt + max_new_tokens, ' +
      'at most the 512-token context); 0 = DECODER_MAX_BATCH × context length, cut to DECODER_KV_MEMORY_FRACTION',
  ),
  DECODER_KV_MEMORY_FRACTION: envVar(
    env.fraction(0.6),
    'with DECODER_KV_BUDGET_POSITIONS=0: share of the memory available after the weights load (cgroup ' +
      'limit included) the KV cache may fill; the budget is cut to it (0 = no cut)',
  ),
  DECODER_MAX_WAITING: envVar(
    env.nonNegativeInt(64, 1_000_000),
    'requests that may wait for KV room or a slot; beyond it new requests get RESOURCE_EXHAUSTED at once',
  ),
  DECODER_STEP_GRAPH: envVar(
    env.boolean(true),
    'on a GPU provider, run decode steps through model.step.onnx (the attention fused, the KV cache ' +
      'written in place): faster, but a second session holds the weights on the device again; false keeps ' +
      'one copy (every step then runs model.onnx)',
  ),
  DECODER_MAX_NEW_TOKENS: envVar(
    env.positiveInt(GENERATION_LIMITS.maxNewTokens.max, 1_000_000),
    'largest stopping.max_new_tokens a request may ask for (the context limit applies as well)',
  ),
};

export type DecoderEnv = EnvOf<typeof decoderEnvSchema>;
