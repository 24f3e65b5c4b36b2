// The retriever as a real process: cache seeded from the model repository, exact search in faiss
// order, faiss import under a root with traversal refused, persistence across a restart.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { readNpy } from '@imagebind-llm/checkpoint';
import { topKInnerProduct } from '@imagebind-llm/domain';
import { type DomainError } from '@imagebind-llm/errors';
import { callServerStream, callUnary, createClient, float32Tensor } from '@imagebind-llm/grpc-kit';
import { resolveComponent } from '@imagebind-llm/inference';
import { retrieverV1 } from '@imagebind-llm/proto';
import { goldenDir, goldenModelRepository, startService, type ServiceProcess } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** One query's hits as [id, payload] pairs. */
async function hitsWithPayloads(
  client: retrieverV1.RetrieverServiceClient,
  collection: string,
  query: readonly number[],
  k: number,
): Promise<[number, Record<string, string>][]> {
  const res = await callUnary(client.search.bind(client), {
    collection,
    queries: float32Tensor(Float32Array.from(query), [1, query.length]),
    k,
    includeVectors: false,
    includePayloads: true,
  });
  return res.results[0]!.hits.map((h) => [h.id, h.payload]);
}

describe('retriever process', () => {
  let svc: ServiceProcess;
  let client: retrieverV1.RetrieverServiceClient;
  let vectors: Float32Array;
  let dim: number;
  const dataDir = mkdtempSync(join(tmpdir(), 'retriever-data-'));

  beforeAll(async () => {
    const repo = goldenModelRepository();
    const npy = readNpy(resolveComponent(repo, 'knn-cache').file('vectors'));
    dim = npy.shape[1]!;
    vectors = new Float32Array(npy.data.buffer, npy.data.byteOffset, npy.shape[0]! * dim);
    svc = await startService('retriever', {
      GRPC_PORT: '0',
      HTTP_PORT: '0',
      RETRIEVER_SEED_FROM_REPO: repo,
      RETRIEVER_IMPORT_ROOT: goldenDir(),
      RETRIEVER_DATA_DIR: dataDir,
    });
    client = createClient(retrieverV1.RetrieverServiceClient, svc.grpcAddress);
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await svc?.proc.stop('SIGKILL');
  });

  it('is seeded from the repository knn-cache and searches exactly, in faiss order', async () => {
    const info = await callUnary(client.getCollection.bind(client), { collection: '' });
    expect(info).toMatchObject({ collection: 'visual-cache', dimension: dim, driver: 'embedded' });
    expect(info.count).toBe(vectors.length / dim);
    const q = vectors.slice(3 * dim, 4 * dim);
    const res = await callUnary(client.search.bind(client), {
      collection: '',
      queries: float32Tensor(q, [1, dim]),
      k: 5,
      includeVectors: true,
      includePayloads: false,
    });
    const expected = topKInnerProduct(vectors, dim, q, 5);
    const hits = res.results[0]!.hits;
    expect(hits.map((h) => h.id)).toEqual(expected.map((e) => e.id));
    expect(hits.map((h) => h.score)).toEqual(expected.map((e) => Math.fround(e.score)));
    expect(hits[0]!.vector).toEqual(Array.from(q));
  });

  it('imports a faiss index from under its import root, streaming progress', async () => {
    const messages: retrieverV1.ImportIndexResponse[] = [];
    for await (const m of callServerStream(client.importIndex.bind(client), {
      collection: 'imported',
      sourcePath: 'knn.index',
      replace: true,
    })) {
      messages.push(m);
    }
    const last = messages.at(-1)!;
    expect(last.done).toBe(true);
    expect(last.imported).toBe(vectors.length / dim);
    expect(last.indexType).toMatch(/IxFI|IndexFlatIP/);
  });

  it.each(['../golden/knn.index', '/etc/passwd', 'file:///etc/passwd', 'sub/../../x'])(
    'refuses import path %s with INVALID_ARGUMENT',
    async (sourcePath) => {
      const error = await (async () => {
        try {
          for await (const _ of callServerStream(client.importIndex.bind(client), {
            collection: 'x',
            sourcePath,
            replace: false,
          })) {
            // no progress expected
          }
        } catch (e) {
          return e as DomainError;
        }
        return undefined;
      })();
      // The status the retriever answered on the wire, under the DomainError the client made of it.
      expect((error?.cause as ServiceError | undefined)?.code).toBe(status.INVALID_ARGUMENT);
    },
  );

  it('keeps upserted points across a restart (embedded store persisted to RETRIEVER_DATA_DIR)', async () => {
    await callUnary(client.upsert.bind(client), {
      collection: 'notes',
      points: [
        { id: 7, vector: [1, 0, 0, 0], payload: { uri: 's3://b/7.jpg' } },
        { id: 9, vector: [0, 1, 0, 0], payload: {} },
      ],
    });
    client.close();
    expect(await svc.proc.stop('SIGTERM', 20_000)).toEqual({ code: 0, signal: null });
    svc = await startService('retriever', { GRPC_PORT: '0', HTTP_PORT: '0', RETRIEVER_DATA_DIR: dataDir });
    client = createClient(retrieverV1.RetrieverServiceClient, svc.grpcAddress);
    expect(await hitsWithPayloads(client, 'notes', [0.9, 0.1, 0, 0], 2)).toEqual([
      [7, { uri: 's3://b/7.jpg' }],
      [9, {}],
    ]);
  }, 60_000);

  it('bounds what a crash loses: the periodic flush has written upserts before a kill -9', async () => {
    const crashDir = mkdtempSync(join(tmpdir(), 'retriever-crash-'));
    const env = { GRPC_PORT: '0', HTTP_PORT: '0', RETRIEVER_DATA_DIR: crashDir };
    let crashing = await startService('retriever', { ...env, RETRIEVER_FLUSH_INTERVAL_MS: '200' });
    let c = createClient(retrieverV1.RetrieverServiceClient, crashing.grpcAddress);
    try {
      await callUnary(c.upsert.bind(c), {
        collection: 'crash',
        points: [{ id: 11, vector: [0, 0, 1, 0], payload: { note: 'kept' } }],
      });
      // Several flush periods, then no clean shutdown at all.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      c.close();
      expect((await crashing.proc.stop('SIGKILL')).signal).toBe('SIGKILL');
      crashing = await startService('retriever', env);
      c = createClient(retrieverV1.RetrieverServiceClient, crashing.grpcAddress);
      expect(await hitsWithPayloads(c, 'crash', [0, 0, 1, 0], 1)).toEqual([[11, { note: 'kept' }]]);
    } finally {
      c.close();
      await crashing.proc.stop('SIGKILL');
    }
  }, 60_000);
});
