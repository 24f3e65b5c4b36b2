import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileSource, type ByteSource } from './byte-source';
import { CheckpointFormatError } from './checkpoint.error';
import { readNpy } from './npy';
import { PickleObject } from './pickle-vm';
import { float16BitsToFloat32, float32ToBfloat16Bits, toFloat32 } from './tensor';
import { bytesOf, writeTorchFixture, writeZipFixture, type Py, type TensorFixture } from './testing-fixtures';
import { openTorchCheckpoint, TorchTensorEntry } from './torch-checkpoint.reader';

const dir = mkdtempSync(join(tmpdir(), 'ckpt-torch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const tmp = (name: string): string => join(dir, `${counter++}-${name}`);

const tensor = (t: TensorFixture): Py => ({ tensor: t });

async function expectFailure(path: string | ByteSource, message: RegExp): Promise<CheckpointFormatError> {
  const error = await openTorchCheckpoint(path).then(
    async (ckpt) => {
      await ckpt.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CheckpointFormatError);
  expect((error as Error).message).toMatch(message);
  return error as CheckpointFormatError;
}

/** Counts the bytes a reader pulls from the file. */
async function countingSource(path: string): Promise<{ source: ByteSource; bytesRead: () => number }> {
  const inner = await openFileSource(path);
  let total = 0;
  return {
    bytesRead: () => total,
    source: {
      name: inner.name,
      size: inner.size,
      read: async (offset, length) => {
        total += length;
        return inner.read(offset, length);
      },
      close: async () => inner.close(),
    },
  };
}

describe('golden checkpoints (official torch.save output)', () => {
  it('7B.pth: {"model": adapter state dict}, float32 with float16 gates', async () => {
    const ckpt = await openTorchCheckpoint(goldenPath('7B.pth'));
    try {
      expect(ckpt.root).toBeInstanceOf(Map);
      expect([...(ckpt.root as Map<string, unknown>).keys()]).toEqual(['model']);
      const sd = ckpt.stateDict(['model']);
      // MODEL_SPEC §6.2 at tiny-a sizes: 16 non-layer tensors + 22 per layer x 2 layers.
      expect(sd.size).toBe(60);
      const prefix = sd.get('prefix_query.weight');
      expect(prefix?.shape).toEqual([32, 64]);
      expect(prefix?.dtype).toBe('float32');
      expect(prefix?.name).toBe('prefix_query.weight');
      const gates = [...sd.values()].filter((e) => e.name.endsWith('attention.gate'));
      expect(gates.map((g) => g.name)).toEqual([
        'llama.layers.0.attention.gate',
        'llama.layers.1.attention.gate',
      ]);
      for (const gate of gates) {
        expect(gate.dtype).toBe('float16');
        expect(gate.shape).toEqual([1, 4, 1, 1]);
      }
      const others = [...sd.values()].filter((e) => !e.name.endsWith('attention.gate'));
      expect(new Set(others.map((e) => e.dtype))).toEqual(new Set(['float32']));
      // Without a prefix the whole tree flattens with dotted keys; root leaves are named by path.
      expect(ckpt.stateDict().get('model.prefix_query.weight')?.shape).toEqual([32, 64]);
      const gate = await gates[0]!.read();
      expect(gate.data.byteLength).toBe(8);
      const values = toFloat32(gate);
      // Golden init: gate ~ normal(sigma 0.25), never zero.
      expect(values.every((v) => v !== 0 && Math.abs(v) < 2)).toBe(true);
    } finally {
      await ckpt.close();
    }
  });

  it('llama/7B/consolidated.00.pth: plain float16 state dict including rope.freqs', async () => {
    const ckpt = await openTorchCheckpoint(goldenPath('llama', '7B', 'consolidated.00.pth'));
    try {
      const sd = ckpt.stateDict();
      expect(sd.get('tok_embeddings.weight')?.shape).toEqual([32000, 64]);
      expect(sd.get('layers.1.feed_forward.w2.weight')?.shape).toEqual([64, 192]);
      const freqs = sd.get('rope.freqs');
      expect(freqs?.shape).toEqual([8]);
      expect(new Set([...sd.values()].map((e) => e.dtype))).toEqual(new Set(['float16']));
      // rope.freqs = 1 / 10000^(2i/head_dim) with head_dim 16, stored as float16.
      const got = toFloat32(await freqs!.read());
      got.forEach((v, i) =>
        expect(Math.abs(v - 1 / 10000 ** ((2 * i) / 16))).toBeLessThan(
          1e-3 * (1 / 10000 ** ((2 * i) / 16)) + 1e-7,
        ),
      );
    } finally {
      await ckpt.close();
    }
  });

  it('imagebind_w3D.pth: float32 plus int64 num_batches_tracked', async () => {
    const ckpt = await openTorchCheckpoint(goldenPath('imagebind_w3D.pth'));
    try {
      const sd = ckpt.stateDict();
      const counted = sd.get('point_trunk.point_encoder.encoder.first_conv.1.num_batches_tracked');
      expect(counted?.dtype).toBe('int64');
      expect(counted?.shape).toEqual([]);
      const n = toFloat32(await counted!.read());
      expect(n.length).toBe(1);
      expect(n[0]).toBeGreaterThanOrEqual(0);
      expect(sd.get('modality_preprocessors.text.mask')?.shape).toEqual([77, 77]);
      expect(new Set([...sd.values()].map((e) => e.dtype))).toEqual(new Set(['float32', 'int64']));
    } finally {
      await ckpt.close();
    }
  });

  it('inputs/airplane.pt: a bare tensor root equals the preprocessed point cloud input', async () => {
    const ckpt = await openTorchCheckpoint(goldenPath('inputs', 'airplane.pt'));
    try {
      expect(ckpt.root).toBeInstanceOf(TorchTensorEntry);
      const root = ckpt.root as TorchTensorEntry;
      expect(root.shape).toEqual([8192, 3]);
      expect(() => ckpt.stateDict()).toThrow(/single tensor/);
      const cloud = toFloat32(await root.read());
      // MODEL_SPEC §2.5 feeds the file's xyz into the encoder; the golden preprocess output is
      // the same cloud with a batch dimension, so the values must match bit for bit.
      const expected = readNpy(goldenPath('expected', 'preprocess', 'point_airplane.npy'));
      expect(expected.shape).toEqual([1, 8192, 3]);
      const reference = toFloat32(expected);
      let maxDiff = 0;
      for (let i = 0; i < cloud.length; i++) maxDiff = Math.max(maxDiff, Math.abs(cloud[i]! - reference[i]!));
      expect(maxDiff).toBeLessThan(1e-6);
    } finally {
      await ckpt.close();
    }
  });

  it('reads nothing but the zip directory and data.pkl until read() is called', async () => {
    const path = goldenPath('7B.pth');
    const { source, bytesRead } = await countingSource(path);
    const ckpt = await openTorchCheckpoint(source);
    try {
      const afterOpen = bytesRead();
      const fileSize = (await stat(path)).size;
      // data.pkl is 6.6 kB and the directory ~5 kB; the tensors are ~1 MB.
      expect(afterOpen).toBeLessThan(80_000);
      expect(afterOpen).toBeLessThan(fileSize / 10);
      const entry = ckpt.stateDict(['model']).get('image_bind_proj.weight')!;
      const t = await entry.read();
      expect(t.data.byteLength).toBe(64 * 1024 * 4);
      // One local header (30 bytes + name + padding) plus exactly the tensor's bytes.
      expect(bytesRead() - afterOpen).toBeLessThan(t.data.byteLength + 200);
      expect(bytesRead() - afterOpen).toBeGreaterThanOrEqual(t.data.byteLength);
    } finally {
      await ckpt.close();
    }
  });
});

describe('hand-built checkpoints', () => {
  const f32 = (...v: number[]): Uint8Array => bytesOf(new Float32Array(v));

  it('materialises views: storage offsets, transposes, shared storages, parameters', async () => {
    const path = tmp('views.pth');
    const storage = f32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
    const base = { storage: '0', storageType: 'FloatStorage', storageNumel: 12 };
    await writeTorchFixture(
      path,
      {
        dict: [
          ['full', tensor({ ...base, shape: [3, 4] })],
          ['transposed', tensor({ ...base, shape: [4, 3], stride: [1, 4], parameter: true })],
          ['row2', tensor({ ...base, shape: [4], offset: 8 })],
          ['col1', tensor({ ...base, shape: [3], offset: 1, stride: [4] })],
          ['expanded', tensor({ ...base, shape: [2, 3], offset: 5, stride: [0, 1] })],
          ['scalar', tensor({ ...base, shape: [], offset: 11, stride: [] })],
          ['empty', tensor({ ...base, shape: [0, 4], offset: 12 })],
        ],
        ordered: true,
      },
      new Map([['0', storage]]),
    );
    const ckpt = await openTorchCheckpoint(path);
    try {
      const sd = ckpt.stateDict();
      const values = async (key: string): Promise<number[]> =>
        Array.from(toFloat32(await sd.get(key)!.read()));
      expect(await values('full')).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      expect(await values('transposed')).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
      expect(sd.get('transposed')?.shape).toEqual([4, 3]);
      expect(await values('row2')).toEqual([8, 9, 10, 11]);
      expect(await values('col1')).toEqual([1, 5, 9]);
      expect(await values('expanded')).toEqual([5, 6, 7, 5, 6, 7]);
      expect(await values('scalar')).toEqual([11]);
      expect(sd.get('empty')?.byteLength).toBe(0);
      expect(await values('empty')).toEqual([]);
    } finally {
      await ckpt.close();
    }
  });

  it('reads every storage dtype, protocol 4 pickles, deflated records and ZIP64 directories', async () => {
    const path = tmp('dtypes.pth');
    const halfBits = new Uint16Array([0x3c00, 0xc000]);
    const bf = new Uint16Array([float32ToBfloat16Bits(1.5), float32ToBfloat16Bits(-0.25)]);
    const spec: [string, string, Uint8Array, number[]][] = [
      ['f16', 'HalfStorage', bytesOf(halfBits), [1, -2]],
      ['bf16', 'BFloat16Storage', bytesOf(bf), [1.5, -0.25]],
      ['f64', 'DoubleStorage', bytesOf(new Float64Array([0.5, -8])), [0.5, -8]],
      ['i64', 'LongStorage', bytesOf(new BigInt64Array([-3n, 2n ** 40n])), [-3, 2 ** 40]],
      ['i32', 'IntStorage', bytesOf(new Int32Array([7, -9])), [7, -9]],
      ['i16', 'ShortStorage', bytesOf(new Int16Array([300, -300])), [300, -300]],
      ['i8', 'CharStorage', bytesOf(new Int8Array([-1, 5])), [-1, 5]],
      ['u8', 'ByteStorage', new Uint8Array([200, 3]), [200, 3]],
      ['b', 'BoolStorage', new Uint8Array([1, 0]), [1, 0]],
    ];
    const root: Py = {
      dict: [
        [
          'model',
          {
            dict: spec.map(([key, type]) => [
              key,
              tensor({ storage: key, storageType: type, storageNumel: 2, shape: [2] }),
            ]),
            ordered: true,
          },
        ],
        ['args', { object: { module: 'argparse', name: 'Namespace', state: { dict: [['epochs', 4]] } } }],
        ['epoch', 3],
      ],
    };
    await writeTorchFixture(path, root, new Map(spec.map(([key, , bytes]) => [key, bytes])), {
      protocol: 4,
      deflate: true,
      forceZip64: true,
      archive: 'my_checkpoint',
    });
    const ckpt = await openTorchCheckpoint(path);
    try {
      expect(ckpt.archiveName).toBe('my_checkpoint');
      const sd = ckpt.stateDict(['model']);
      expect([...sd.keys()]).toEqual(spec.map(([key]) => key));
      for (const [key, , , expected] of spec) {
        expect(Array.from(toFloat32(await sd.get(key)!.read())), key).toEqual(expected);
      }
      expect(sd.get('bf16')?.dtype).toBe('bfloat16');
      const args = (ckpt.root as Map<string, unknown>).get('args');
      expect(args).toBeInstanceOf(PickleObject);
      expect((ckpt.root as Map<string, unknown>).get('epoch')).toBe(3);
      expect(() => ckpt.stateDict(['optimizer'])).toThrow(
        /\["optimizer"\] not found.*"model", "args", "epoch"/,
      );
    } finally {
      await ckpt.close();
    }
    expect(float16BitsToFloat32(halfBits[1]!)).toBe(-2);
  });

  it('streams from a sparse file larger than 4 GB (ZIP64 offsets), reading only what is asked', async () => {
    const path = tmp('huge.pth');
    const hugeBytes = 4.5 * 2 ** 30; // never written: a hole in a sparse file
    await writeTorchFixture(
      path,
      {
        dict: [
          [
            'huge',
            tensor({
              storage: '0',
              storageType: 'HalfStorage',
              storageNumel: hugeBytes / 2,
              shape: [hugeBytes / 2],
            }),
          ],
          ['after', tensor({ storage: '1', storageType: 'FloatStorage', storageNumel: 3, shape: [3] })],
        ],
      },
      new Map<string, Uint8Array | { sparseBytes: number }>([
        ['0', { sparseBytes: hugeBytes }],
        ['1', f32(1, 2, 3)],
      ]),
    );
    expect((await stat(path)).size).toBeGreaterThan(hugeBytes);
    const { source, bytesRead } = await countingSource(path);
    const ckpt = await openTorchCheckpoint(source);
    try {
      const sd = ckpt.stateDict();
      expect(sd.get('huge')?.byteLength).toBe(hugeBytes);
      expect(Array.from(toFloat32(await sd.get('after')!.read()))).toEqual([1, 2, 3]);
      expect(bytesRead()).toBeLessThan(200_000);
    } finally {
      await ckpt.close();
    }
  });
});

describe('hostile files', () => {
  const goodFixture = async (): Promise<string> => {
    const path = tmp('good.pth');
    await writeTorchFixture(
      path,
      { dict: [['w', tensor({ storage: '0', storageType: 'FloatStorage', storageNumel: 4, shape: [4] })]] },
      new Map([['0', bytesOf(new Float32Array([1, 2, 3, 4]))]]),
    );
    return path;
  };

  it('reports truncation at any cut point, naming the file', async () => {
    const original = readFileSync(goldenPath('7B.pth'));
    for (const cut of [
      0,
      3,
      100,
      6_000,
      original.length / 2,
      original.length - 100,
      original.length - 21,
      original.length - 1,
    ]) {
      const path = tmp(`cut-${cut}.pth`);
      writeFileSync(path, original.subarray(0, Math.floor(cut)));
      const error = await expectFailure(path, /truncated/);
      expect(error.file).toBe(path);
      expect(error.message.startsWith(path)).toBe(true);
    }
  });

  it('rejects a zip that has no data.pkl', async () => {
    const path = tmp('nopkl.zip');
    await writeZipFixture(path, [{ name: 'readme.txt', data: new TextEncoder().encode('hello') }]);
    await expectFailure(path, /no <archive>\/data\.pkl record.*not written by torch\.save.*readme\.txt/);
  });

  it('explains the legacy (non-zip) torch format and how to convert it', async () => {
    const path = tmp('legacy.pth');
    // Legacy files start with a protocol-2 pickle of the magic number 0x1950a86a20f9469cfc6c.
    writeFileSync(path, Buffer.from('80028a0a6c fc 9c 46 f9 20 6a a8 50 19 2e'.replace(/ /g, ''), 'hex'));
    const error = await expectFailure(path, /legacy \(pre-1\.6, non-zip\) torch\.save format/);
    expect(error.message).toMatch(/torch\.save\(torch\.load\(/);
    expect(error.message).toMatch(/safetensors/);
  });

  it('rejects files that are not checkpoints at all', async () => {
    const path = tmp('text.pth');
    writeFileSync(path, 'this is not a checkpoint');
    await expectFailure(path, /not a torch zip checkpoint \(starts with bytes 74 68 69 73/);
  });

  it('names an unsupported storage type', async () => {
    const path = tmp('complex.pth');
    await writeTorchFixture(
      path,
      {
        dict: [
          ['z', tensor({ storage: '0', storageType: 'ComplexFloatStorage', storageNumel: 1, shape: [1] })],
        ],
      },
      new Map([['0', new Uint8Array(8)]]),
    );
    await expectFailure(
      path,
      /storage 0 has unsupported type torch\.ComplexFloatStorage; supported: torch\.FloatStorage/,
    );
  });

  it('rejects missing storage records and storages too small for their tensors', async () => {
    const missing = tmp('missing.pth');
    await writeTorchFixture(
      missing,
      { dict: [['w', tensor({ storage: '7', storageType: 'FloatStorage', storageNumel: 1, shape: [1] })]] },
      new Map(),
    );
    await expectFailure(missing, /storage record archive\/data\/7 is missing/);

    const short = tmp('short.pth');
    await writeTorchFixture(
      short,
      { dict: [['w', tensor({ storage: '0', storageType: 'FloatStorage', storageNumel: 4, shape: [4] })]] },
      new Map([['0', new Uint8Array(8)]]),
    );
    await expectFailure(short, /has 8 bytes but FloatStorage of 4 elements needs 16/);

    const overreach = tmp('overreach.pth');
    await writeTorchFixture(
      overreach,
      {
        dict: [
          [
            'w',
            tensor({ storage: '0', storageType: 'FloatStorage', storageNumel: 4, shape: [2, 2], offset: 1 }),
          ],
        ],
      },
      new Map([['0', new Uint8Array(16)]]),
    );
    await expectFailure(overreach, /reaches element 4 of storage 0, which has 4/);
  });

  it('detects a corrupted data.pkl by its CRC', async () => {
    const path = await goodFixture();
    const bytes = readFileSync(path);
    // 'storage' only occurs inside the pickle; t for s keeps the pickle valid, so only the CRC can tell.
    bytes[bytes.indexOf('storage')] = 0x74;
    writeFileSync(path, bytes);
    await expectFailure(path, /data\.pkl is corrupt \(CRC-32/);
  });

  it('fails on a tensor read when the file shrank after opening', async () => {
    const path = await goodFixture();
    const ckpt = await openTorchCheckpoint(path);
    try {
      const tensorAt = readFileSync(path).indexOf(bytesOf(new Float32Array([1, 2, 3, 4])));
      expect(tensorAt).toBeGreaterThan(0);
      await truncate(path, tensorAt + 4);
      await expect(ckpt.stateDict().get('w')!.read()).rejects.toThrow(/truncated/);
    } finally {
      await ckpt.close();
    }
  });
});
