import { availableParallelism } from 'node:os';
import { preprocessPoolSettings } from '@imagebind-llm/config';
import { SERVICE_NAMES, encoderV1 } from '@imagebind-llm/proto';
import { mediaNativeStatus, type InputModality } from '@imagebind-llm/inference';
import { runtimeSettings } from '../../host/model-service-env.schema';
import { runService } from '../../host/service-host';
import { EncoderRuntime } from '../encoder-runtime';
import { EncoderServiceImpl } from '../encoder.service-impl';
import { encoderEnvSchema, type EncoderEnvDefaults } from './encoder-env.schema';

export interface EncoderServiceDefinition extends EncoderEnvDefaults {
  /** Process and metrics name, e.g. `encoder-vision`. */
  readonly service: string;
  /** What this deployable encodes, e.g. ['image', 'video']. */
  readonly modalities: readonly InputModality[];
}

/**
 * Runs one encoder deployable. The four encoder services differ only in the definition they pass:
 * name, modalities, default ports and batch sizes.
 */
export async function runEncoderService(definition: EncoderServiceDefinition): Promise<void> {
  await runService(definition.service, encoderEnvSchema(definition), (env) => {
    const settings = runtimeSettings(env);
    const limits = { maxInputs: env.ENCODER_MAX_INPUTS, maxInputBytes: env.ENCODER_MAX_INPUT_BYTES };
    return {
      load: async (_deps, hooks) =>
        EncoderRuntime.load(env.MODEL_REPO, definition.modalities, {
          ...settings,
          preprocessConcurrency:
            env.PREPROCESS_CONCURRENCY === 0 ? availableParallelism() : env.PREPROCESS_CONCURRENCY,
          // Decoding and preprocessing run on worker threads, never on the gRPC event loop.
          preprocessing: preprocessPoolSettings(env, availableParallelism()),
          onBatch: (model, event) => hooks.onBatch(model.label, event),
          onQueueChange: () => hooks.onQueueChange(),
        }),
      register: (server, slot, deps) => {
        const impl = new EncoderServiceImpl(slot, {
          modalities: definition.modalities,
          limits,
          metrics: deps.batching,
        });
        server.addService(SERVICE_NAMES.encoder, encoderV1.EncoderServiceService, impl.handlers());
      },
      preprocessing: (runtime) => runtime.preprocessingStats(),
      queueDepth: (runtime) =>
        runtime.stats().map(({ model, stats }) => ({ label: model.label, queuedUnits: stats.queuedUnits })),
      describe: (runtime) => ({
        models: runtime.modelInfo().map((m) => ({
          model: m.label,
          version: m.version,
          executionProvider: m.executionProvider,
        })),
        batch: settings.batcher,
        // Which preprocessing paths run in C (the ibllm_media addon) and, when not, why.
        mediaNative: mediaNativeStatus(),
      }),
    };
  });
}
