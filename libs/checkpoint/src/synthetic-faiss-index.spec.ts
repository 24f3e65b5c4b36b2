// The streamed faiss flat-index writer and the synthetic visual cache (issue #18): round trips through
// the reader, the layout faiss.write_index produces, unit norms, clustering, row regeneration.
import { mkdtempSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFaissFlatIndex, readFaissFlatIndex } from './faiss-index.reader';
import { FAISS_FLAT_HEADER_BYTES, writeFaissFlatIndexStream } from './faiss-index.writer';
import {
  syntheticFaissIndexBytes,
  syntheticFaissQueries,
  syntheticFaissRow,
  writeSyntheticFaissIndex,
  type SyntheticFaissOptions,
} from './synthetic-faiss-index';

const dir = mkdtempSync(join(tmpdir(), 'faiss-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const tmp = (name: string): string => join(dir, `${counter++}-${name}`);

const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, x, i) => s + x * b[i]!, 0);

describe('writeFaissFlatIndexStream', () => {
  it('writes the faiss.write_index layout the reader accepts, from chunks of any row count', async () => {
    const path = tmp('l2.index');
    const rows = Float32Array.from({ length: 5 * 3 }, (_, i) => i / 4);
    const result = await writeFaissFlatIndexStream(
      path,
      { d: 3, ntotal: 5, fourcc: 'IxF2' },
      async (sink) => {
        await sink(rows.subarray(0, 6));
        await sink(rows.subarray(6, 9));
        await sink(rows.subarray(9));
      },
    );
    const file = readFileSync(path);
    expect(result).toEqual({ bytes: file.length, ntotal: 5 });
    expect(file.length).toBe(FAISS_FLAT_HEADER_BYTES + 60);
    expect(file.subarray(0, 4).toString('latin1')).toBe('IxF2');
    expect(file.readBigInt64LE(16)).toBe(1n << 20n); // faiss's dummy fields
    expect(file.readBigInt64LE(24)).toBe(1n << 20n);
    const index = await readFaissFlatIndex(path);
    expect(index).toMatchObject({ type: 'IndexFlatL2', metric: 'l2', d: 3, ntotal: 5, isTrained: true });
    expect(Array.from(index.vectors)).toEqual(Array.from(rows));
  });

  it('fails without leaving a file when the source gives too few or too many rows', async () => {
    const short = tmp('short.index');
    await expect(
      writeFaissFlatIndexStream(short, { d: 2, ntotal: 3 }, async (sink) => sink(new Float32Array(4))),
    ).rejects.toThrow(/produced 2 rows; the header announces 3/);
    const long = tmp('long.index');
    await expect(
      writeFaissFlatIndexStream(long, { d: 2, ntotal: 1 }, async (sink) => sink(new Float32Array(4))),
    ).rejects.toThrow(/more than the 1 rows/);
    const ragged = tmp('ragged.index');
    await expect(
      writeFaissFlatIndexStream(ragged, { d: 2, ntotal: 1 }, async (sink) => sink(new Float32Array(3))),
    ).rejects.toThrow(/not whole rows/);
    for (const p of [short, long, ragged]) {
      expect(existsSync(p)).toBe(false);
      expect(existsSync(`${p}.partial`)).toBe(false);
    }
  });
});

describe('writeSyntheticFaissIndex', () => {
  // 64 clusters of ~47 rows, d = 96.
  const options: SyntheticFaissOptions = { count: 3001, dimension: 96, seed: 42, clusters: 64 };

  it('round-trips: an IndexFlatIP of unit vectors, each row regenerable bit for bit', async () => {
    const path = tmp('ip.index');
    const progress: [number, number][] = [];
    const result = await writeSyntheticFaissIndex(path, {
      ...options,
      // 100-row chunks (the last one short): the disk write of one overlaps the next's generation.
      chunkBytes: 100 * 96 * 4,
      onProgress: (done, total) => progress.push([done, total]),
    });
    expect(result).toEqual({ path, bytes: statSync(path).size, ntotal: 3001, d: 96, clusters: 64 });
    expect(result.bytes).toBe(syntheticFaissIndexBytes(options));
    expect(progress).toHaveLength(31);
    expect(progress[0]).toEqual([100, 3001]);
    expect(progress.at(-1)).toEqual([3001, 3001]);

    const index = await readFaissFlatIndex(path);
    expect(index).toMatchObject({ fourcc: 'IxFI', type: 'IndexFlatIP', metric: 'inner_product', d: 96 });
    expect(index.ntotal).toBe(3001);
    let worst = 0;
    for (let r = 0; r < index.ntotal; r++) {
      const v = index.vectors.subarray(r * 96, (r + 1) * 96);
      worst = Math.max(worst, Math.abs(Math.sqrt(dot(v, v)) - 1));
    }
    // float32 rounding of 96 products normalised in double: a few ulps of 1.
    expect(worst).toBeLessThan(1e-6);

    const handle = await openFaissFlatIndex(path);
    try {
      for (const r of [0, 1, 1500, 3000]) {
        expect(Array.from(syntheticFaissRow(r, options)), `row ${r}`).toEqual(
          Array.from(await handle.readVectors(r, 1)),
        );
      }
    } finally {
      await handle.close();
    }
    expect(() => syntheticFaissRow(3001, options)).toThrow(RangeError);
  });

  it('is clustered like image features: rows near their cluster-mates, near-orthogonal to the rest', () => {
    // With noise 0.6 two rows of one cluster have cosine ≈ 1/(1 + 0.36) = 0.74; unrelated rows
    // ≈ N(0, 1/d) in d = 96, so |cos| rarely above 0.4.
    const rows = Array.from({ length: 300 }, (_, r) => syntheticFaissRow(r, options));
    let best = 0;
    let typical = 0;
    for (let i = 0; i < rows.length; i++) {
      const sims = rows.map((v, j) => (j === i ? -Infinity : dot(rows[i]!, v))).sort((a, b) => b - a);
      best += sims[0]!;
      typical += sims[Math.floor(sims.length / 2)]!;
    }
    expect(best / rows.length).toBeGreaterThan(0.6);
    expect(Math.abs(typical / rows.length)).toBeLessThan(0.1);
  });

  it('is reproducible from its options, and the seed changes every row', async () => {
    const a = tmp('a.index');
    const b = tmp('b.index');
    const c = tmp('c.index');
    const small = { count: 50, dimension: 16, seed: 1 };
    await writeSyntheticFaissIndex(a, small);
    await writeSyntheticFaissIndex(b, small);
    await writeSyntheticFaissIndex(c, { ...small, seed: 2 });
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    const va = (await readFaissFlatIndex(a)).vectors;
    const vc = (await readFaissFlatIndex(c)).vectors;
    for (let r = 0; r < 50; r++) expect(va[r * 16]).not.toBe(vc[r * 16]);
  });

  it('writes an empty index for count 0', async () => {
    const path = tmp('empty.index');
    await writeSyntheticFaissIndex(path, { count: 0, dimension: 8, seed: 0 });
    expect((await readFaissFlatIndex(path)).ntotal).toBe(0);
  });
});

describe('syntheticFaissQueries', () => {
  it('gives unit queries whose nearest stored row is the row each was made from', async () => {
    const options: SyntheticFaissOptions = { count: 2000, dimension: 64, seed: 9, clusters: 16 };
    const path = tmp('queries.index');
    await writeSyntheticFaissIndex(path, options);
    const { vectors: stored } = await readFaissFlatIndex(path);
    const { rows, vectors } = syntheticFaissQueries(options, 40, 3);
    expect(rows).toHaveLength(40);
    expect(new Set(rows).size).toBeGreaterThan(30);
    for (let q = 0; q < 40; q++) {
      const query = vectors.subarray(q * 64, (q + 1) * 64);
      expect(Math.abs(dot(query, query) - 1)).toBeLessThan(1e-5);
      let argmax = -1;
      let max = -Infinity;
      for (let r = 0; r < 2000; r++) {
        const s = dot(query, stored.subarray(r * 64, (r + 1) * 64));
        if (s > max) [max, argmax] = [s, r];
      }
      expect(argmax, `query ${q}`).toBe(rows[q]);
      expect(max).toBeGreaterThan(0.98);
    }
    // another query seed draws other rows
    expect(syntheticFaissQueries(options, 40, 4).rows).not.toEqual(rows);
  });
});
