import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode } from '@imagebind-llm/errors';
import { exactTopK, type ScoredVectorPoint, type VectorPoint } from '@imagebind-llm/vector-store';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QdrantVectorStore, type QdrantVectorStoreOptions } from './qdrant.driver';
import { QdrantStandIn, type QdrantStandInOptions } from './testing/qdrant-stand-in';
import { domainRejectionOf } from '@imagebind-llm/testing';

// Medium tier: the real @qdrant/js-client-rest over real HTTP on loopback, against the in-repo
// stand-in (no Qdrant server can run on the build machines; see README.md).

let standIn: QdrantStandIn;
const stores: QdrantVectorStore[] = [];

async function startStandIn(options: QdrantStandInOptions = {}): Promise<void> {
  await standIn.close();
  standIn = await QdrantStandIn.start(options);
}

function store(options: Partial<QdrantVectorStoreOptions> = {}): QdrantVectorStore {
  const created = new QdrantVectorStore({ url: standIn.url, ...options });
  stores.push(created);
  return created;
}

beforeEach(async () => {
  standIn = await QdrantStandIn.start();
});

afterEach(async () => {
  // Every request the driver made is one the stand-in models.
  expect(standIn.unexpected).toEqual([]);
  await Promise.all(stores.splice(0).map(async (s) => s.close()));
  await standIn.close();
});

/** Deterministic uniform floats in [-1, 1) (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
  };
}

function vectors(count: number, dimension: number, seed: number): Float32Array {
  const next = random(seed);
  return Float32Array.from({ length: count * dimension }, next);
}

function row(all: Float32Array, i: number, dimension: number): Float32Array {
  return all.slice(i * dimension, (i + 1) * dimension);
}

function searchBodies(): { searches: { limit: number; params?: unknown }[] }[] {
  return standIn.requestsTo('queryBatchPoints').map((r) => r.body as { searches: { limit: number }[] });
}

describe('QdrantVectorStore collections', () => {
  it('creates a collection with Dot distance and the configured distribution and quantization', async () => {
    const qdrant = store({
      shardNumber: 3,
      replicationFactor: 2,
      writeConsistencyFactor: 2,
      onDiskPayload: true,
      quantization: 'int8',
    });
    await qdrant.ensureCollection('visual-cache', 4);
    await qdrant.ensureCollection('visual-cache', 4);

    const creates = standIn.requestsTo('createCollection');
    expect(creates).toHaveLength(1);
    expect(creates[0]!.path).toBe('/collections/visual-cache');
    expect(creates[0]!.body).toEqual({
      vectors: { size: 4, distance: 'Dot' },
      shard_number: 3,
      replication_factor: 2,
      write_consistency_factor: 2,
      on_disk_payload: true,
      quantization_config: { scalar: { type: 'int8' } },
    });
    expect(await qdrant.describe('visual-cache')).toEqual({
      name: 'visual-cache',
      dimension: 4,
      count: 0,
      driver: 'qdrant',
    });
  });

  it("leaves unset distribution settings to Qdrant's defaults", async () => {
    await store().ensureCollection('plain', 16);
    expect(standIn.requestsTo('createCollection')[0]!.body).toEqual({
      vectors: { size: 16, distance: 'Dot' },
    });
  });

  it('refuses an existing collection of another dimension or distance with FAILED_PRECONDITION', async () => {
    await store().ensureCollection('c', 4);
    const mismatch = await domainRejectionOf(store().ensureCollection('c', 8));
    expect(mismatch.code).toBe(ErrorCode.FailedPrecondition);
    expect(mismatch.message).toContain("'c' has dimension 4, not 8");

    const cosine = await fetch(`${standIn.url}/collections/cos`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ vectors: { size: 4, distance: 'Cosine' } }),
    });
    expect(cosine.status).toBe(200);
    const wrongDistance = await domainRejectionOf(store().ensureCollection('cos', 4));
    expect(wrongDistance.code).toBe(ErrorCode.FailedPrecondition);
    expect(wrongDistance.message).toContain('Cosine');
  });

  it('describes a missing collection as undefined and counts points', async () => {
    const qdrant = store();
    expect(await qdrant.describe('absent')).toBeUndefined();
    await qdrant.ensureCollection('c', 2);
    await qdrant.upsert('c', [
      { id: 1, vector: Float32Array.of(1, 0) },
      { id: 2, vector: Float32Array.of(0, 1) },
      { id: 1, vector: Float32Array.of(1, 1) },
    ]);
    expect((await qdrant.describe('c'))?.count).toBe(2);
  });

  it('clears every point with the match-all filter and keeps the collection', async () => {
    const qdrant = store();
    await qdrant.ensureCollection('c', 2);
    await qdrant.upsert('c', [{ id: 7, vector: Float32Array.of(1, 2) }]);
    await qdrant.clear('c');
    expect(await qdrant.describe('c')).toEqual({ name: 'c', dimension: 2, count: 0, driver: 'qdrant' });
    expect(standIn.requestsTo('deletePoints').map((r) => [r.body, r.query])).toEqual([
      [{ filter: {} }, { wait: 'true' }],
    ]);
  });
});

describe('QdrantVectorStore writes', () => {
  it('upserts in batches of upsertBatchSize, each waited for, with integer ids and string payloads', async () => {
    const qdrant = store({ upsertBatchSize: 4 });
    await qdrant.ensureCollection('c', 3);
    const data = vectors(10, 3, 1);
    const points: VectorPoint[] = Array.from({ length: 10 }, (_, i) => ({
      id: 100 + i,
      vector: row(data, i, 3),
      ...(i % 2 === 0 ? { payload: { path: `/img/${i}.png` } } : {}),
    }));

    expect(await qdrant.upsert('c', points)).toBe(10);

    const upserts = standIn.requestsTo('upsertPoints');
    expect(upserts.map((r) => (r.body as { points: unknown[] }).points.length)).toEqual([4, 4, 2]);
    expect(upserts.every((r) => r.query['wait'] === 'true')).toBe(true);
    const first = (upserts[0]!.body as { points: { id: unknown; vector: unknown; payload?: unknown }[] })
      .points[0]!;
    expect(first).toEqual({ id: 100, vector: Array.from(row(data, 0, 3)), payload: { path: '/img/0.png' } });
    const stored = standIn.collection('c')!.points;
    expect(stored.size).toBe(10);
    expect(stored.get(109)!.vector).toEqual(Array.from(row(data, 9, 3)));
    expect(stored.get(109)!.payload).toBeNull();
  });

  it('deletes by id and counts only the ids that existed', async () => {
    const qdrant = store();
    await qdrant.ensureCollection('c', 2);
    await qdrant.upsert(
      'c',
      Array.from({ length: 6 }, (_, id) => ({ id, vector: Float32Array.of(id, 1) })),
    );

    expect(await qdrant.delete('c', [1, 3, 3, 99])).toBe(2);
    expect((await qdrant.describe('c'))?.count).toBe(4);
    expect([...standIn.collection('c')!.points.keys()].sort()).toEqual([0, 2, 4, 5]);
    expect(standIn.requestsTo('deletePoints').map((r) => [r.body, r.query])).toEqual([
      [{ points: [1, 3] }, { wait: 'true' }],
    ]);

    // Nothing of these exists: the driver looks them up and sends no delete at all.
    expect(await qdrant.delete('c', [1, 99])).toBe(0);
    expect(standIn.requestsTo('deletePoints')).toHaveLength(1);
    expect(await qdrant.delete('c', [])).toBe(0);
  });

  it('rejects bad points before sending anything', async () => {
    const qdrant = store();
    await qdrant.ensureCollection('c', 2);
    const cases: [VectorPoint[], string][] = [
      [[{ id: -1, vector: Float32Array.of(1, 2) }], 'points[0].id'],
      [[{ id: 1.5, vector: Float32Array.of(1, 2) }], 'points[0].id'],
      [[{ id: 1, vector: Float32Array.of(1, 2, 3) }], 'points[0].vector'],
      [[{ id: 1, vector: Float32Array.of(1, Number.NaN) }], 'points[0].vector'],
      [
        [{ id: 1, vector: Float32Array.of(1, 2), payload: { n: 3 as unknown as string } }],
        'points[0].payload.n',
      ],
    ];
    for (const [points, field] of cases) {
      const error = await domainRejectionOf(qdrant.upsert('c', points));
      expect(error.code, field).toBe(ErrorCode.InvalidInput);
      expect(error.details.field).toBe(field);
    }
    expect((await domainRejectionOf(qdrant.upsert('no/such', []))).code).toBe(ErrorCode.InvalidInput);
    expect(standIn.requestsTo('upsertPoints')).toHaveLength(0);
  });
});

describe('QdrantVectorStore search', () => {
  const dimension = 8;

  /** 40 random points plus exact duplicates under other ids, so equal scores are certain. */
  async function seeded(qdrant: QdrantVectorStore): Promise<{ data: Float32Array; ids: number[] }> {
    const base = vectors(40, dimension, 7);
    // Lengthen the duplicated rows so that, queried with themselves, their tie group is the top hit.
    for (const source of [5, 12]) {
      for (let j = 0; j < dimension; j += 1) base[source * dimension + j]! *= 4;
    }
    const duplicates = [5, 5, 5, 12, 12];
    const data = new Float32Array((40 + duplicates.length) * dimension);
    data.set(base);
    duplicates.forEach((source, i) => data.set(row(base, source, dimension), (40 + i) * dimension));
    // Ids not in row order, and duplicates with ids both below and above their source's id.
    const ids = Array.from({ length: 40 }, (_, i) => 1000 - i * 7).concat([3, 2000, 996, 1, 5000]);
    await qdrant.ensureCollection('c', dimension);
    await qdrant.upsert(
      'c',
      ids.map((id, i) => ({ id, vector: row(data, i, dimension), payload: { row: String(i) } })),
    );
    return { data, ids };
  }

  it('matches a brute-force faiss-order reference for several queries, ties lower id first', async () => {
    const qdrant = store({ exactSearch: true });
    const { data, ids } = await seeded(qdrant);
    const queries = new Float32Array(4 * dimension);
    queries.set(row(data, 5, dimension), 0);
    queries.set(row(data, 12, dimension), dimension);
    queries.set(vectors(2, dimension, 99), 2 * dimension);
    const k = 6;

    const results = await qdrant.search('c', queries, { k });

    expect(results).toHaveLength(4);
    for (let q = 0; q < 4; q += 1) {
      const reference = exactTopK(data, ids, ids.length, row(queries, q, dimension), k);
      expect(
        results[q]!.map((hit) => [hit.id, hit.score]),
        `query ${q}`,
      ).toEqual(reference.map((hit) => [hit.id, hit.score]));
    }
    // The duplicates of row 5 (ids 965, 3, 2000, 996) tie with it: lowest id first.
    const tied = results[0]!.filter((hit) => hit.score === results[0]![0]!.score).map((hit) => hit.id);
    expect(tied).toEqual([3, 965, 996, 2000]);
    const first = searchBodies()[0]!;
    expect(first.searches).toHaveLength(4);
    expect(first.searches[0]).toMatchObject({ limit: k + 1, params: { exact: true } });
  });

  it('settles a tie across the k-th place by fetching more, as faiss would choose', async () => {
    const qdrant = store();
    await qdrant.ensureCollection('c', 2);
    // Four points tie at the top; the stand-in returns ties highest id first.
    await qdrant.upsert('c', [
      ...[9, 7, 5, 2].map((id) => ({ id, vector: Float32Array.of(1, 0) })),
      { id: 1, vector: Float32Array.of(0.5, 0) },
      { id: 0, vector: Float32Array.of(0, 1) },
    ]);

    const [hits] = await qdrant.search('c', Float32Array.of(1, 0), { k: 2 });

    expect(hits!.map((hit) => hit.id)).toEqual([2, 5]);
    expect(searchBodies().map((body) => body.searches.map((s) => s.limit))).toEqual([[3], [6]]);
    expect(searchBodies()[0]!.searches[0]!.params).toBeUndefined();
  });

  it('returns float32 vectors and string payloads only when asked', async () => {
    const qdrant = store({ exactSearch: true, quantization: 'int8' });
    await qdrant.ensureCollection('c', 3);
    await qdrant.upsert('c', [
      { id: 4, vector: Float32Array.of(0.1, 0.2, 0.3), payload: { uri: 'a.png', modality: 'vision' } },
      { id: 8, vector: Float32Array.of(0.3, 0.2, 0.1) },
    ]);
    const query = Float32Array.of(1, 0, 0);

    const [full] = await qdrant.search('c', query, { k: 2, includeVectors: true, includePayloads: true });
    expect(full!.map((hit) => hit.id)).toEqual([8, 4]);
    expect(full![0]!.vector).toBeInstanceOf(Float32Array);
    expect(full![0]!.vector).toEqual(Float32Array.of(0.3, 0.2, 0.1));
    expect(full![1]!.payload).toEqual({ uri: 'a.png', modality: 'vision' });
    expect(full![0]!.payload).toEqual({});
    expect(full![0]!.score).toBe(Math.fround(Math.fround(0.3)));

    const [bare] = await qdrant.search('c', query, { k: 1 });
    expect(bare).toHaveLength(1);
    expect(Object.keys(bare![0]!).sort()).toEqual(['id', 'score']);

    const sent = searchBodies().map((body) => body.searches[0]);
    expect(sent[0]).toMatchObject({
      with_vector: true,
      with_payload: true,
      params: { exact: true, quantization: { ignore: true } },
    });
    expect(sent[1]).toMatchObject({ with_vector: false, with_payload: false });
  });

  it('validates k, the query width and the signal before sending anything', async () => {
    const qdrant = store();
    await qdrant.ensureCollection('c', 4);
    const cases: [() => Promise<ScoredVectorPoint[][]>, ErrorCode][] = [
      [async () => qdrant.search('c', new Float32Array(4), { k: 0 }), ErrorCode.InvalidInput],
      [async () => qdrant.search('c', new Float32Array(4), { k: 1001 }), ErrorCode.InvalidInput],
      [async () => qdrant.search('c', new Float32Array(6), { k: 1 }), ErrorCode.InvalidInput],
      [async () => qdrant.search('c', Float32Array.of(1, 2, 3, Infinity), { k: 1 }), ErrorCode.InvalidInput],
      [
        async () => qdrant.search('c', new Float32Array(4), { k: 1, signal: AbortSignal.abort() }),
        ErrorCode.Cancelled,
      ],
    ];
    for (const [work, code] of cases) expect((await domainRejectionOf(work())).code).toBe(code);
    expect(await qdrant.search('c', new Float32Array(0), { k: 3 })).toEqual([]);
    expect(standIn.requestsTo('queryBatchPoints')).toHaveLength(0);
  });
});

describe('QdrantVectorStore API keys', () => {
  beforeEach(async () => {
    await startStandIn({ apiKey: 'rw-key', readOnlyApiKey: 'ro-key' });
  });

  it('sends the configured key on every call', async () => {
    const qdrant = store({ apiKey: 'rw-key' });
    await qdrant.ensureCollection('c', 2);
    await qdrant.upsert('c', [{ id: 1, vector: Float32Array.of(1, 2) }]);
    const keyed = standIn.requests.filter((r) => r.route !== 'root');
    expect(keyed.length).toBeGreaterThanOrEqual(3);
    expect(keyed.map((r) => r.apiKey)).toEqual(keyed.map(() => 'rw-key'));
    expect(standIn.collection('c')!.points.size).toBe(1);
  });

  it('maps a missing or wrong key to UNAUTHENTICATED and a read-only key writing to PERMISSION_DENIED', async () => {
    await store({ apiKey: 'rw-key' }).ensureCollection('c', 2);

    const missing = await domainRejectionOf(store().describe('c'));
    expect(missing.code).toBe(ErrorCode.Unauthenticated);
    expect(missing.message).toContain('Must provide an API key');
    const wrong = await domainRejectionOf(store({ apiKey: 'guess' }).describe('c'));
    expect(wrong.code).toBe(ErrorCode.Unauthenticated);
    expect(wrong.message).not.toContain('guess');

    const readOnly = store({ apiKey: 'ro-key' });
    expect(await readOnly.search('c', Float32Array.of(1, 0), { k: 1 })).toEqual([[]]);
    const denied = await domainRejectionOf(readOnly.upsert('c', [{ id: 1, vector: Float32Array.of(1, 2) }]));
    expect(denied.code).toBe(ErrorCode.PermissionDenied);
  });
});

describe('QdrantVectorStore error mapping', () => {
  it('maps an unknown collection to NOT_FOUND', async () => {
    const qdrant = store();
    for (const work of [
      async () => qdrant.search('absent', new Float32Array(4), { k: 1 }),
      async () => qdrant.upsert('absent', [{ id: 1, vector: new Float32Array(4) }]),
      async () => qdrant.delete('absent', [1]),
      async () => qdrant.clear('absent'),
    ]) {
      const error = await domainRejectionOf(work());
      expect(error.code).toBe(ErrorCode.NotFound);
      expect(error.message).toContain("'absent'");
    }
  });

  it("maps Qdrant's 400 to INVALID_INPUT and forgets a dimension that went stale", async () => {
    const qdrant = store();
    await qdrant.ensureCollection('c', 4);
    // Someone recreates the collection with another width behind the driver's back.
    standIn.dropCollection('c');
    await store().ensureCollection('c', 3);

    const stale = await domainRejectionOf(qdrant.upsert('c', [{ id: 1, vector: new Float32Array(4) }]));
    expect(stale.code).toBe(ErrorCode.InvalidInput);
    expect(stale.message).toContain('Vector dimension error: expected dim: 3, got 4');
    const upserts = standIn.requestsTo('upsertPoints').length;

    // The driver re-read the width: the same call now fails on its side, without a request.
    const local = await domainRejectionOf(qdrant.upsert('c', [{ id: 1, vector: new Float32Array(4) }]));
    expect(local.code).toBe(ErrorCode.InvalidInput);
    expect(local.details.field).toBe('points[0].vector');
    expect(standIn.requestsTo('upsertPoints')).toHaveLength(upserts);
    expect(await qdrant.upsert('c', [{ id: 1, vector: new Float32Array(3) }])).toBe(1);
  });

  it('maps a refused connection to DEPENDENCY_UNAVAILABLE', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const qdrant = new QdrantVectorStore({ url: `http://127.0.0.1:${port}` });
    stores.push(qdrant);
    const error = await domainRejectionOf(qdrant.describe('c'));
    expect(error.code).toBe(ErrorCode.DependencyUnavailable);
    expect(error.message).toContain(`http://127.0.0.1:${port}`);
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('maps a request that outlives timeoutMs to DEPENDENCY_UNAVAILABLE', async () => {
    const qdrant = store({ timeoutMs: 200 });
    await qdrant.ensureCollection('c', 2);
    standIn.stall('queryBatchPoints');
    const error = await domainRejectionOf(qdrant.search('c', Float32Array.of(1, 0), { k: 1 }));
    expect(error.code).toBe(ErrorCode.DependencyUnavailable);
    expect(error.message).toContain('did not answer in time');
  });

  it('refuses calls after close', async () => {
    const qdrant = store();
    await qdrant.close();
    expect((await domainRejectionOf(qdrant.describe('c'))).code).toBe(ErrorCode.FailedPrecondition);
  });
});

describe('QdrantStandIn strictness', () => {
  it("answers unmodelled routes with 404 and wrong vector sizes with Qdrant's 400 envelope", async () => {
    const unknown = await fetch(`${standIn.url}/collections`);
    expect(unknown.status).toBe(404);
    const refusal = (await unknown.json()) as { status: { error: string } };
    expect(refusal.status.error).toContain('GET /collections');
    expect(standIn.unexpected).toEqual(['GET /collections: no such route in the stand-in']);
    standIn.unexpected.length = 0;

    await store().ensureCollection('c', 2);
    const wrong = await fetch(`${standIn.url}/collections/c/points?wait=true`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ points: [{ id: 1, vector: [1, 2, 3] }] }),
    });
    expect(wrong.status).toBe(400);
    const body = (await wrong.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['status', 'time']);
    expect(body['status']).toEqual({ error: 'Wrong input: Vector dimension error: expected dim: 2, got 3' });
    expect(standIn.collection('c')!.points.size).toBe(0);

    const ok = await fetch(`${standIn.url}/collections/c`);
    const envelope = (await ok.json()) as Record<string, unknown>;
    expect(Object.keys(envelope).sort()).toEqual(['result', 'status', 'time']);
    expect(envelope['status']).toBe('ok');
  });
});
