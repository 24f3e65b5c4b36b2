import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bufferSource } from './byte-source';
import { CheckpointFormatError } from './checkpoint.error';
import { encodeSafetensors, openSafetensors, writeSafetensors } from './safetensors.reader';
import { toFloat32, type RawTensor } from './tensor';
import { bytesOf } from './testing-fixtures';

const dir = mkdtempSync(join(tmpdir(), 'ckpt-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tensors = new Map<string, RawTensor>([
  ['a.weight', { dtype: 'float32', shape: [2, 2], data: bytesOf(new Float32Array([1, 2, 3, 4])) }],
  ['a.gate', { dtype: 'float16', shape: [1, 2, 1, 1], data: bytesOf(new Uint16Array([0x3c00, 0xbc00])) }],
  ['steps', { dtype: 'int64', shape: [], data: bytesOf(new BigInt64Array([42n])) }],
  ['mask', { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) }],
  ['b', { dtype: 'bfloat16', shape: [1], data: bytesOf(new Uint16Array([0x3fc0])) }],
]);

/** A file with a hand-written header (for lying headers). */
function withHeader(header: unknown, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

async function failure(bytes: Uint8Array): Promise<string> {
  const error: unknown = await openSafetensors(bufferSource('bad.safetensors', bytes)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CheckpointFormatError);
  return (error as Error).message;
}

describe('safetensors', () => {
  it('round-trips tensors and metadata lazily through a file', async () => {
    const path = join(dir, 'model.safetensors');
    await writeSafetensors(path, tensors, new Map([['format', 'pt']]));
    const file = await openSafetensors(path);
    try {
      expect(file.metadata.get('format')).toBe('pt');
      expect([...file.tensors.keys()]).toEqual([...tensors.keys()]);
      const gate = file.tensors.get('a.gate')!;
      expect(gate.dtype).toBe('float16');
      expect(gate.shape).toEqual([1, 2, 1, 1]);
      expect(gate.byteLength).toBe(4);
      expect(Array.from(toFloat32(await gate.read()))).toEqual([1, -1]);
      expect(Array.from(toFloat32(await file.tensors.get('a.weight')!.read()))).toEqual([1, 2, 3, 4]);
      expect(Array.from(toFloat32(await file.tensors.get('steps')!.read()))).toEqual([42]);
      expect(Array.from(toFloat32(await file.tensors.get('mask')!.read()))).toEqual([1, 0, 1]);
      expect(Array.from(toFloat32(await file.tensors.get('b')!.read()))).toEqual([1.5]);
    } finally {
      await file.close();
    }
  });

  it('aligns the data section to 8 bytes', () => {
    const bytes = encodeSafetensors(tensors);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
  });

  it('rejects a header whose offsets lie beyond the file', async () => {
    const message = await failure(withHeader({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8));
    expect(message).toMatch(
      /^bad\.safetensors: safetensors: tensor w: data_offsets \[0, 16\] run past the end of the data section \(8 bytes/,
    );
  });

  it('rejects a header whose byte span disagrees with dtype and shape', async () => {
    expect(await failure(withHeader({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }, 8))).toMatch(
      /float32\[4\] needs 16 bytes but data_offsets \[0, 8\] span 8/,
    );
  });

  it('rejects overlapping tensors, unknown dtypes and malformed entries', async () => {
    expect(
      await failure(
        withHeader(
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
          },
          12,
        ),
      ),
    ).toMatch(/tensors a and b overlap/);
    expect(
      await failure(withHeader({ a: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, 1)),
    ).toMatch(/unsupported dtype "F8_E4M3"/);
    expect(await failure(withHeader({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4))).toMatch(
      /shape \[-1\] is not a list of non-negative integers/,
    );
    expect(await failure(withHeader([1, 2], 0))).toMatch(/header is not a JSON object/);
  });

  it('rejects a lying header length and broken JSON', async () => {
    const lying = new Uint8Array(64);
    new DataView(lying.buffer).setBigUint64(0, 1000n, true);
    expect(await failure(lying)).toMatch(/header claims 1000 bytes but the file has only 56.*truncated/);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 62n, true);
    expect(await failure(huge)).toMatch(/implausible/);
    const broken = withHeader({}, 0);
    broken[8] = 0x5b; // '[' where '{' was: no longer valid JSON
    expect(await failure(broken)).toMatch(/not valid UTF-8 JSON/);
    expect(await failure(new Uint8Array(3))).toMatch(/too short/);
  });

  it('names the file on disk in errors', async () => {
    const path = join(dir, 'short.safetensors');
    writeFileSync(path, new Uint8Array(4));
    await expect(openSafetensors(path)).rejects.toThrow(`${path}: safetensors: file is 4 bytes`);
  });
});
