import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { ErrorCode } from '@imagebind-llm/errors';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedVectorStore, type EmbeddedVectorStoreOptions } from './embedded.driver';
import { domainRejection } from './testing/domain-rejection';
import { randomVectors } from './testing/random-vectors';
import type { VectorStore } from './vector-store.port';

const root = mkdtempSync(join(tmpdir(), 'vector-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;
const freshDir = (): string => join(root, `store-${folders++}`);

const d = 32;
const n = 400;
const vectors = randomVectors(n, d, 42, true);
const queries = randomVectors(8, d, 43);
const STORED = n - 3;

async function fill(store: VectorStore): Promise<void> {
  await store.ensureCollection('cache', d);
  await store.upsert(
    'cache',
    Array.from({ length: n }, (_, id) => ({
      id: id * 3,
      vector: vectors.slice(id * d, (id + 1) * d),
      ...(id % 4 === 0 ? { payload: { caption: `item ${id}`, note: 'é "quoted"' } } : {}),
    })),
  );
  // Ids 0, 10·3 and 200·3 go (0 and 600 had payloads); 1 is not stored.
  await store.delete('cache', [0, 30, 600, 1]);
  await store.ensureCollection('empty', 5);
}

const everything = { k: 25, includeVectors: true, includePayloads: true };

describe('EmbeddedVectorStore persistence', () => {
  it('reopens a flushed directory with identical contents and search results', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open({ dir });
    await fill(store);
    const before = await store.search('cache', queries, everything);
    await store.flush();

    const reopened = await EmbeddedVectorStore.open({ dir });
    expect(await reopened.describe('cache')).toEqual(await store.describe('cache'));
    expect(await reopened.describe('empty')).toEqual({
      name: 'empty',
      dimension: 5,
      count: 0,
      driver: 'embedded',
    });
    expect(await reopened.search('cache', queries, everything)).toEqual(before);
    expect(await reopened.search('empty', new Float32Array(5), { k: 1 })).toEqual([[]]);
  });

  it('writes the documented layout: manifest, vectors.npy, ids.npy, payloads.json', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open({ dir });
    await fill(store);
    await store.flush();
    const folder = join(dir, 'cache');
    expect(readdirSync(folder).sort()).toEqual([
      'ids.1.npy',
      'manifest.json',
      'payloads.1.json',
      'vectors.1.0.npy',
    ]);
    const manifest = JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(manifest).toMatchObject({
      format: 'imagebind-llm/vector-store',
      formatVersion: 1,
      name: 'cache',
      dimension: d,
      count: STORED,
      quantization: 'f32',
      generation: 1,
      vectorFileRows: (256 * 1024 * 1024) / (d * 4),
      files: { vectors: ['vectors.1.0.npy'], ids: 'ids.1.npy', payloads: 'payloads.1.json', index: null },
    });
    // Plain .npy: numpy (and readNpy) can read what the store wrote.
    const stored = readNpy(join(folder, 'vectors.1.0.npy'));
    expect(stored.shape).toEqual([STORED, d]);
    const ids = readNpy(join(folder, 'ids.1.npy'));
    expect(ids.dtype).toBe('int64');
    const idList = Array.from(new BigInt64Array(ids.data.buffer, ids.data.byteOffset, STORED), Number);
    const row = idList.indexOf(3 * 7);
    expect(toFloat32(stored).slice(row * d, (row + 1) * d)).toEqual(vectors.slice(7 * d, 8 * d));
    const payloads = JSON.parse(readFileSync(join(folder, 'payloads.1.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(payloads['12']).toEqual({ caption: 'item 4', note: 'é "quoted"' });
    expect(Object.keys(payloads)).toHaveLength(n / 4 - 2);
  });

  it('commits a new generation per flush and drops the old one and stray temp files', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open({ dir });
    await fill(store);
    await store.flush();
    await store.flush(); // nothing changed: nothing written
    expect(readdirSync(join(dir, 'cache'))).toContain('vectors.1.0.npy');
    await store.upsert('cache', [{ id: 1, vector: vectors.slice(0, d) }]);
    await store.flush();
    expect(readdirSync(join(dir, 'cache')).sort()).toEqual([
      'ids.2.npy',
      'manifest.json',
      'payloads.2.json',
      'vectors.2.0.npy',
    ]);
    // What a crash in the middle of a flush leaves behind.
    writeFileSync(join(dir, 'cache', '.vectors.3.0.npy.tmp'), 'partial');
    writeFileSync(join(dir, 'cache', 'vectors.3.0.npy'), 'not committed');
    const reopened = await EmbeddedVectorStore.open({ dir });
    expect((await reopened.describe('cache'))?.count).toBe(STORED + 1);
    expect(readdirSync(join(dir, 'cache'))).not.toContain('vectors.3.0.npy');
    expect(readdirSync(join(dir, 'cache'))).not.toContain('.vectors.3.0.npy.tmp');
  });

  it('splits vectors into parts of vectorFileRows rows', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open({ dir, vectorFileRows: 50 });
    await fill(store);
    const before = await store.search('cache', queries, everything);
    await store.flush();
    const parts = readdirSync(join(dir, 'cache')).filter((f) => f.startsWith('vectors.'));
    expect(parts).toHaveLength(Math.ceil(STORED / 50));
    expect(readNpy(join(dir, 'cache', 'vectors.1.7.npy')).shape).toEqual([STORED - 7 * 50, d]);
    // The part size is part of the manifest: a store opened with another setting still reads it.
    const reopened = await EmbeddedVectorStore.open({ dir });
    expect(await reopened.search('cache', queries, everything)).toEqual(before);
  });

  it('writes a consistent generation while mutations race the flush (copy on write)', async () => {
    const dir = freshDir();
    // Many small parts: the write spans many event-loop turns for the mutations to land in.
    const store = await EmbeddedVectorStore.open({ dir, vectorFileRows: 10 });
    await fill(store);
    const ids = (await store.search('cache', new Float32Array(d), { k: 1000 }))[0]!.map((h) => h.id);
    const stamp = (value: number) => ids.map((id) => ({ id, vector: new Float32Array(d).fill(value) }));
    let step = 0;
    // Every state the snapshot can see is stamped: all rows hold the step's number.
    await store.upsert('cache', stamp(++step));
    let done = false;
    const flushed = store.flush().finally(() => (done = true));
    while (!done) {
      await store.upsert('cache', stamp(++step));
      await store.delete('cache', [ids[step % ids.length]!]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await flushed;
    expect(step).toBeGreaterThan(2);
    // Every row of the written generation carries the same stamp: no part saw a later mutation.
    const folder = join(dir, 'cache');
    const manifest = JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8')) as {
      count: number;
      files: { vectors: string[]; ids: string };
    };
    const values = new Set<number>();
    for (const file of manifest.files.vectors) {
      for (const v of toFloat32(readNpy(join(folder, file)))) values.add(v);
    }
    expect(values.size).toBe(1);
    // The ids match the same moment: all of them, or all but the one that step deleted.
    const stamped = [...values][0]!;
    const written = readNpy(join(folder, manifest.files.ids));
    const writtenIds = new Set(Array.from(new BigInt64Array(written.data.buffer, 0, manifest.count), Number));
    const missing = ids.filter((id) => !writtenIds.has(id));
    expect(missing.length === 0 || (missing.length === 1 && missing[0] === ids[stamped % ids.length])).toBe(
      true,
    );
    expect(manifest.count).toBe(STORED - missing.length);
  });

  it('flushes on close', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open({ dir });
    await fill(store);
    await store.close();
    const reopened = await EmbeddedVectorStore.open({ dir });
    expect((await reopened.describe('cache'))?.count).toBe(STORED);
  });

  it('persists the HNSW index and searches the same after reopening', async () => {
    const dir = freshDir();
    const options: EmbeddedVectorStoreOptions = { dir, exactBelow: 50, quantization: 'i8' };
    const store = await EmbeddedVectorStore.open(options);
    await fill(store);
    const before = await store.search('cache', queries, everything);
    await store.flush();
    expect(readdirSync(join(dir, 'cache'))).toContain('index.1.usearch');

    const reopened = await EmbeddedVectorStore.open(options);
    expect(await reopened.search('cache', queries, everything)).toEqual(before);
    await reopened.flush();
    // The loaded graph was reused, not rebuilt: nothing was dirty, so no new generation.
    expect(readdirSync(join(dir, 'cache'))).toContain('index.1.usearch');

    // Another quantization: the saved graph is dropped and rebuilt, results stay exact-scored.
    // Compared with the same rows searched by brute force; the search list spans every stored
    // row, and a graph this small is grown on one thread (concurrent adds left rows unreachable,
    // failing this in about 1 run in 8), so it cannot miss a neighbour. (The i8 graph above is approximate: its top hits are not compared
    // with the truth, only with themselves after the reopening.)
    const truth = await (
      await EmbeddedVectorStore.open({ ...options, exactBelow: Number.POSITIVE_INFINITY })
    ).search('cache', queries, { k: 5 });
    const f32 = await EmbeddedVectorStore.open({
      ...options,
      quantization: 'f32',
      hnsw: { expansionSearch: 2 * n },
    });
    const again = await f32.search('cache', queries, { k: 5 });
    again.forEach((hits, i) => {
      expect(hits.map((h) => h.id)).toEqual(truth[i]!.map((h) => h.id));
      hits.forEach((h, j) => expect(h.score).toBeCloseTo(truth[i]![j]!.score, 5));
    });
    await f32.flush();
    const manifest = JSON.parse(readFileSync(join(dir, 'cache', 'manifest.json'), 'utf8')) as {
      quantization: string;
      files: { index: string };
    };
    expect(manifest).toMatchObject({ quantization: 'f32', files: { index: 'index.2.usearch' } });
  });

  it('builds the graph on request, so a restart loads it instead of rebuilding', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open({ dir, exactBelow: 100 });
    await fill(store);
    await store.ensureCollection('small', 2);
    await store.upsert('small', [{ id: 1, vector: Float32Array.of(1, 0) }]);
    expect(await store.buildIndex('small')).toBe(false);
    expect(await store.buildIndex('cache')).toBe(true);
    await store.flush();
    expect(readdirSync(join(dir, 'cache'))).toContain('index.1.usearch');
    expect(readdirSync(join(dir, 'small'))).not.toContain('index.1.usearch');
  });

  it('refuses to open a corrupt collection with a message that says what to do', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open({ dir });
    await fill(store);
    await store.flush();
    const manifestPath = join(dir, 'cache', 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(manifestPath, JSON.stringify({ ...manifest, count: 5 }));
    const error = await domainRejection(EmbeddedVectorStore.open({ dir }));
    expect(error.code).toBe(ErrorCode.FailedPrecondition);
    expect(error.message).toMatch(/cache cannot be loaded: .*expected float32\[5, 32\].*delete it to drop/);

    writeFileSync(manifestPath, '{ not json');
    expect((await domainRejection(EmbeddedVectorStore.open({ dir }))).message).toMatch(
      /manifest\.json is not valid JSON/,
    );
  });

  it('ignores folders that are not collections', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open({ dir });
    await fill(store);
    await store.flush();
    rmSync(join(dir, 'empty', 'manifest.json'));
    const reopened = await EmbeddedVectorStore.open({ dir });
    expect(await reopened.describe('empty')).toBeUndefined();
    expect(await reopened.describe('cache')).toBeDefined();
  });
});
