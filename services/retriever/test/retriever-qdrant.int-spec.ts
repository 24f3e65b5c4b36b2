// The retriever process configured for Qdrant purely through its environment (as the chart and
// docker-compose do), against the in-repo stand-in: no Qdrant server can run on the build machines.
import { readNpy } from '@imagebind-llm/checkpoint';
import { resolveComponent } from '@imagebind-llm/inference';
import { goldenModelRepository, startService, type ServiceProcess } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QdrantStandIn } from '../src/qdrant/testing/qdrant-stand-in';

describe('retriever process with RETRIEVER_DRIVER=qdrant', () => {
  let standIn: QdrantStandIn;
  let svc: ServiceProcess;

  beforeAll(async () => {
    standIn = await QdrantStandIn.start({ apiKey: 'qdrant-secret' });
    svc = await startService('retriever', {
      GRPC_PORT: '0',
      HTTP_PORT: '0',
      RETRIEVER_DRIVER: 'qdrant',
      QDRANT_URL: standIn.url,
      QDRANT_API_KEY: 'qdrant-secret',
      QDRANT_SHARDS: '6',
      QDRANT_REPLICAS: '2',
      QDRANT_WRITE_CONSISTENCY: '2',
      QDRANT_QUANTIZATION: 'int8',
      QDRANT_ON_DISK_PAYLOAD: 'false',
      RETRIEVER_SEED_FROM_REPO: goldenModelRepository(),
    });
  }, 60_000);

  afterAll(async () => {
    await svc?.proc.stop('SIGTERM', 20_000);
    await standIn?.close();
  });

  it('creates the cache collection with the distributed settings from env and seeds every row', () => {
    const cache = standIn.collection('visual-cache');
    expect(cache).toBeDefined();
    expect(cache!.created).toMatchObject({
      shard_number: 6,
      replication_factor: 2,
      write_consistency_factor: 2,
      on_disk_payload: false,
      quantization_config: { scalar: { type: 'int8' } },
    });
    const rows = readNpy(resolveComponent(goldenModelRepository(), 'knn-cache').file('vectors')).shape[0]!;
    expect(cache!.points.size).toBe(rows);
    expect(standIn.unexpected).toEqual([]);
  });
});
