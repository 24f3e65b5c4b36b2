import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointFormatError } from './checkpoint.error';
import { openFaissFlatIndex, readFaissFlatIndex } from './faiss-index.reader';
import { readNpy } from './npy';
import { toFloat32 } from './tensor';

const dir = mkdtempSync(join(tmpdir(), 'ckpt-faiss-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A flat index file as faiss.write_index writes it (MODEL_SPEC §6.5). */
function flatIndex(
  fourcc: string,
  d: number,
  rows: number[][],
  metricType: number,
  extra?: { count?: bigint },
): Uint8Array {
  const count = rows.length * d;
  const out = new Uint8Array(4 + 4 + 8 + 16 + 1 + 4 + (metricType > 1 ? 4 : 0) + 8 + count * 4);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(fourcc), 0);
  view.setInt32(4, d, true);
  view.setBigInt64(8, BigInt(rows.length), true);
  view.setBigInt64(16, 1048576n, true); // the two dummies faiss writes
  view.setBigInt64(24, 1048576n, true);
  view.setUint8(32, 1);
  view.setInt32(33, metricType, true);
  let at = 37;
  if (metricType > 1) {
    view.setFloat32(at, 3, true);
    at += 4;
  }
  view.setBigUint64(at, extra?.count ?? BigInt(count), true);
  at += 8;
  for (const row of rows)
    for (const v of row) {
      view.setFloat32(at, v, true);
      at += 4;
    }
  return out;
}

async function failure(bytes: Uint8Array, name: string): Promise<string> {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  const error: unknown = await openFaissFlatIndex(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CheckpointFormatError);
  expect((error as Error).message.startsWith(`${path}: faiss index: `)).toBe(true);
  return (error as Error).message;
}

describe('faiss flat index', () => {
  it('reads the golden knn.index (IxFI, d=1024, ntotal=2048) and reproduces the official top-k', async () => {
    const index = await readFaissFlatIndex(goldenPath('knn.index'));
    expect(index.fourcc).toBe('IxFI');
    expect(index.type).toBe('IndexFlatIP');
    expect(index.metric).toBe('inner_product');
    expect(index.d).toBe(1024);
    expect(index.ntotal).toBe(2048);
    expect(index.vectors.length).toBe(2048 * 1024);
    // Golden vectors are random unit vectors.
    let norm = 0;
    for (let i = 0; i < 1024; i++) norm += index.vectors[i]! ** 2;
    expect(Math.abs(Math.sqrt(norm) - 1)).toBeLessThan(1e-5);

    // Brute-force inner products over the stored vectors must give faiss's top-10 (MODEL_SPEC §1.4).
    const q = toFloat32(readNpy(goldenPath('expected', 'fusion', 'point_knn-on', 'q.npy')));
    const ids = toFloat32(readNpy(goldenPath('expected', 'fusion', 'point_knn-on', 'knn_ids.npy')));
    const scores = toFloat32(readNpy(goldenPath('expected', 'fusion', 'point_knn-on', 'knn_scores.npy')));
    const all = Array.from({ length: index.ntotal }, (_, row) => {
      let s = 0;
      for (let j = 0; j < index.d; j++) s += index.vectors[row * index.d + j]! * q[j]!;
      return { row, s };
    }).sort((a, b) => b.s - a.s);
    expect(all.slice(0, 10).map((x) => x.row)).toEqual(Array.from(ids));
    // faiss sums 1024 float32 products in its own order; 1e-5 covers that rounding at scores ~0.1.
    all.slice(0, 10).forEach((x, i) => expect(Math.abs(x.s - scores[i]!)).toBeLessThan(1e-5));
  });

  it('streams vectors in batches without loading the whole file', async () => {
    const index = await openFaissFlatIndex(goldenPath('knn.index'));
    try {
      const whole = readFileSync(goldenPath('knn.index'));
      const row5 = await index.readVectors(5, 1);
      expect(row5[0]).toBe(whole.readFloatLE(45 + 5 * 1024 * 4));
      let rows = 0;
      let lastFirst = -1;
      for await (const batch of index.batches(500)) {
        expect(batch.first).toBe(rows);
        rows += batch.vectors.length / 1024;
        lastFirst = batch.first;
      }
      expect(rows).toBe(2048);
      expect(lastFirst).toBe(2000);
      await expect(index.readVectors(2040, 9)).rejects.toThrow(/outside 0\.\.2048/);
    } finally {
      await index.close();
    }
  });

  it('reads IxF2 (L2) indexes', async () => {
    const path = join(dir, 'l2.index');
    writeFileSync(
      path,
      flatIndex(
        'IxF2',
        2,
        [
          [1, 2],
          [3, 4],
          [5, 6],
        ],
        1,
      ),
    );
    const index = await readFaissFlatIndex(path);
    expect(index.type).toBe('IndexFlatL2');
    expect(index.metric).toBe('l2');
    expect(Array.from(index.vectors)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('rejects non-flat index types by name', async () => {
    const hnsw = flatIndex('IxFI', 2, [[1, 2]], 0);
    hnsw.set(new TextEncoder().encode('IHNf'), 0);
    expect(await failure(hnsw, 'hnsw.index')).toMatch(
      /type "IHNf" \(IndexHNSWFlat\) is not supported; only flat indexes IxFI \(IndexFlatIP\) and IxF2 \(IndexFlatL2\)/,
    );
    const ivf = flatIndex('IwFl', 2, [[1, 2]], 0);
    expect(await failure(ivf, 'ivf.index')).toMatch(/type "IwFl" \(IndexIVFFlat\) is not supported/);
  });

  it('rejects truncated files, trailing bytes and inconsistent headers', async () => {
    const good = flatIndex(
      'IxFI',
      4,
      [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ],
      0,
    );
    expect(await failure(good.subarray(0, good.length - 3), 'cut.index')).toMatch(
      /file is 74 bytes but 2 vectors of d=4 need 77 \(truncated\)/,
    );
    expect(await failure(good.subarray(0, 20), 'header-cut.index')).toMatch(/truncated/);
    expect(await failure(good.subarray(0, 2), 'tiny.index')).toMatch(/too short/);
    const trailing = new Uint8Array(good.length + 4);
    trailing.set(good);
    expect(await failure(trailing, 'trailing.index')).toMatch(/4 more than 2 vectors of d=4 need/);
    expect(await failure(flatIndex('IxFI', 4, [[1, 2, 3, 4]], 0, { count: 5n }), 'count.index')).toMatch(
      /stores 5 floats but ntotal\*d = 1\*4 = 4/,
    );
    expect(await failure(flatIndex('IxFI', 2, [[1, 2]], 1), 'metric.index')).toMatch(
      /IxFI \(IndexFlatIP\) must have metric_type 0 but the header says 1/,
    );
  });
});
