import { availableParallelism } from 'node:os';
import { Metadata } from '@grpc/grpc-js';
import { embeddedStoreSettings, preprocessPoolSettings } from '@imagebind-llm/config';
import type { CallContext } from '@imagebind-llm/grpc-kit';
import { listComponents } from '@imagebind-llm/inference';
import { InferenceMetrics, type Logger, type ServiceMetrics } from '@imagebind-llm/observability';
import {
  BatchingMetrics,
  BindRuntime,
  BindServiceImpl,
  DecoderRuntime,
  DecoderServiceImpl,
  EncoderRuntime,
  EncoderServiceImpl,
  ModelSlot,
  RetrieverServiceImpl,
  seedCacheFromRepository,
  seedProgressLogger,
} from '@imagebind-llm/serving';
import { CACHE_COLLECTION, EmbeddedVectorStore } from '@imagebind-llm/vector-store';
import type { GatewayEnv } from '../env.schema';
import type { EncoderBackend, HopContext, PlatformBackends, RoutedModality } from './backends.port';

/** The encoder modalities a repository's components provide (ARCHITECTURE §4). */
const MODALITIES_OF: Readonly<Record<string, readonly RoutedModality[]>> = {
  'imagebind-vision': ['image', 'video'],
  'imagebind-audio': ['audio'],
  'imagebind-text': ['text'],
  'imagebind-point': ['point'],
};

/** Handlers take a full CallContext; in process there is no peer and no wire metadata. */
function local(ctx: HopContext): CallContext {
  return {
    method: ctx.method ?? 'in-process',
    metadata: ctx.metadata ?? new Metadata(),
    peer: ctx.peer ?? 'in-process',
    requestId: ctx.requestId,
    logger: ctx.logger,
    deadline: ctx.deadline,
    signal: ctx.signal,
  };
}

/**
 * Standalone mode (ARCHITECTURE §3): the same service implementations the deployables host
 * (libs/serving), called in this process instead of over gRPC, on the embedded vector store with
 * the repository's knn-cache as the visual cache. Same batching, admission and validation.
 */
export async function createLocalBackends(
  env: GatewayEnv,
  logger: Logger,
  metrics: ServiceMetrics,
): Promise<PlatformBackends> {
  const repo = env.GATEWAY_MODEL_REPO!;
  const inference = new InferenceMetrics(metrics);
  const batching = new BatchingMetrics(inference);
  // The deployables' defaults (encoders wait up to 5 ms for a batch to fill, bind 2 ms), so a
  // request is batched the same way in both modes and bench/platform compares like with like.
  const batcher = { maxBatchSize: 16, maxQueueDelayMs: 5, maxQueueSize: 256, maxConcurrentBatches: 1 };
  const bindBatcher = { ...batcher, maxBatchSize: 64, maxQueueDelayMs: 2 };
  const components = new Set(listComponents(repo).map((c) => c.component));
  const modalities = Object.entries(MODALITIES_OF)
    .filter(([component]) => components.has(component))
    .flatMap(([, m]) => m);
  const store = await EmbeddedVectorStore.open({
    ...(env.GATEWAY_DATA_DIR === undefined ? {} : { dir: env.GATEWAY_DATA_DIR }),
    ...embeddedStoreSettings(env),
  });
  const [encoders, bind, decoder, seeded] = await Promise.all([
    modalities.length === 0
      ? Promise.resolve(undefined)
      : EncoderRuntime.load(repo, modalities, {
          batcher,
          allowSpinning: false,
          // Decoding and preprocessing on worker threads: /healthz, SSE and other chats never wait on them.
          preprocessing: preprocessPoolSettings(env, availableParallelism()),
          onBatch: (model, event) => batching.onBatch(model.label, event),
        }),
    BindRuntime.load(repo, {
      batcher: bindBatcher,
      allowSpinning: false,
      onBatch: (event) => batching.onBatch('bind', event),
    }),
    DecoderRuntime.load(repo, {
      maxBatch: env.STANDALONE_DECODER_MAX_BATCH,
      maxWaiting: 64,
      allowSpinning: false,
      logger,
    }),
    seedCacheFromRepository(store, repo, {
      onProgress: seedProgressLogger((fields) => logger.info(fields, 'seeding the visual cache')),
    }),
  ]);
  await Promise.all([encoders?.warmup(), bind.warmup(), decoder.warmup()]);
  // cachePoints: what the visual cache holds now (a data dir may hold it from an earlier import);
  // seededPoints: what this start copied in from the repository's knn-cache.
  const cachePoints = (await store.describe(CACHE_COLLECTION))?.count ?? 0;
  logger.info(
    { event: 'standalone.loaded', modalities, cachePoints, seededPoints: seeded },
    'standalone services loaded',
  );

  const encoderImpl =
    encoders === undefined
      ? undefined
      : new EncoderServiceImpl(ModelSlot.ready(encoders), { modalities, metrics: batching });
  const encoderBackend: EncoderBackend | undefined =
    encoderImpl === undefined ? undefined : { encode: (req, ctx) => encoderImpl.encode(req, local(ctx)) };
  const bindImpl = new BindServiceImpl(ModelSlot.ready(bind), { metrics: batching });
  const decoderImpl = new DecoderServiceImpl(decoder, { metrics: inference });
  const retrieverImpl = new RetrieverServiceImpl(store);
  const served = new Set<RoutedModality>(modalities);
  return {
    mode: 'standalone',
    encoder: (modality) => (served.has(modality) ? encoderBackend : undefined),
    retriever: {
      search: (req, ctx) => retrieverImpl.search(req, ctx),
      getCollection: (req) => retrieverImpl.getCollection(req),
    },
    bind: { project: (req, ctx) => bindImpl.project(req, ctx) },
    decoder: {
      tokenize: (req) => Promise.resolve().then(() => decoderImpl.tokenize(req)),
      generate: (req, ctx) => decoderImpl.generate(req, local(ctx)),
      getModelStatus: () => Promise.resolve().then(() => decoderImpl.modelStatus()),
    },
    close: async () => {
      await Promise.allSettled([encoders?.close(), bind.close(), decoder.close()]);
      await store.flush();
      await store.close();
    },
  };
}
