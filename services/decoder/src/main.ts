import 'reflect-metadata';
import { loadConfigOrExit } from '@imagebind-llm/config';
import { bootstrapService, createServiceParts } from '@imagebind-llm/grpc-kit';
import { InferenceMetrics } from '@imagebind-llm/observability';
import { DecoderRuntime, DecoderServiceImpl } from '@imagebind-llm/serving';
import { DecoderModule } from './app.module';
import { decoderEnvSchema } from './env.schema';

/** Lets the failing calls send their status before the process goes. */
const FATAL_EXIT_DELAY_MS = 200;

async function main(): Promise<void> {
  const env = loadConfigOrExit('decoder', decoderEnvSchema);
  const { logger, metrics, grpc } = createServiceParts({
    service: 'decoder',
    logLevel: env.LOG_LEVEL,
    host: env.GRPC_HOST,
    port: env.GRPC_PORT,
    maxMessageBytes: env.MAX_MESSAGE_BYTES,
    otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
  });
  // Handlers are registered before the server starts; they answer UNAVAILABLE until the model is attached.
  const inferenceMetrics = new InferenceMetrics(metrics);
  const decoder = new DecoderServiceImpl(undefined, {
    maxNewTokensLimit: env.DECODER_MAX_NEW_TOKENS,
    metrics: inferenceMetrics,
  });
  await bootstrapService({
    service: 'decoder',
    module: DecoderModule.forRoot({ grpc, metrics, shutdownGraceMs: env.SHUTDOWN_GRACE_MS, decoder }),
    grpc,
    logger,
    http: { host: env.HTTP_HOST, port: env.HTTP_PORT },
    warmup: async () => {
      const runtime = await DecoderRuntime.load(env.MODEL_REPO, {
        providers: env.EXECUTION_PROVIDERS.split(','),
        intraOpThreads: env.INTRA_OP_THREADS,
        allowSpinning: env.ORT_ALLOW_SPINNING,
        maxBatch: env.DECODER_MAX_BATCH,
        kvBudgetPositions: env.DECODER_KV_BUDGET_POSITIONS,
        kvMemoryFraction: env.DECODER_KV_MEMORY_FRACTION,
        maxWaiting: env.DECODER_MAX_WAITING,
        logger,
        onTransfer: (r) => {
          const model = 'llama-decoder';
          inferenceMetrics.transferBytes.inc(
            { model, direction: 'to_session', phase: r.phase },
            r.toSessionBytes,
          );
          inferenceMetrics.transferBytes.inc(
            { model, direction: 'from_session', phase: r.phase },
            r.fromSessionBytes,
          );
          if (r.phase === 'decode') {
            inferenceMetrics.stepTransferBytesPerRow.set(
              { model, direction: 'to_session' },
              r.toSessionBytes / r.rows,
            );
            inferenceMetrics.stepTransferBytesPerRow.set(
              { model, direction: 'from_session' },
              r.fromSessionBytes / r.rows,
            );
          }
        },
        // A broken session is fatal (ARCHITECTURE §8): not ready, then exit so the pod restarts.
        onFatal: () => {
          grpc.setReady(false);
          logger.fatal({ event: 'decoder.fatal' }, 'decoder session failed; exiting so the replica restarts');
          setTimeout(() => process.exit(1), FATAL_EXIT_DELAY_MS);
        },
      });
      await runtime.warmup();
      decoder.attach(runtime);
      const { info } = runtime;
      return {
        model: `${info.name}@${info.version}`,
        executionProvider: info.executionProvider,
        kvBudgetPositions: runtime.status().kvBudgetPositions,
      };
    },
  });
}

main().catch((error: unknown) => {
  // One line that says what failed; the orchestrator restarts the pod.
  process.stderr.write(
    `decoder failed to start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
