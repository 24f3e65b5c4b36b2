import { Metadata } from '@grpc/grpc-js';
import type { CallContext } from '@imagebind-llm/grpc-kit';
import { listComponents, type PreprocessPoolOptions, type PreprocessRunner } from '@imagebind-llm/inference';
import {
  InferenceMetrics,
  PreprocessMetrics,
  type Logger,
  type PreprocessPoolSnapshot,
  type ServiceMetrics,
} from '@imagebind-llm/observability';
import {
  CACHE_COLLECTION,
  EmbeddedVectorStore,
  type EmbeddedVectorStoreOptions,
} from '@imagebind-llm/vector-store';
import { BindRuntime } from '../bind/bind-runtime';
import { BindServiceImpl } from '../bind/bind.service-impl';
import { BIND_BATCHER_DEFAULTS } from '../bind/host/bind-env.schema';
import { DecoderRuntime } from '../decoder/decoder-runtime';
import { DecoderServiceImpl } from '../decoder/decoder.service-impl';
import { BatchingMetrics } from '../encoder/batching-metrics';
import { EncoderRuntime } from '../encoder/encoder-runtime';
import { EncoderServiceImpl, type EncoderLimits } from '../encoder/encoder.service-impl';
import { ENCODER_MAX_DELAY_MS } from '../encoder/host/encoder-env.schema';
import { ModelSlot } from '../encoder/model-slot';
import { seedCacheFromRepository } from '../retriever/cache-seed';
import { RetrieverServiceImpl } from '../retriever/retriever.service-impl';
import { indexProgressLogger, seedProgressLogger } from '../retriever/seed-progress';
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

/** What the in-process driver needs: plain values, whoever read them (the gateway's env, a CLI's flags). */
export interface LocalBackendsOptions {
  /** The model repository (ARCHITECTURE §4). */
  readonly modelRepo: string;
  /** Where the embedded vector store persists; undefined keeps it in memory. */
  readonly dataDir?: string;
  /** The embedded store's index settings (libs/config `embeddedStoreSettings`). */
  readonly store?: Omit<EmbeddedVectorStoreOptions, 'dir'>;
  /** The encoders' preprocessing: a worker pool's settings, or a runner (the calling thread). */
  readonly preprocessing: PreprocessPoolOptions | PreprocessRunner;
  /** Decoder sequences per step. */
  readonly decoderMaxBatch: number;
  /** Execution provider preference; undefined: each runtime's default. */
  readonly providers?: readonly string[];
  /** The encoders to load (default: every one the repository has; [] for none). */
  readonly modalities?: readonly RoutedModality[];
  /** Request limits of the encoder service; default its own (DEFAULT_ENCODER_LIMITS). */
  readonly encoderLimits?: EncoderLimits;
}

/** What the in-process driver loaded, for a one-shot caller's report (`ibllm generate --json`). */
export interface LocalBackendsInfo {
  /** The execution provider each session runs on first: encoder components, bind, visual, decoder. */
  readonly providers: Readonly<Record<string, string>>;
  /** Where the decoder keeps its KV cache. */
  readonly kvCache: 'host' | 'device';
  /** What the decoder's decode steps run (DecoderRuntime.decodeSteps). */
  readonly decodeSteps: 'step' | 'general';
  /** Points the visual cache holds (0: no knn-cache in the repository and none imported). */
  readonly cachePoints: number;
}

export interface LocalBackends extends PlatformBackends {
  readonly info: LocalBackendsInfo;
}

/** What `createLocalEncoders` needs; `modalities` narrows the encoders loaded (default: all present). */
export interface LocalEncodersOptions extends Pick<
  LocalBackendsOptions,
  'modelRepo' | 'preprocessing' | 'providers'
> {
  readonly modalities?: readonly RoutedModality[];
  readonly metrics?: BatchingMetrics;
  /** Request limits of the encoder service; default its own (DEFAULT_ENCODER_LIMITS). */
  readonly limits?: EncoderLimits;
}

/** The encoder half of the in-process driver: `PlatformBackends.encoder` over EncoderRuntime. */
export interface LocalEncoders extends Pick<PlatformBackends, 'encoder'> {
  /** The modalities encoded here. */
  readonly modalities: readonly RoutedModality[];
  /** The execution provider each loaded encoder component runs on first. */
  readonly providers: Readonly<Record<string, string>>;
  /** The preprocessing pool's state, once it has started (the ibllm_preprocess_* series). */
  preprocessingStats(): PreprocessPoolSnapshot | undefined;
  warmup(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The deployables' batching (encoders wait up to ENCODER_MAX_DELAY_MS for a batch to fill, bind as
 * BIND_BATCHER_DEFAULTS), so a request is batched the same way in both modes and bench/platform
 * compares like with like. One runtime hosts every encoder here, hence one size for all of them.
 */
const LOCAL_ENCODER_BATCHER = {
  maxBatchSize: 16,
  maxQueueDelayMs: ENCODER_MAX_DELAY_MS,
  maxQueueSize: 256,
  maxConcurrentBatches: 1,
};
const LOCAL_BIND_BATCHER = {
  ...LOCAL_ENCODER_BATCHER,
  maxBatchSize: BIND_BATCHER_DEFAULTS.maxBatch,
  maxQueueDelayMs: BIND_BATCHER_DEFAULTS.maxDelayMs,
};

/** The encoder modalities the repository's components provide, in MODALITIES_OF order. */
export function localModalities(repo: string): RoutedModality[] {
  const components = new Set(listComponents(repo).map((c) => c.component));
  return Object.entries(MODALITIES_OF)
    .filter(([component]) => components.has(component))
    .flatMap(([, m]) => m);
}

/** The encoders of `createLocalBackends`, loadable alone (an embedding needs no language model). */
export async function createLocalEncoders(options: LocalEncodersOptions): Promise<LocalEncoders> {
  const modalities = options.modalities ?? localModalities(options.modelRepo);
  const runtime =
    modalities.length === 0
      ? undefined
      : await EncoderRuntime.load(options.modelRepo, modalities, {
          batcher: LOCAL_ENCODER_BATCHER,
          allowSpinning: false,
          ...(options.providers === undefined ? {} : { providers: options.providers }),
          // Decoding and preprocessing on worker threads: /healthz, SSE and other chats never wait on them.
          preprocessing: options.preprocessing,
          ...(options.metrics === undefined
            ? {}
            : { onBatch: (model, event) => options.metrics!.onBatch(model.label, event) }),
        });
  const impl =
    runtime === undefined
      ? undefined
      : new EncoderServiceImpl(ModelSlot.ready(runtime), {
          modalities,
          ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
          ...(options.limits === undefined ? {} : { limits: options.limits }),
        });
  const backend: EncoderBackend | undefined =
    impl === undefined ? undefined : { encode: (req, ctx) => impl.encode(req, local(ctx)) };
  const served = new Set<RoutedModality>(modalities);
  return {
    modalities,
    providers: Object.fromEntries(
      (runtime?.modelInfo() ?? []).map((m) => [m.component, m.executionProvider]),
    ),
    encoder: (modality) => (served.has(modality) ? backend : undefined),
    preprocessingStats: () => runtime?.preprocessingStats(),
    warmup: async () => runtime?.warmup(),
    close: async () => runtime?.close(),
  };
}

/**
 * Standalone mode (ARCHITECTURE §3): the same service implementations the deployables host
 * (libs/serving), called in this process instead of over gRPC, on the embedded vector store with
 * the repository's knn-cache as the visual cache. Same batching, admission and validation.
 */
export async function createLocalBackends(
  options: LocalBackendsOptions,
  logger: Logger,
  metrics: ServiceMetrics,
): Promise<LocalBackends> {
  const repo = options.modelRepo;
  const inference = new InferenceMetrics(metrics);
  const batching = new BatchingMetrics(inference);
  const providers = options.providers === undefined ? {} : { providers: options.providers };
  const store = await EmbeddedVectorStore.open({
    ...(options.dataDir === undefined ? {} : { dir: options.dataDir }),
    ...options.store,
  });
  const [encoders, bind, decoder, seeded] = await Promise.all([
    createLocalEncoders({
      modelRepo: repo,
      preprocessing: options.preprocessing,
      metrics: batching,
      ...providers,
      ...(options.modalities === undefined ? {} : { modalities: options.modalities }),
      ...(options.encoderLimits === undefined ? {} : { limits: options.encoderLimits }),
    }),
    BindRuntime.load(repo, {
      batcher: LOCAL_BIND_BATCHER,
      allowSpinning: false,
      onBatch: (event) => batching.onBatch('bind', event),
      ...providers,
    }),
    DecoderRuntime.load(repo, {
      maxBatch: options.decoderMaxBatch,
      maxWaiting: 64,
      allowSpinning: false,
      logger,
      ...providers,
    }),
    seedCacheFromRepository(store, repo, {
      onProgress: seedProgressLogger((fields) => logger.info(fields, 'seeding the visual cache')),
      onIndexProgress: indexProgressLogger((fields) => logger.info(fields, 'indexing the visual cache')),
    }),
  ]);
  await Promise.all([encoders.warmup(), bind.warmup(), decoder.warmup()]);
  new PreprocessMetrics(metrics, () => encoders.preprocessingStats());
  // cachePoints: what the visual cache holds now (a data dir may hold it from an earlier import);
  // seededPoints: what this start copied in from the repository's knn-cache.
  const cachePoints = (await store.describe(CACHE_COLLECTION))?.count ?? 0;
  logger.info(
    { event: 'standalone.loaded', modalities: encoders.modalities, cachePoints, seededPoints: seeded },
    'standalone services loaded',
  );

  const bindImpl = new BindServiceImpl(ModelSlot.ready(bind), { metrics: batching });
  const decoderImpl = new DecoderServiceImpl(decoder, { metrics: inference });
  const retrieverImpl = new RetrieverServiceImpl(store);
  const decoderProvider = decoder.info.executionProvider;
  return {
    mode: 'standalone',
    info: {
      // The decoder's two graphs (LLaMA and the visual offsets) are loaded together, on one provider list.
      providers: {
        ...encoders.providers,
        bind: bind.info.executionProvider,
        visual: decoderProvider,
        decoder: decoderProvider,
      },
      kvCache: decoder.kvCacheLocation,
      decodeSteps: decoder.decodeSteps,
      cachePoints,
    },
    encoder: (modality) => encoders.encoder(modality),
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
      await Promise.allSettled([encoders.close(), bind.close(), decoder.close()]);
      await store.flush();
      await store.close();
    },
  };
}
