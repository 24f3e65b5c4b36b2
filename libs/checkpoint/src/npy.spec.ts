import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointFormatError } from './checkpoint.error';
import { encodeNpy, parseNpy, readNpy, readNpyRows, writeNpy, type NpyRowChunk } from './npy';
import { toFloat32, type RawTensor } from './tensor';
import { bytesOf } from './testing-fixtures';

const dir = mkdtempSync(join(tmpdir(), 'ckpt-npy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface ManifestOutput {
  readonly file: string;
  readonly shape: number[];
  readonly dtype: string;
}

function manifestOutputs(): ManifestOutput[] {
  const manifest = JSON.parse(readFileSync(goldenPath('manifest.json'), 'utf8')) as {
    cases: { outputs?: Record<string, unknown> }[];
  };
  // Tokenizer cases list their JSON files as plain strings; only the tensor outputs matter here.
  return manifest.cases
    .flatMap((c) => Object.values(c.outputs ?? {}))
    .filter(
      (o): o is ManifestOutput =>
        typeof o === 'object' && o !== null && String((o as ManifestOutput).file).endsWith('.npy'),
    );
}

/** Handmade header for format versions numpy only writes for huge or non-latin1 headers. */
function npyWithVersion(major: 2 | 3, header: string, data: Uint8Array): Uint8Array {
  const text = new TextEncoder().encode(header);
  const out = new Uint8Array(12 + text.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0], 0);
  new DataView(out.buffer).setUint32(8, text.length, true);
  out.set(text, 12);
  out.set(data, 12 + text.length);
  return out;
}

describe('npy', () => {
  it('reads every golden .npy with the shape and dtype the manifest lists', () => {
    const outputs = manifestOutputs();
    expect(outputs.length).toBeGreaterThan(50);
    const numpyName: Record<string, string> = {
      float32: 'float32',
      float16: 'float16',
      int64: 'int64',
      int32: 'int32',
    };
    for (const output of outputs) {
      const t = readNpy(goldenPath(output.file));
      expect(t.shape, output.file).toEqual(output.shape);
      expect(numpyName[t.dtype], output.file).toBe(output.dtype);
    }
  });

  it('golden embedding = L2-normalised pre-norm head output (a value check, not just shapes)', () => {
    const embedding = toFloat32(readNpy(goldenPath('expected', 'embed', 'girl.npy')));
    const prenorm = toFloat32(readNpy(goldenPath('expected', 'embed', 'girl.prenorm.npy')));
    const norm = Math.sqrt(prenorm.reduce((s, v) => s + v * v, 0));
    let maxDiff = 0;
    prenorm.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v / norm - embedding[i]!))));
    // Values ~0.03; float32 normalisation in torch vs double here differ by a few ulps (~1e-8).
    expect(maxDiff).toBeLessThan(1e-6);
  });

  it('round-trips every supported dtype through a file, byte for byte', () => {
    const cases: RawTensor[] = [
      { dtype: 'float32', shape: [2, 3], data: bytesOf(new Float32Array([1, 2, 3, 4, 5, 6])) },
      { dtype: 'float16', shape: [2], data: bytesOf(new Uint16Array([0x3c00, 0x7c00])) },
      { dtype: 'float64', shape: [1], data: bytesOf(new Float64Array([Math.PI])) },
      { dtype: 'int64', shape: [2, 1], data: bytesOf(new BigInt64Array([-1n, 2n ** 60n])) },
      { dtype: 'int32', shape: [3], data: bytesOf(new Int32Array([1, -2, 3])) },
      { dtype: 'uint8', shape: [0], data: new Uint8Array(0) },
      { dtype: 'int8', shape: [1, 1, 2], data: bytesOf(new Int8Array([-5, 5])) },
      { dtype: 'bool', shape: [], data: new Uint8Array([1]) },
    ];
    for (const [i, t] of cases.entries()) {
      const path = join(dir, `${i}.npy`);
      writeNpy(path, t);
      expect((statSync(path).size - t.data.length) % 64, 'data starts 64-byte aligned').toBe(0);
      const back = readNpy(path);
      expect(back).toEqual(t);
    }
    expect(readdirSync(dir).length).toBe(cases.length);
  });

  it('writes headers numpy parses (1-d tuples need a trailing comma)', () => {
    const bytes = encodeNpy({ dtype: 'float32', shape: [3], data: new Uint8Array(12) });
    const header = new TextDecoder().decode(bytes.subarray(10, 10 + (bytes[8]! | (bytes[9]! << 8))));
    expect(header).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(3,\), \} *\n$/);
    expect(() => encodeNpy({ dtype: 'bfloat16', shape: [1], data: new Uint8Array(2) })).toThrow(
      /cannot hold bfloat16/,
    );
  });

  it('reads format versions 2.0 and 3.0', () => {
    const data = bytesOf(new Int32Array([7, 8]));
    const v2 = parseNpy(
      npyWithVersion(2, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n", data),
    );
    expect(v2).toEqual({ dtype: 'int32', shape: [2], data });
    const v3 = parseNpy(
      npyWithVersion(3, "{'shape': (1, 2), 'fortran_order': False, 'descr': '<i4'}\n", data),
    );
    expect(v3.shape).toEqual([1, 2]);
  });

  it('rejects Fortran order, unsupported dtypes, bad magic and truncation clearly', () => {
    const fail = (bytes: Uint8Array): string => {
      try {
        parseNpy(bytes, 'x.npy');
      } catch (error) {
        expect(error).toBeInstanceOf(CheckpointFormatError);
        return (error as Error).message;
      }
      throw new Error('expected a failure');
    };
    const data = new Uint8Array(24);
    expect(
      fail(npyWithVersion(2, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", data)),
    ).toMatch(
      /^x\.npy: npy: array is stored in Fortran order; re-save it with np\.save\(path, np\.ascontiguousarray\(a\)\)/,
    );
    expect(
      fail(npyWithVersion(2, "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }\n", data)),
    ).toMatch(/dtype ">f4" is not supported/);
    expect(
      fail(npyWithVersion(2, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }\n", data)),
    ).toMatch(/structured dtypes are not supported/);
    expect(
      fail(npyWithVersion(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }\n", data)),
    ).toMatch(/needs 28 data bytes but the file has 24 \(truncated\)/);
    expect(fail(new Uint8Array(20))).toMatch(/missing \\x93NUMPY magic/);
    const v9 = npyWithVersion(2, '{}', data);
    v9[6] = 9;
    expect(fail(v9)).toMatch(/format version 9\.0 is not supported/);
  });
});

describe('readNpyRows', () => {
  const dir = mkdtempSync(join(tmpdir(), 'npy-rows-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function collect(path: string, rowsPerChunk: number): Promise<NpyRowChunk[]> {
    const chunks: NpyRowChunk[] = [];
    for await (const chunk of readNpyRows(path, rowsPerChunk)) chunks.push(chunk);
    return chunks;
  }

  it('streams the rows in order, in chunks, with the same bytes as the whole-file reader', async () => {
    const values = Float32Array.from({ length: 7 * 5 }, (_, i) => i * 0.5 - 3);
    const path = join(dir, 'rows.npy');
    writeNpy(path, { dtype: 'float32', shape: [7, 5], data: new Uint8Array(values.buffer) });
    const chunks = await collect(path, 3);
    expect(chunks.map((c) => [c.start, c.rows])).toEqual([
      [0, 3],
      [3, 3],
      [6, 1],
    ]);
    expect(chunks.every((c) => c.dtype === 'float32' && c.shape.join('x') === '7x5')).toBe(true);
    const joined = Buffer.concat(chunks.map((c) => c.data));
    expect(joined.equals(Buffer.from(readNpy(path).data))).toBe(true);
  });

  it('reads format 2.0 headers (4-byte header length)', async () => {
    const v1 = encodeNpy({
      dtype: 'int32',
      shape: [4, 2],
      data: new Uint8Array(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]).buffer),
    });
    const headerLength = v1[8]! | (v1[9]! << 8);
    const v2 = new Uint8Array(v1.length + 2);
    v2.set(v1.subarray(0, 8));
    v2[6] = 2;
    new DataView(v2.buffer).setUint32(8, headerLength, true);
    v2.set(v1.subarray(10), 12);
    const path = join(dir, 'v2.npy');
    writeFileSync(path, v2);
    const chunks = await collect(path, 10);
    expect(Array.from(new Int32Array(chunks[0]!.data.buffer))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('refuses a truncated file before yielding anything, and a file that is not .npy', async () => {
    const full = encodeNpy({ dtype: 'float32', shape: [3, 2], data: new Uint8Array(24) });
    const truncated = join(dir, 'truncated.npy');
    writeFileSync(truncated, full.subarray(0, full.length - 4));
    await expect(collect(truncated, 1)).rejects.toThrow(
      /needs 24 data bytes but the file has 20 \(truncated\)/,
    );
    const text = join(dir, 'text.npy');
    writeFileSync(text, 'hello, this is not numpy');
    await expect(collect(text, 1)).rejects.toThrow(CheckpointFormatError);
    await expect(collect(text, 1)).rejects.toThrow(/missing \\x93NUMPY magic/);
  });
});
