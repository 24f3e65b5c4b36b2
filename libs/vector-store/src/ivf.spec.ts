import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedVectorStore } from './embedded.driver';
import { innerProductScore } from './exact-top-k';
import { defaultIvfLists, IvfBuilder, IvfIndex, ivfFileBytes, type IvfBuildProgress } from './ivf';
import { randomVectors, seededRandom } from './testing/random-vectors';

const root = mkdtempSync(join(tmpdir(), 'vector-store-ivf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;
const freshDir = (): string => join(root, `store-${folders++}`);

const d = 64;
const n = 6000;
const clusters = 60;

/** Unit rows around `clusters` random directions (the shape of image features), in shuffled order. */
function clustered(rows: number, seed: number): Float32Array {
  const centres = randomVectors(clusters, d, seed, true);
  const noise = randomVectors(rows, d, seed + 1);
  const pick = seededRandom(seed + 2);
  const out = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) {
    const c = Math.floor(pick() * clusters);
    let norm = 0;
    for (let j = 0; j < d; j++) {
      const v = centres[c * d + j]! + 0.12 * noise[r * d + j]!;
      out[r * d + j] = v;
      norm += v * v;
    }
    for (let j = 0; j < d; j++) out[r * d + j]! /= Math.sqrt(norm);
  }
  return out;
}

const vectors = clustered(n, 11);
/** Queries near stored rows: a row plus a little noise. */
const queries = (() => {
  const count = 40;
  const noise = randomVectors(count, d, 99);
  const out = new Float32Array(count * d);
  for (let q = 0; q < count; q++) {
    const row = (q * 149) % n;
    for (let j = 0; j < d; j++) out[q * d + j] = vectors[row * d + j]! + 0.02 * noise[q * d + j]!;
  }
  return out;
})();
const query = (q: number): Float32Array => queries.subarray(q * d, (q + 1) * d);

function exactTop(q: Float32Array, k: number): number[] {
  return Array.from({ length: n }, (_, row) => row)
    .map((row) => ({ row, score: innerProductScore(q, vectors, row) }))
    .sort((a, b) => b.score - a.score || a.row - b.row)
    .slice(0, k)
    .map((hit) => hit.row);
}

let files = 0;
/** Builds an index of the rows (added 700 at a time) into a new file and loads it. */
async function build(
  options: { lists?: number; seed?: number } = {},
  path = join(root, `${files++}.ivf`),
): Promise<IvfIndex> {
  const builder = new IvfBuilder(d, n, { threads: 2, ...options });
  for (let first = 0; first < n; first += 700)
    builder.add(vectors.slice(first * d, Math.min(n, first + 700) * d));
  await builder.writeIndex(path);
  return IvfIndex.load(path, { dimension: d, size: n });
}

describe('IVF index', () => {
  it('puts every row in exactly one list, and its candidates hold the exact top-10', async () => {
    const index = await build();
    expect(index.lists).toBe(defaultIvfLists(n));
    expect(index.size).toBe(n);
    const rows = index.listRows.flatMap((list) => Array.from(list)).sort((a, b) => a - b);
    expect(rows).toEqual(Array.from({ length: n }, (_, i) => i));
    // The lists follow the data: most rows of a list are closest to its own centroid.
    let own = 0;
    index.listRows.forEach((list, l) =>
      list.forEach((row) => {
        const scores = Array.from({ length: index.lists }, (_, c) =>
          innerProductScore(vectors.subarray(row * d, (row + 1) * d), index.centroids, c),
        );
        if (Math.max(...scores) === scores[l]) own++;
      }),
    );
    expect(own / n).toBeGreaterThan(0.95);

    let found = 0;
    let foundOneProbe = 0;
    for (let q = 0; q < queries.length / d; q++) {
      const truth = exactTop(query(q), 10);
      const candidates = new Set(index.search(query(q), 8, 64));
      const narrow = new Set(index.search(query(q), 1, 64));
      found += truth.filter((row) => candidates.has(row)).length;
      foundOneProbe += truth.filter((row) => narrow.has(row)).length;
    }
    const total = (queries.length / d) * 10;
    expect(found / total).toBeGreaterThanOrEqual(0.99);
    // One list alone misses neighbours that fell into the next one: probing more is what finds them.
    expect(foundOneProbe).toBeLessThan(found);
  });

  it('answers a query that does not start its buffer like its copy (usearch reads from the buffer start)', async () => {
    const index = await build({ lists: 40 });
    for (let q = 1; q < 4; q++) {
      expect(query(q).byteOffset).toBeGreaterThan(0);
      expect(index.search(query(q), 4, 32)).toEqual(index.search(query(q).slice(), 4, 32));
    }
  });

  it('is deterministic for a seed; its file holds the codes of its rows and nothing else', async () => {
    const path = join(root, 'a.ivf');
    const a = await build({ lists: 50, seed: 3 }, path);
    const b = await build({ lists: 50, seed: 3 });
    expect(b.centroids).toEqual(a.centroids);
    expect(b.listRows).toEqual(a.listRows);
    expect(b.listCodes).toEqual(a.listCodes);
    for (let q = 0; q < 5; q++) expect(b.search(query(q), 6, 40)).toEqual(a.search(query(q), 6, 40));
    expect(readFileSync(path).length).toBe(ivfFileBytes(d, 50, n));
    // Each list's codes are its rows' components × scale, rounded (clipped at ±127).
    a.listRows.forEach((rows, l) =>
      rows.forEach((row, i) => {
        for (let j = 0; j < d; j += 7) {
          const code = Math.max(-127, Math.min(127, Math.round(vectors[row * d + j]! * a.scale)));
          expect(a.listCodes[l]![i * d + j]).toBe(code + 0); // + 0: an int8 has no −0
        }
      }),
    );

    await expect(IvfIndex.load(path, { dimension: d, size: n + 1 })).rejects.toThrow(/expected 6001 of 64/);
    truncateSync(path, ivfFileBytes(d, 50, n) - 1);
    await expect(IvfIndex.load(path, { dimension: d, size: n })).rejects.toThrow(/bytes, expected/);
    writeFileSync(path, 'not an index, but long enough to hold a header');
    await expect(IvfIndex.load(path, { dimension: d, size: n })).rejects.toThrow(/not an IVF index/);
  });

  it('reports training then assignment, and stops when aborted', async () => {
    const builder = new IvfBuilder(d, n, { threads: 1, lists: 30, iterations: 4 });
    builder.add(vectors);
    const seen: IvfBuildProgress[] = [];
    await builder.writeIndex(join(root, 'progress.ivf'), (p) => seen.push(p));
    expect(seen.slice(0, 4)).toEqual([1, 2, 3, 4].map((done) => ({ phase: 'train', done, total: 4 })));
    expect(seen.slice(4).every((p) => p.phase === 'assign' && p.total === n)).toBe(true);
    expect(seen.at(-1)).toEqual({ phase: 'assign', done: n, total: n });

    const again = new IvfBuilder(d, n, { threads: 1, lists: 30 });
    again.add(vectors);
    const controller = new AbortController();
    controller.abort(new Error('stop now'));
    await expect(again.writeIndex(join(root, 'aborted.ivf'), undefined, controller.signal)).rejects.toThrow(
      /stop now/,
    );
    await expect(new IvfBuilder(d, n, { threads: 1 }).writeIndex(join(root, 'empty.ivf'))).rejects.toThrow(
      /got 0 of 6000 rows/,
    );
  });
});

describe('embedded store with IVF lists (streamed import)', () => {
  const options = (dir: string) => ({ dir, residentBelow: 0, exactBelow: 1000, vectorFileRows: 2048 });
  async function importInto(store: EmbeddedVectorStore, onIndexProgress?: (p: IvfBuildProgress) => void) {
    await store.importRows(
      'cache',
      d,
      n,
      (function* () {
        for (let first = 0; first < n; first += 1000) yield vectors.slice(first * d, (first + 1000) * d);
      })(),
      onIndexProgress === undefined ? {} : { onIndexProgress },
    );
  }

  it('finds the exact top-10 with exact scores, before and after a reopen', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open(options(dir));
    const phases = new Set<string>();
    await importInto(store, (p) => phases.add(p.phase));
    expect([...phases]).toEqual(['train', 'assign']);
    const manifest = JSON.parse(readFileSync(join(dir, 'cache', 'manifest.json'), 'utf8')) as {
      files: { index: string };
    };
    expect(manifest.files.index).toBe('index.1.ivf');
    expect(await store.buildIndex('cache')).toBe(true);
    const first = await store.search('cache', queries, { k: 10, includeVectors: true });
    await store.close();

    const reopened = await EmbeddedVectorStore.open(options(dir));
    const again = await reopened.search('cache', queries, { k: 10, includeVectors: true });
    expect(again).toEqual(first);
    let found = 0;
    again.forEach((hits, q) => {
      const truth = exactTop(query(q), 10);
      found += hits.filter((hit) => truth.includes(hit.id)).length;
      for (const hit of hits) {
        expect(hit.score).toBe(innerProductScore(query(q), vectors, hit.id));
        expect(hit.vector).toEqual(vectors.subarray(hit.id * d, (hit.id + 1) * d));
      }
    });
    expect(found / (again.length * 10)).toBeGreaterThanOrEqual(0.99);
    await reopened.close();
  });

  it('a damaged IVF file leaves the collection searched exactly', async () => {
    const dir = freshDir();
    const store = await EmbeddedVectorStore.open(options(dir));
    await importInto(store);
    await store.close();
    truncateSync(join(dir, 'cache', 'index.1.ivf'), 100);
    const reopened = await EmbeddedVectorStore.open(options(dir));
    const hits = await reopened.search('cache', queries.subarray(0, 3 * d), { k: 10 });
    hits.forEach((list, q) => expect(list.map((hit) => hit.id)).toEqual(exactTop(query(q), 10)));
    await reopened.close();
  });

  it('refuses IVF settings out of range, naming the field', async () => {
    await expect(EmbeddedVectorStore.open({ ivf: { probes: 0 } })).rejects.toThrow(/ivf.probes must be/);
    await expect(EmbeddedVectorStore.open({ ivf: { lists: 1.5 } })).rejects.toThrow(/ivf.lists must be/);
    await expect(EmbeddedVectorStore.open({ streamedIndex: 'flat' as unknown as 'ivf' })).rejects.toThrow(
      /streamedIndex must be ivf or hnsw/,
    );
  });
});
