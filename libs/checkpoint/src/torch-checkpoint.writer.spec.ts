import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileSource } from './byte-source';
import { crc32, crc32ZeroExtend } from './crc32';
import { float32ToBfloat16Bits, float32ToFloat16Bits, toFloat32, type DType, type RawTensor } from './tensor';
import { bytesOf } from './testing-fixtures';
import { openTorchCheckpoint, TorchTensorEntry, type TorchCheckpoint } from './torch-checkpoint.reader';
import {
  planTorchCheckpoint,
  streamedTensor,
  writeTorchCheckpoint,
  type StreamedTensor,
  type TorchValue,
} from './torch-checkpoint.writer';
import { ZipReader } from './zip-reader';

const dir = mkdtempSync(join(tmpdir(), 'ckpt-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const tmp = (name: string): string => join(dir, `${counter++}-${name}`);

const raw = (dtype: DType, shape: number[], data: Uint8Array): RawTensor => ({ dtype, shape, data });

async function withCheckpoint<T>(path: string, use: (ckpt: TorchCheckpoint) => Promise<T>): Promise<T> {
  const ckpt = await openTorchCheckpoint(path);
  try {
    return await use(ckpt);
  } finally {
    await ckpt.close();
  }
}

async function withZip<T>(path: string, use: (zip: ZipReader) => Promise<T>): Promise<T> {
  const zip = await ZipReader.open(await openFileSource(path));
  try {
    return await use(zip);
  } finally {
    await zip.close();
  }
}

describe('writeTorchCheckpoint: round trips through openTorchCheckpoint', () => {
  it('keeps dtypes, shapes, values and nested dict / OrderedDict / list structure', async () => {
    const f32 = new Float32Array([1.5, -2, 0.25, 3e-8, -0, 65504]);
    const f16 = new Uint16Array([1, -2, 0.5, 65504].map(float32ToFloat16Bits));
    const bf16 = new Uint16Array([1.5, -0.25, 2].map(float32ToBfloat16Bits));
    const i64 = new BigInt64Array([-3n, 2n ** 40n, 0n, 9_007_199_254_740_993n]);
    const state = new Map<string, TorchValue>([
      ['w.f32', raw('float32', [2, 3], bytesOf(f32))],
      ['w.f16', raw('float16', [2, 1, 2], bytesOf(f16))],
      ['w.bf16', raw('bfloat16', [3], bytesOf(bf16))],
      ['steps', raw('int64', [4], bytesOf(i64))],
      ['f64', raw('float64', [1], bytesOf(new Float64Array([Math.PI])))],
      ['i32', raw('int32', [2], bytesOf(new Int32Array([-7, 2 ** 30])))],
      ['i16', raw('int16', [1], bytesOf(new Int16Array([-300])))],
      ['i8', raw('int8', [1], bytesOf(new Int8Array([-5])))],
      ['u8', raw('uint8', [2], new Uint8Array([200, 3]))],
      ['mask', raw('bool', [2], new Uint8Array([1, 0]))],
      ['scalar', raw('float32', [], bytesOf(new Float32Array([7])))],
      ['empty', raw('float32', [0, 4], new Uint8Array(0))],
    ]);
    const path = tmp('nested.pth');
    const root: TorchValue = {
      model: state,
      epoch: 3,
      lr: 0.5,
      big: 2n ** 70n,
      neg: -(2 ** 40),
      name: 'run ü',
      flags: [true, false, null],
      nested: { inner: new Map<number, TorchValue>([[7, 'seven']]) },
    };
    const result = await writeTorchCheckpoint(path, root);
    expect(result.tensors).toBe(12);
    expect(result.tensorBytes).toBe(24 + 8 + 6 + 32 + 8 + 8 + 2 + 1 + 2 + 2 + 4);
    expect(result.bytes).toBe((await stat(path)).size);

    await withCheckpoint(path, async (ckpt) => {
      const top = ckpt.root as Map<string, unknown>;
      expect([...top.keys()]).toEqual(['model', 'epoch', 'lr', 'big', 'neg', 'name', 'flags', 'nested']);
      expect(top.get('epoch')).toBe(3);
      expect(top.get('lr')).toBe(0.5);
      expect(top.get('big')).toBe(2n ** 70n);
      expect(top.get('neg')).toBe(-(2 ** 40));
      expect(top.get('name')).toBe('run ü');
      expect(top.get('flags')).toEqual([true, false, null]);
      expect(((top.get('nested') as Map<string, unknown>).get('inner') as Map<number, unknown>).get(7)).toBe(
        'seven',
      );
      const sd = ckpt.stateDict(['model']);
      expect([...sd.keys()]).toEqual([...state.keys()]);
      for (const [key, value] of state) {
        const expected = value as RawTensor;
        const entry = sd.get(key)!;
        expect(entry.dtype, key).toBe(expected.dtype);
        expect(entry.shape, key).toEqual(expected.shape);
        expect((await entry.read()).data, key).toEqual(expected.data);
      }
      expect(Array.from(toFloat32(await sd.get('w.bf16')!.read()))).toEqual([1.5, -0.25, 2]);
      expect(Array.from(toFloat32(await sd.get('w.f16')!.read()))).toEqual([1, -2, 0.5, 65504]);
    });
  });

  it('writes a plain OrderedDict root as consolidated.00.pth is, and reads back its order', async () => {
    const path = tmp('plain.pth');
    const keys = Array.from({ length: 1203 }, (_, i) => `layers.${i}.w`); // > one SETITEMS batch
    const root = new Map(keys.map((k, i) => [k, raw('float32', [1], bytesOf(new Float32Array([i])))]));
    await writeTorchCheckpoint(path, root, { archiveName: 'consolidated.00' });
    await withCheckpoint(path, async (ckpt) => {
      expect(ckpt.archiveName).toBe('consolidated.00');
      expect(ckpt.root).toBeInstanceOf(Map);
      const sd = ckpt.stateDict();
      expect([...sd.keys()]).toEqual(keys);
      expect(Array.from(toFloat32(await sd.get('layers.1202.w')!.read()))).toEqual([1202]);
      expect(Array.from(toFloat32(await sd.get('layers.0.w')!.read()))).toEqual([0]);
    });
  });

  it('streams chunks of any size from sync and async sources, and shares a tensor used twice', async () => {
    const n = 300_000; // 1.2 MB: crosses the writer's staging buffer both ways
    const expected = new Float32Array(n);
    for (let i = 0; i < n; i++) expected[i] = Math.fround(Math.sin(i));
    const sizes = [1, 7, 100_000, 3, 150_000]; // the rest follows
    const reused = new Float32Array(150_000);
    const chunked = streamedTensor('float32', [n], async function* () {
      let at = 0;
      for (const size of [...sizes, n - sizes.reduce((a, b) => a + b, 0)]) {
        // The same buffer every time: the writer must be done with a chunk when write() resolves.
        const view = reused.subarray(0, size);
        view.set(expected.subarray(at, at + size));
        at += size;
        await Promise.resolve();
        yield view;
      }
    });
    const halves = streamedTensor('int16', [2, 2], function* () {
      yield new Int16Array([1, -1]);
      yield new Int16Array([2, -2]);
    });
    let writes = 0;
    const counted: StreamedTensor = {
      dtype: 'float32',
      shape: [2],
      write: async (sink) => {
        writes++;
        await sink.write(new Float32Array([4, 5]));
      },
    };
    const progress: [string, number][] = [];
    const path = tmp('streamed.pth');
    const result = await writeTorchCheckpoint(
      path,
      new Map<string, TorchValue>([
        ['big', chunked],
        ['halves', halves],
        ['tied.a', counted],
        ['tied.b', counted],
      ]),
      { onTensor: (p, bytes) => progress.push([p, bytes]) },
    );
    expect(result.tensors).toBe(3);
    expect(writes).toBe(1);
    expect(progress).toEqual([
      ['big', n * 4],
      ['halves', 8],
      ['tied.a', 8],
    ]);
    await withCheckpoint(path, async (ckpt) => {
      const sd = ckpt.stateDict();
      const big = await sd.get('big')!.read();
      expect(Buffer.from(big.data).equals(Buffer.from(bytesOf(expected)))).toBe(true);
      expect(Array.from(toFloat32(await sd.get('halves')!.read()))).toEqual([1, -1, 2, -2]);
      const a = sd.get('tied.a')!;
      const b = sd.get('tied.b')!;
      expect(a.layout.storage.key).toBe(b.layout.storage.key);
      expect(Array.from(toFloat32(await b.read()))).toEqual([4, 5]);
    });
  });

  it('fails without leaving a file when a source produces the wrong number of bytes', async () => {
    const cases: [string, StreamedTensor, RegExp][] = [
      [
        'short',
        streamedTensor('float32', [4], () => [new Float32Array(3)]),
        /data\/0: the source produced 12 bytes; its dtype and shape need 16/,
      ],
      [
        'long',
        streamedTensor('float16', [2], () => [new Uint16Array(2), new Uint16Array(1)]),
        /data\/0: the source produced more than the 4 bytes/,
      ],
      [
        'failing',
        {
          dtype: 'float32',
          shape: [2],
          write: async () => Promise.reject(new Error('generator broke')),
        },
        /generator broke/,
      ],
    ];
    for (const [name, source, message] of cases) {
      const path = tmp(`${name}.pth`);
      await expect(writeTorchCheckpoint(path, { w: source }), name).rejects.toThrow(message);
      expect(existsSync(path), name).toBe(false);
      expect(existsSync(`${path}.partial`), name).toBe(false);
    }
    await expect(
      writeTorchCheckpoint(tmp('raw.pth'), { w: raw('float32', [3], new Uint8Array(8)) }),
    ).rejects.toThrow(/tensor w: float32\[3\] needs 12 bytes, the data has 8/);
    const cyclic: { [key: string]: TorchValue } = {};
    (cyclic as Record<string, unknown>)['self'] = cyclic;
    await expect(writeTorchCheckpoint(tmp('cycle.pth'), cyclic)).rejects.toThrow(/cycle at self/);
  });
});

describe('writeTorchCheckpoint: the torch.save layout', () => {
  it('rewrites the golden checkpoints with the same data.pkl bytes and identical tensors', async () => {
    for (const [file, archive] of [
      [goldenPath('7B.pth'), '7B'],
      [goldenPath('llama', '7B', 'consolidated.00.pth'), 'consolidated.00'],
    ] as const) {
      const path = tmp(`${archive}.pth`);
      await withCheckpoint(file, async (golden) => {
        // The root as torch.load gives it: {'model': OrderedDict} or a bare OrderedDict, with the
        // golden file's own (lazy) tensor entries as sources.
        const sd = golden.stateDict(archive === '7B' ? ['model'] : []);
        const root: TorchValue = archive === '7B' ? { model: sd } : sd;
        await writeTorchCheckpoint(path, root, { archiveName: archive, byteorderRecord: false });
      });
      // CPython's pickler wrote the golden data.pkl; ours must match it byte for byte.
      const [ours, theirs] = await Promise.all([
        withZip(path, async (zip) => zip.readEntry(`${archive}/data.pkl`)),
        withZip(file, async (zip) => zip.readEntry(`${archive}/data.pkl`)),
      ]);
      expect(Buffer.from(ours).equals(Buffer.from(theirs)), archive).toBe(true);
      await withZip(file, async (goldenZip) =>
        withZip(path, async (zip) => {
          expect([...zip.entries.keys()].sort()).toEqual([...goldenZip.entries.keys()].sort());
          for (const name of goldenZip.entries.keys()) {
            // readEntry checks each record's CRC-32 against the directory.
            const a = await zip.readEntry(name);
            const b = await goldenZip.readEntry(name);
            expect(Buffer.from(a).equals(Buffer.from(b)), name).toBe(true);
          }
        }),
      );
    }
  });

  it('aligns every record to 64 bytes, uses data descriptors and writes byteorder and version', async () => {
    const path = tmp('layout.pth');
    await writeTorchCheckpoint(path, {
      a: raw('float16', [3], new Uint8Array(6)),
      b: raw('float32', [5], new Uint8Array(20)),
    });
    const file = readFileSync(path);
    await withZip(path, async (zip) => {
      expect([...zip.entries.keys()]).toEqual([
        'archive/data.pkl',
        'archive/byteorder',
        'archive/data/0',
        'archive/data/1',
        'archive/version',
      ]);
      expect(new TextDecoder().decode(await zip.readEntry('archive/byteorder'))).toBe('little');
      expect(new TextDecoder().decode(await zip.readEntry('archive/version'))).toBe('3\n');
      for (const entry of zip.entries.values()) {
        const at = entry.localHeaderOffset;
        expect(file.readUInt32LE(at)).toBe(0x04034b50);
        expect(file.readUInt16LE(at + 6)).toBe(0x0808); // data descriptor + UTF-8 names
        expect(file.readUInt16LE(at + 8)).toBe(0); // STORED
        const dataAt = at + 30 + file.readUInt16LE(at + 26) + file.readUInt16LE(at + 28);
        expect(dataAt % 64, entry.name).toBe(0);
        // The padding field is torch's: "FB", then its length, then "Z"s.
        const extraAt = at + 30 + file.readUInt16LE(at + 26);
        expect(file.readUInt16LE(extraAt)).toBe(0x4246);
        const descriptorAt = dataAt + entry.compressedSize;
        expect(file.readUInt32LE(descriptorAt)).toBe(0x08074b50);
        expect(file.readUInt32LE(descriptorAt + 4)).toBe(entry.crc32);
        expect(file.readUInt32LE(descriptorAt + 8)).toBe(entry.compressedSize);
      }
    });
  });

  it('planTorchCheckpoint gives the exact size, storages and tensor bytes without producing data', async () => {
    const path = tmp('plan.pth');
    let produced = 0;
    const lazy: StreamedTensor = {
      dtype: 'float32',
      shape: [5, 7],
      write: async (sink) => {
        produced++;
        await sink.write(new Float32Array(35).fill(0.5));
      },
    };
    const shared = raw('int64', [2], bytesOf(new BigInt64Array([1n, 2n])));
    const root = {
      model: new Map<string, TorchValue>([
        ['a.weight', lazy],
        ['b', shared],
        ['c', shared],
        ['scalar', raw('float16', [], bytesOf(new Uint16Array([0x3c00])))],
      ]),
      epoch: 3,
    };
    for (const options of [{}, { archiveName: 'consolidated.00', byteorderRecord: false }]) {
      const plan = planTorchCheckpoint(root, options);
      expect(produced).toBe(0);
      const written = await writeTorchCheckpoint(path, root, options);
      expect(plan).toEqual(written);
      expect(plan).toMatchObject({ bytes: (await stat(path)).size, tensors: 3, tensorBytes: 140 + 16 + 2 });
      produced = 0;
    }
    expect(() => planTorchCheckpoint(root, { archiveName: 'a/b' })).toThrow(/archive name/);
  });

  it('writes ZIP64 records when forced, which the reader follows', async () => {
    const path = tmp('zip64.pth');
    const values = new Float32Array([1, 2, 3]);
    const root = { w: raw('float32', [3], bytesOf(values)) };
    const written = await writeTorchCheckpoint(path, root, { forceZip64: true });
    const file = readFileSync(path);
    expect(planTorchCheckpoint(root, { forceZip64: true })).toEqual(written);
    expect(written.bytes).toBe(file.length);
    // EOCD with every field saturated, after a ZIP64 record and locator.
    const eocd = file.length - 22;
    expect(file.readUInt32LE(eocd)).toBe(0x06054b50);
    expect(file.readUInt16LE(eocd + 10)).toBe(0xffff);
    expect(file.readUInt32LE(eocd + 12)).toBe(0xffffffff);
    expect(file.readUInt32LE(eocd + 16)).toBe(0xffffffff);
    expect(file.readUInt32LE(eocd - 20)).toBe(0x07064b50);
    const recordAt = Number(file.readBigUInt64LE(eocd - 20 + 8));
    expect(file.readUInt32LE(recordAt)).toBe(0x06064b50);
    expect(file.readBigUInt64LE(recordAt + 32)).toBe(4n); // data.pkl, byteorder, data/0, version
    await withZip(path, async (zip) => {
      const entry = zip.entry('archive/data/0')!;
      expect(entry.uncompressedSize).toBe(12);
      expect(entry.localHeaderOffset).toBeGreaterThan(0);
      // ZIP64 data descriptors carry 8-byte sizes.
      const at = entry.localHeaderOffset;
      const dataAt = at + 30 + file.readUInt16LE(at + 26) + file.readUInt16LE(at + 28);
      expect(dataAt % 64).toBe(0);
      expect(file.readUInt32LE(at + 18)).toBe(0xffffffff);
      expect(file.readBigUInt64LE(dataAt + 12 + 8)).toBe(12n);
      expect(await zip.readEntry('archive/data/0')).toEqual(bytesOf(values));
    });
    await withCheckpoint(path, async (ckpt) =>
      expect(Array.from(toFloat32(await ckpt.stateDict().get('w')!.read()))).toEqual([1, 2, 3]),
    );
  });

  it('writes a 4.5 GB tensor as a sparse hole with ZIP64 sizes and offsets', async () => {
    const path = tmp('huge.pth');
    const hugeBytes = 4.5 * 2 ** 30;
    const huge: StreamedTensor = {
      dtype: 'float16',
      shape: [hugeBytes / 2 / 1024, 1024],
      write: async (sink) => {
        await sink.write(new Uint16Array([0x3c00])); // 1.0, then zeros
        await sink.zeros(hugeBytes - 2);
      },
    };
    const after = raw('float32', [3], bytesOf(new Float32Array([1, 2, 3])));
    const root = new Map<string, TorchValue>([
      ['huge', huge],
      ['after', after],
    ]);
    const written = await writeTorchCheckpoint(path, root);
    const size = (await stat(path)).size;
    // Past 4 GiB: ZIP64 sizes for the huge entry, ZIP64 offsets for the later ones and the end records.
    expect(planTorchCheckpoint(root)).toEqual({ ...written, bytes: size });
    expect(size).toBeGreaterThan(hugeBytes);
    await withZip(path, async (zip) => {
      const entry = zip.entry('archive/data/0')!;
      expect(entry.uncompressedSize).toBe(hugeBytes);
      expect(entry.crc32).toBe(crc32ZeroExtend(crc32(new Uint8Array([0x00, 0x3c])), hugeBytes - 2));
      expect(zip.entry('archive/data/1')!.localHeaderOffset).toBeGreaterThan(2 ** 32);
      expect(Array.from(await zip.readRange('archive/data/0', 0, 4))).toEqual([0x00, 0x3c, 0, 0]);
      expect(Array.from(await zip.readRange('archive/data/0', hugeBytes - 2, 2))).toEqual([0, 0]);
    });
    await withCheckpoint(path, async (ckpt) => {
      const sd = ckpt.stateDict();
      expect(sd.get('huge')).toBeInstanceOf(TorchTensorEntry);
      expect(sd.get('huge')!.byteLength).toBe(hugeBytes);
      expect(Array.from(toFloat32(await sd.get('after')!.read()))).toEqual([1, 2, 3]);
    });
    rmSync(path);
  });
});

describe('crc32ZeroExtend', () => {
  it('equals the CRC-32 of the bytes followed by that many zeros', () => {
    const head = new TextEncoder().encode('123456789');
    for (const zeros of [0, 1, 2, 3, 64, 1000, 65_537]) {
      const whole = new Uint8Array(head.length + zeros);
      whole.set(head);
      expect(crc32ZeroExtend(crc32(head), zeros), String(zeros)).toBe(crc32(whole));
      expect(crc32ZeroExtend(0, zeros), String(zeros)).toBe(crc32(new Uint8Array(zeros)));
    }
  });
});
