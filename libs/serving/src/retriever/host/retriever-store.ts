import { embeddedStoreSettings } from '@imagebind-llm/config';
import type { Logger } from '@imagebind-llm/observability';
import { EmbeddedVectorStore, type VectorStore } from '@imagebind-llm/vector-store';
import type { HostedRuntime } from '../../host/service-host';
import { seedCacheFromRepository } from '../cache-seed';
import { indexProgressLogger, seedProgressLogger } from '../seed-progress';
import type { RetrieverEnv } from './retriever-env.schema';

/** What the env gives the Qdrant driver (RETRIEVER_DRIVER=qdrant), in its option names. */
export interface QdrantStoreSettings {
  readonly url: string;
  readonly apiKey?: string;
  readonly shardNumber: number;
  readonly replicationFactor: number;
  readonly writeConsistencyFactor: number;
  readonly quantization: 'none' | 'int8';
  readonly onDiskPayload: boolean;
  readonly exactSearch: boolean;
}

/**
 * Opens the Qdrant driver. It stays in services/retriever, the one project that may import
 * @qdrant/* (STYLE.md), so the deployable hands it to the host.
 */
export type OpenQdrant = (settings: QdrantStoreSettings) => VectorStore;

/** The VectorStore RETRIEVER_DRIVER names: Qdrant through `openQdrant`, or the embedded store. */
export async function openRetrieverStore(env: RetrieverEnv, openQdrant: OpenQdrant): Promise<VectorStore> {
  if (env.RETRIEVER_DRIVER === 'qdrant') {
    if (env.QDRANT_URL === undefined) throw new Error('RETRIEVER_DRIVER=qdrant needs QDRANT_URL');
    return openQdrant({
      url: env.QDRANT_URL,
      ...(env.QDRANT_API_KEY === undefined ? {} : { apiKey: env.QDRANT_API_KEY }),
      shardNumber: env.QDRANT_SHARDS,
      replicationFactor: env.QDRANT_REPLICAS,
      writeConsistencyFactor: env.QDRANT_WRITE_CONSISTENCY,
      quantization: env.QDRANT_QUANTIZATION,
      onDiskPayload: env.QDRANT_ON_DISK_PAYLOAD,
      exactSearch: env.QDRANT_EXACT,
    });
  }
  return EmbeddedVectorStore.open({
    ...(env.RETRIEVER_DATA_DIR === undefined ? {} : { dir: env.RETRIEVER_DATA_DIR }),
    ...embeddedStoreSettings(env),
  });
}

/**
 * The retriever's store as its host runs it: warm-up fills the visual cache from the model
 * repository and starts the periodic flush; close stops the flush, then flushes and closes the store.
 */
export class RetrieverStoreRuntime implements HostedRuntime {
  private seeded = 0;
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: VectorStore,
    private readonly env: RetrieverEnv,
    private readonly logger: Logger,
  ) {}

  /**
   * A retriever started like the other model services (MODEL_REPO only) serves the repository's
   * visual cache too, instead of answering every cached chat with "collection does not exist".
   */
  private get seedFrom(): string | undefined {
    return this.env.RETRIEVER_SEED_FROM_REPO ?? this.env.MODEL_REPO;
  }

  async warmup(): Promise<void> {
    const seedFrom = this.seedFrom;
    if (seedFrom !== undefined) {
      this.seeded = await seedCacheFromRepository(this.store, seedFrom, {
        // The real cache takes minutes to stream in: a line every 5 s or 10 % with rate and ETA.
        onProgress: seedProgressLogger((fields) => this.logger.info(fields, 'seeding the visual cache')),
        onIndexProgress: indexProgressLogger((fields) =>
          this.logger.info(fields, 'indexing the visual cache'),
        ),
      });
    }
    this.startPeriodicFlush();
  }

  /** Fields for the `service.ready` line. */
  describe(): Record<string, unknown> {
    const seedFrom = this.seedFrom;
    return {
      driver: this.store.driver,
      seeded: this.seeded,
      ...(seedFrom === undefined ? {} : { seedFrom }),
    };
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    await this.store.flush();
    await this.store.close();
  }

  /**
   * The embedded store writes to disk only when flushed; without this, a killed pod would lose every
   * upsert since the last clean shutdown. Unchanged collections cost nothing (the store tracks
   * versions), and flushes never overlap.
   */
  private startPeriodicFlush(): void {
    if (this.store.driver !== 'embedded' || this.env.RETRIEVER_DATA_DIR === undefined) return;
    if (this.env.RETRIEVER_FLUSH_INTERVAL_MS === 0) return;
    let running = false;
    this.flushTimer = setInterval(() => {
      if (running) return;
      running = true;
      this.store
        .flush()
        .catch((error: unknown) =>
          this.logger.error(
            { event: 'store.flush_failed', err: (error as Error).message },
            'periodic flush failed',
          ),
        )
        .finally(() => {
          running = false;
        });
    }, this.env.RETRIEVER_FLUSH_INTERVAL_MS);
    this.flushTimer.unref();
  }
}
