import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from '@imagebind-llm/config';
import { createLogger, MemoryLog } from '@imagebind-llm/observability';
import { strictFake } from '@imagebind-llm/testing';
import type { VectorStore } from '@imagebind-llm/vector-store';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { retrieverEnvSchema } from './retriever-env.schema';
import { openRetrieverStore, RetrieverStoreRuntime, type QdrantStoreSettings } from './retriever-store';

const envOf = (source: Record<string, string>) => parseEnv('retriever', retrieverEnvSchema, source);

describe('openRetrieverStore', () => {
  it('hands the Qdrant driver the settings its env names', async () => {
    const opened: QdrantStoreSettings[] = [];
    const qdrant = strictFake<VectorStore>('qdrant', { driver: 'qdrant' });
    const env = envOf({
      RETRIEVER_DRIVER: 'qdrant',
      QDRANT_URL: 'http://qdrant:6333',
      QDRANT_SHARDS: '6',
      QDRANT_REPLICAS: '2',
      QDRANT_WRITE_CONSISTENCY: '2',
      QDRANT_QUANTIZATION: 'int8',
      QDRANT_ON_DISK_PAYLOAD: 'false',
      QDRANT_EXACT: 'false',
    });
    const store = await openRetrieverStore(env, (settings) => {
      opened.push(settings);
      return qdrant;
    });
    expect(store).toBe(qdrant);
    // No apiKey key at all when QDRANT_API_KEY is unset.
    expect(opened).toEqual([
      {
        url: 'http://qdrant:6333',
        shardNumber: 6,
        replicationFactor: 2,
        writeConsistencyFactor: 2,
        quantization: 'int8',
        onDiskPayload: false,
        exactSearch: false,
      },
    ]);
    expect('apiKey' in opened[0]!).toBe(false);
  });

  it('refuses the qdrant driver without QDRANT_URL, and opens the embedded store by default', async () => {
    const openQdrant = vi.fn<(settings: QdrantStoreSettings) => VectorStore>();
    await expect(openRetrieverStore(envOf({ RETRIEVER_DRIVER: 'qdrant' }), openQdrant)).rejects.toThrow(
      'RETRIEVER_DRIVER=qdrant needs QDRANT_URL',
    );
    const store = await openRetrieverStore(envOf({}), openQdrant);
    expect(store.driver).toBe('embedded');
    expect(openQdrant).not.toHaveBeenCalled();
    await store.close();
  });
});

describe('RetrieverStoreRuntime', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function fakeStore() {
    const calls: string[] = [];
    const store = strictFake<VectorStore>('store', {
      driver: 'embedded',
      flush: () => {
        calls.push('flush');
        return Promise.resolve();
      },
      close: () => {
        calls.push('close');
        return Promise.resolve();
      },
    });
    return { store, calls };
  }

  const logger = createLogger({ service: 'test', level: 'debug', destination: new MemoryLog() });

  it('flushes an embedded store with a data folder periodically after warm-up, then flushes and closes it', async () => {
    vi.useFakeTimers();
    const { store, calls } = fakeStore();
    const runtime = new RetrieverStoreRuntime(
      store,
      envOf({ RETRIEVER_DATA_DIR: '/data', RETRIEVER_FLUSH_INTERVAL_MS: '100' }),
      logger,
    );
    await runtime.warmup();
    expect(runtime.describe()).toEqual({ driver: 'embedded', seeded: 0 });
    await vi.advanceTimersByTimeAsync(250);
    expect(calls).toEqual(['flush', 'flush']);
    await runtime.close();
    expect(calls).toEqual(['flush', 'flush', 'flush', 'close']);
    // The timer stops with the store.
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toHaveLength(4);
  });

  it('does not flush periodically without a data folder, and seeds from MODEL_REPO when nothing else is named', async () => {
    vi.useFakeTimers();
    const { store, calls } = fakeStore();
    // A repository without a knn-cache component: nothing to seed, but it is where seeding looked.
    const repo = mkdtempSync(join(tmpdir(), 'retriever-repo-'));
    const runtime = new RetrieverStoreRuntime(store, envOf({ MODEL_REPO: repo }), logger);
    await runtime.warmup();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(calls).toEqual([]);
    expect(runtime.describe()).toEqual({ driver: 'embedded', seeded: 0, seedFrom: repo });
  });
});
