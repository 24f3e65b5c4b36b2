import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseNpy } from '@imagebind-llm/checkpoint';
import { ErrorCode } from '@imagebind-llm/errors';
import { afterAll, describe, expect, it } from 'vitest';
import { float32NpyHeader } from './collection-files';
import { DiskRows, mergeTopK } from './disk-rows';
import { EmbeddedVectorStore, type EmbeddedVectorStoreOptions } from './embedded.driver';
import { innerProductScore } from './exact-top-k';
import { domainRejection } from './testing/domain-rejection';
import { randomVectors } from './testing/random-vectors';

const root = mkdtempSync(join(tmpdir(), 'vector-store-disk-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;
const freshDir = (): string => join(root, `store-${folders++}`);

const d = 24;
const n = 1500;
const vectors = randomVectors(n, d, 7, true);
const queries = randomVectors(6, d, 8);

function* chunksOf(data: Float32Array, rows: number): Generator<Float32Array> {
  for (let first = 0; first * d < data.length; first += rows) {
    yield data.slice(first * d, Math.min((first + rows) * d, data.length));
  }
}

async function importAll(store: EmbeddedVectorStore, data = vectors, rows = 256): Promise<void> {
  await store.importRows('cache', d, data.length / d, chunksOf(data, rows));
}

/** A memory-only store with the same rows, upserted: the reference path. */
async function residentReference(options: EmbeddedVectorStoreOptions = {}): Promise<EmbeddedVectorStore> {
  const store = await EmbeddedVectorStore.open(options);
  await store.ensureCollection('cache', d);
  await store.upsert(
    'cache',
    Array.from({ length: n }, (_, id) => ({ id, vector: vectors.slice(id * d, (id + 1) * d) })),
  );
  return store;
}

const files = (dir: string): string[] => readdirSync(join(dir, 'cache')).sort();
const manifestFiles = (dir: string): string[] => {
  const m = JSON.parse(readFileSync(join(dir, 'cache', 'manifest.json'), 'utf8')) as {
    files: { vectors: string[]; ids: string; payloads: string; index: string | null };
  };
  const { vectors: parts, ids, payloads, index } = m.files;
  return ['manifest.json', ...parts, ids, payloads, ...(index === null ? [] : [index])].sort();
};

describe('disk-resident collections (residentBelow)', () => {
  it('exact search reads the rows from disk and matches the resident path bit for bit', async () => {
    const dir = freshDir();
    const exact = { exactBelow: Number.POSITIVE_INFINITY, vectorFileRows: 400 };
    const store = await EmbeddedVectorStore.open({ dir, residentBelow: 0, ...exact });
    expect(store.streamsImport(n)).toBe(true);
    const progress: number[] = [];
    const result = await store.importRows('cache', d, n, chunksOf(vectors, 300), {
      onProgress: (done, total) => {
        expect(total).toBe(n);
        progress.push(done);
      },
    });
    expect(result).toEqual({ imported: n, diskResident: true });
    expect(progress).toEqual([300, 600, 900, 1200, 1500]);
    // Parts of 400 rows, written row by row, are exactly what numpy's np.save would write.
    expect(files(dir)).toEqual(manifestFiles(dir));
    const part = readFileSync(join(dir, 'cache', 'vectors.1.1.npy'));
    const tensor = parseNpy(new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
    expect(tensor.shape).toEqual([400, d]);
    expect(new Float32Array(tensor.data.buffer, tensor.data.byteOffset, 400 * d)).toEqual(
      vectors.subarray(400 * d, 800 * d),
    );

    const reference = await residentReference(exact);
    const options = { k: 20, includeVectors: true, includePayloads: true };
    const expected = await reference.search('cache', queries, options);
    expect(await store.search('cache', queries, options)).toEqual(expected);
    expect(await store.describe('cache')).toEqual({
      name: 'cache',
      dimension: d,
      count: n,
      driver: 'embedded',
    });
    await store.close();

    // Reopened both ways: disk-resident again, and loaded into memory.
    for (const residentBelow of [1000, Number.POSITIVE_INFINITY]) {
      const reopened = await EmbeddedVectorStore.open({ dir, residentBelow, ...exact });
      expect(await reopened.search('cache', queries, options)).toEqual(expected);
      await reopened.close();
    }
    await reference.close();
  });

  it('builds the i8 graph at import; candidates re-scored from disk equal the resident ones', async () => {
    const dir = freshDir();
    const options: EmbeddedVectorStoreOptions = {
      dir,
      quantization: 'i8',
      exactBelow: 500,
      residentBelow: 0,
      vectorFileRows: 512,
      streamedIndex: 'hnsw',
      hnsw: { rescoreCandidates: 64 },
    };
    const store = await EmbeddedVectorStore.open(options);
    await importAll(store);
    expect(manifestFiles(dir)).toContain('index.1.usearch');
    expect(await store.buildIndex('cache')).toBe(true);
    const search = { k: 10, includeVectors: true };
    const fresh = await store.search('cache', queries, search);
    await store.close();

    // Disk-resident with the graph memory-mapped, and resident with it loaded: same graph, so
    // the same candidates, and the exact float32 scores of those candidates either way.
    const viewed = await EmbeddedVectorStore.open(options);
    const loaded = await EmbeddedVectorStore.open({ ...options, residentBelow: Number.POSITIVE_INFINITY });
    const fromDisk = await viewed.search('cache', queries, search);
    expect(fromDisk).toEqual(await loaded.search('cache', queries, search));
    expect(fromDisk).toEqual(fresh);
    fromDisk.forEach((list, q) =>
      list.forEach((hit) => {
        expect(hit.score).toBe(innerProductScore(queries.subarray(q * d, (q + 1) * d), vectors, hit.id));
        expect(hit.vector).toEqual(vectors.subarray(hit.id * d, (hit.id + 1) * d));
      }),
    );

    // Recall against exact search.
    const exact = await residentReference({ exactBelow: Number.POSITIVE_INFINITY });
    const truth = await exact.search('cache', queries, { k: 10 });
    let found = 0;
    truth.forEach((list, q) => {
      const got = new Set(fromDisk[q]!.map((h) => h.id));
      found += list.filter((h) => got.has(h.id)).length;
    });
    expect(found / (truth.length * 10)).toBeGreaterThanOrEqual(0.9);
    await Promise.all([viewed.close(), loaded.close(), exact.close()]);
  });

  it('the search list (expansionSearch) given at construction takes effect on a memory-mapped graph', async () => {
    const dir = freshDir();
    const base = {
      dir,
      residentBelow: 0,
      exactBelow: 1,
      streamedIndex: 'hnsw',
      hnsw: { connectivity: 4, expansionAdd: 8 },
    } as const;
    const store = await EmbeddedVectorStore.open(base);
    await importAll(store);
    await store.close();
    const recall = async (expansionSearch: number): Promise<number> => {
      const s = await EmbeddedVectorStore.open({ ...base, hnsw: { ...base.hnsw, expansionSearch } });
      let hits = 0;
      for (let row = 0; row < 200; row++) {
        const [found] = await s.search('cache', vectors.slice(row * d, (row + 1) * d), { k: 1 });
        if (found![0]!.id === row) hits++;
      }
      await s.close();
      return hits / 200;
    };
    const narrow = await recall(1);
    const wide = await recall(512);
    expect(narrow).toBeLessThan(0.8);
    expect(wide).toBeGreaterThanOrEqual(0.95);
  });

  it('refuses point-wise writes to a disk-resident collection; clear and re-import work', async () => {
    const dir = freshDir();
    const options = { dir, residentBelow: 1000, exactBelow: Number.POSITIVE_INFINITY };
    const store = await EmbeddedVectorStore.open(options);
    await importAll(store);
    const upsert = await domainRejection(store.upsert('cache', [{ id: 1, vector: vectors.slice(0, d) }]));
    expect(upsert.code).toBe(ErrorCode.FailedPrecondition);
    expect(upsert.message).toMatch(/read-only.*replace: true/);
    expect((await domainRejection(store.delete('cache', [1]))).code).toBe(ErrorCode.FailedPrecondition);
    // Nothing changed on disk or in the answers.
    const before = await store.search('cache', queries, { k: 5 });
    await store.flush();
    expect(manifestFiles(dir)).toContain('vectors.1.0.npy');

    // A smaller re-import (under residentBelow) goes to memory and is flushed as a new generation.
    const small = vectors.slice(0, 200 * d);
    expect(store.streamsImport(200)).toBe(false);
    expect(await store.importRows('cache', d, 200, chunksOf(small, 64))).toEqual({
      imported: 200,
      diskResident: false,
    });
    expect(files(dir)).toEqual(manifestFiles(dir));
    expect(manifestFiles(dir)).toContain('vectors.2.0.npy');
    await store.upsert('cache', [{ id: 5000, vector: vectors.slice(0, d) }]);
    expect((await store.describe('cache'))?.count).toBe(201);

    await importAll(store);
    expect(await store.search('cache', queries, { k: 5 })).toEqual(before);
    await store.clear('cache');
    expect((await store.describe('cache'))?.count).toBe(0);
    await store.close();
    const reopened = await EmbeddedVectorStore.open(options);
    expect((await reopened.describe('cache'))?.count).toBe(0);
    await reopened.close();
  });

  it('an aborted, short or failing import leaves the previous generation serving and on disk', async () => {
    const dir = freshDir();
    const options = { dir, residentBelow: 0, exactBelow: 1000, vectorFileRows: 300 };
    const store = await EmbeddedVectorStore.open(options);
    await importAll(store);
    const search = { k: 7, includeVectors: true };
    const before = await store.search('cache', queries, search);
    const committed = manifestFiles(dir);

    const other = randomVectors(n, d, 99, true);
    const controller = new AbortController();
    const aborted = await domainRejection(
      store.importRows('cache', d, n, chunksOf(other, 256), {
        onProgress: (done) => {
          if (done >= 512) controller.abort();
        },
        signal: controller.signal,
      }),
    );
    expect(aborted.code).toBe(ErrorCode.Cancelled);
    expect(aborted.message).toMatch(/after 512 of 1500 rows/);
    expect(files(dir)).toEqual(committed);
    expect(await store.search('cache', queries, search)).toEqual(before);

    const short = await domainRejection(
      store.importRows('cache', d, n, chunksOf(other.slice(0, 700 * d), 256)),
    );
    expect(short.code).toBe(ErrorCode.InvalidInput);
    expect(short.message).toMatch(/ended after 700 of the announced 1500/);
    const bad = other.slice(0, 600 * d);
    bad[450 * d + 3] = Number.NaN;
    expect((await domainRejection(store.importRows('cache', d, n, chunksOf(bad, 256)))).code).toBe(
      ErrorCode.InvalidInput,
    );
    const failing = async function* (): AsyncGenerator<Float32Array> {
      yield await Promise.resolve(other.slice(0, 400 * d));
      throw new Error('source broke');
    };
    await expect(store.importRows('cache', d, n, failing())).rejects.toThrow('source broke');
    expect(files(dir)).toEqual(committed);
    expect(await store.search('cache', queries, search)).toEqual(before);

    // A crash mid-import leaves temp files of the next generation: the next open drops them.
    writeFileSync(join(dir, 'cache', '.vectors.2.0.npy.tmp'), float32NpyHeader([300, d]));
    writeFileSync(join(dir, 'cache', '.index.2.usearch.tmp'), 'partial');
    await store.close();
    const reopened = await EmbeddedVectorStore.open(options);
    expect(files(dir)).toEqual(committed);
    expect(await reopened.search('cache', queries, search)).toEqual(before);
    await reopened.close();
  });

  it('close() cancels a running import and keeps the committed generation', async () => {
    const dir = freshDir();
    const options = { dir, residentBelow: 0, exactBelow: Number.POSITIVE_INFINITY };
    const store = await EmbeddedVectorStore.open(options);
    await importAll(store);
    const committed = manifestFiles(dir);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = async function* (): AsyncGenerator<Float32Array> {
      yield vectors.slice(0, 100 * d);
      await gate;
      yield vectors.slice(100 * d, 200 * d);
    };
    const running = store.importRows('cache', d, n, slow());
    const rejected = domainRejection(running);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // A second import or a write meanwhile is refused.
    expect((await domainRejection(store.importRows('cache', d, n, chunksOf(vectors, 500)))).code).toBe(
      ErrorCode.FailedPrecondition,
    );
    const closing = store.close();
    release();
    await closing;
    expect((await rejected).code).toBe(ErrorCode.Cancelled);
    expect(files(dir)).toEqual(committed);
  });

  it('rejects a bad residentBelow', async () => {
    for (const residentBelow of [-1, 1.5, Number.NaN]) {
      const error = await domainRejection(EmbeddedVectorStore.open({ residentBelow }));
      expect(error.code).toBe(ErrorCode.InvalidInput);
    }
    const hnsw = await domainRejection(EmbeddedVectorStore.open({ hnsw: { rescoreCandidates: 0 } }));
    expect(hnsw.message).toMatch(/rescoreCandidates/);
  });
});

describe('DiskRows', () => {
  it('reads any rows in any order, repeats included, across parts', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open({ dir, residentBelow: 0, vectorFileRows: 100 });
    await importAll(store);
    await store.close();
    const parts = Array.from({ length: 15 }, (_, p) => ({
      path: join(dir, 'cache', `vectors.1.${p}.npy`),
      first: p * 100,
      rows: 100,
      dataStart: float32NpyHeader([100, d]).length,
    }));
    const rows = await DiskRows.open(parts, d, n);
    const wanted = [1499, 0, 100, 99, 101, 0, 750, 751, 752, 3];
    const got = await rows.readRows(wanted);
    wanted.forEach((row, i) =>
      expect(got.subarray(i * d, (i + 1) * d)).toEqual(vectors.subarray(row * d, (row + 1) * d)),
    );
    await expect(rows.readRows([n])).rejects.toThrow(RangeError);
    const seen: number[] = [];
    for await (const chunk of rows.chunks(64)) {
      expect(chunk.vectors).toEqual(
        vectors.subarray(chunk.first * d, chunk.first * d + chunk.vectors.length),
      );
      seen.push(chunk.first);
    }
    expect(seen.length).toBe(15 * 2);
    await rows.retire();
  });

  it('mergeTopK keeps faiss order: best score first, lower id first on ties', () => {
    const a = [
      { row: 0, id: 4, score: 0.9 },
      { row: 1, id: 2, score: 0.5 },
    ];
    const b = [
      { row: 2, id: 3, score: 0.9 },
      { row: 3, id: 1, score: 0.5 },
      { row: 4, id: 0, score: 0.1 },
    ];
    expect(mergeTopK(a, b, 4).map((h) => h.id)).toEqual([3, 4, 1, 2]);
    expect(mergeTopK([], b, 10)).toEqual(b);
  });
});
