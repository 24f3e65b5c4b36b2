import type { TransferReport } from '@imagebind-llm/inference';
import type { InferenceMetrics } from '@imagebind-llm/observability';
import { SERVICE_NAMES, decoderV1 } from '@imagebind-llm/proto';
import { sessionSettings } from '../../host/model-service-env.schema';
import { runService } from '../../host/service-host';
import { DECODER_COMPONENT, DecoderRuntime } from '../decoder-runtime';
import { DecoderServiceImpl } from '../decoder.service-impl';
import { decoderEnvSchema } from './decoder-env.schema';

/**
 * Runs the decoder deployable (services/decoder): DecoderService over the continuously batched
 * decoder. Generate and Tokenize answer UNAVAILABLE until the model has loaded and warmed up; a
 * failed session takes the replica down (ARCHITECTURE §8).
 */
export async function runDecoderService(): Promise<void> {
  await runService('decoder', decoderEnvSchema, (env, deps) => {
    const decoder = new DecoderServiceImpl(undefined, {
      maxNewTokensLimit: env.DECODER_MAX_NEW_TOKENS,
      metrics: deps.inference,
    });
    return {
      register: (server) =>
        server.addService(SERVICE_NAMES.decoder, decoderV1.DecoderServiceService, decoder.handlers()),
      load: async ({ logger, inference }, hooks) =>
        DecoderRuntime.load(env.MODEL_REPO, {
          ...sessionSettings(env),
          maxBatch: env.DECODER_MAX_BATCH,
          kvBudgetPositions: env.DECODER_KV_BUDGET_POSITIONS,
          kvMemoryFraction: env.DECODER_KV_MEMORY_FRACTION,
          maxWaiting: env.DECODER_MAX_WAITING,
          stepGraph: env.DECODER_STEP_GRAPH,
          logger,
          onTransfer: (report) => recordTransfer(inference, report),
          onFatal: (error) =>
            hooks.onFatal(error instanceof Error ? error.message : String(error), {
              fields: { event: 'decoder.fatal' },
              message: 'decoder session failed; exiting so the replica restarts',
            }),
        }),
      attach: (runtime) => decoder.attach(runtime),
      describe: (runtime) => ({
        model: `${runtime.info.name}@${runtime.info.version}`,
        executionProvider: runtime.info.executionProvider,
        kvBudgetPositions: runtime.status().kvBudgetPositions,
      }),
    };
  });
}

/** Bytes between host and session per prefill and decode step: the KV cache must never cross. */
function recordTransfer(metrics: InferenceMetrics, report: TransferReport): void {
  const model = DECODER_COMPONENT;
  metrics.transferBytes.inc({ model, direction: 'to_session', phase: report.phase }, report.toSessionBytes);
  metrics.transferBytes.inc(
    { model, direction: 'from_session', phase: report.phase },
    report.fromSessionBytes,
  );
  if (report.phase === 'decode') {
    metrics.stepTransferBytesPerRow.set(
      { model, direction: 'to_session' },
      report.toSessionBytes / report.rows,
    );
    metrics.stepTransferBytesPerRow.set(
      { model, direction: 'from_session' },
      report.fromSessionBytes / report.rows,
    );
  }
}
