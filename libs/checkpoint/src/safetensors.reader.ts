import { writeFile } from 'node:fs/promises';
import { resolveSource, type ByteSource } from './byte-source';
import { CheckpointFormatError } from './checkpoint.error';
import {
  dtypeItemSize,
  formatShape,
  shapeNumel,
  type DType,
  type RawTensor,
  type TensorEntry,
} from './tensor';

const FROM_SAFETENSORS: Readonly<Record<string, DType>> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

const TO_SAFETENSORS: Readonly<Record<DType, string>> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

// The reference implementation refuses headers above 100 MB; a bigger length means a corrupt file,
// and trusting it would allocate whatever a damaged length field says.
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsFile {
  readonly file: string;
  /** The optional `__metadata__` string map. */
  readonly metadata: ReadonlyMap<string, string>;
  /** In header order; bytes are read by each entry's `read()`. */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  close(): Promise<void>;
}

class SafetensorsEntry implements TensorEntry {
  constructor(
    private readonly source: ByteSource,
    readonly name: string,
    readonly dtype: DType,
    readonly shape: readonly number[],
    private readonly start: number,
    readonly byteLength: number,
  ) {}

  async read(): Promise<RawTensor> {
    const data = await this.source.read(this.start, this.byteLength);
    return { dtype: this.dtype, shape: this.shape, data };
  }
}

/** Opens a `.safetensors` file: parses the JSON header and checks every tensor lies inside the file. */
export async function openSafetensors(input: string | ByteSource): Promise<SafetensorsFile> {
  const source = await resolveSource(input);
  try {
    return await parseHeader(source);
  } catch (error) {
    await source.close();
    throw error;
  }
}

async function parseHeader(source: ByteSource): Promise<SafetensorsFile> {
  const file = source.name;
  const fail: (detail: string) => never = (detail) => {
    throw new CheckpointFormatError(file, `safetensors: ${detail}`);
  };
  if (source.size < 8) fail(`file is ${source.size} bytes, too short for the 8-byte header length`);
  const lengthBytes = await source.read(0, 8);
  const headerLength = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES))
    fail(`header length ${headerLength} is implausible (corrupt file)`);
  const n = Number(headerLength);
  if (8 + n > source.size)
    fail(`header claims ${n} bytes but the file has only ${source.size - 8} after the length (truncated)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await source.read(8, n)));
  } catch (error) {
    fail(`header is not valid UTF-8 JSON: ${(error as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    fail('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLength = source.size - dataStart;
  const metadata = new Map<string, string>();
  const tensors = new Map<string, TensorEntry>();
  const ranges: [number, number, string][] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata.set(k, v);
      }
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof info !== 'object' || info === null) fail(`tensor ${name}: entry is not an object`);
    const code = info?.dtype;
    const dtype = typeof code === 'string' ? FROM_SAFETENSORS[code] : undefined;
    if (dtype === undefined) {
      fail(
        `tensor ${name}: unsupported dtype ${JSON.stringify(code)} (supported: ${Object.keys(FROM_SAFETENSORS).join(', ')})`,
      );
    }
    const shape = info?.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(`tensor ${name}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offsets = info?.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) ||
      (offsets[0] as number) > (offsets[1] as number)
    ) {
      fail(`tensor ${name}: data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    const dims = shape as number[];
    const expected = shapeNumel(dims) * dtypeItemSize(dtype);
    if (end - begin !== expected) {
      fail(
        `tensor ${name}: ${dtype}${formatShape(dims)} needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    if (end > dataLength) {
      fail(
        `tensor ${name}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataLength} bytes; truncated or lying header)`,
      );
    }
    ranges.push([begin, end, name]);
    tensors.set(name, new SafetensorsEntry(source, name, dtype, dims, dataStart + begin, expected));
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    const previous = ranges[i - 1];
    const current = ranges[i];
    if (previous !== undefined && current !== undefined && current[0] < previous[1]) {
      fail(`tensors ${previous[2]} and ${current[2]} overlap in the data section`);
    }
  }
  return { file, metadata, tensors, close: async () => source.close() };
}

/** Serialises tensors (in the given order) as safetensors bytes; used for one-off conversions. */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, RawTensor>,
  metadata?: ReadonlyMap<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && metadata.size > 0) header['__metadata__'] = Object.fromEntries(metadata);
  let offset = 0;
  for (const [name, t] of tensors) {
    const expected = shapeNumel(t.shape) * dtypeItemSize(t.dtype);
    if (t.data.byteLength !== expected) {
      throw new Error(
        `tensor ${name}: ${t.dtype}${formatShape(t.shape)} needs ${expected} bytes, got ${t.data.byteLength}`,
      );
    }
    header[name] = {
      dtype: TO_SAFETENSORS[t.dtype],
      shape: [...t.shape],
      data_offsets: [offset, offset + expected],
    };
    offset += expected;
  }
  // Padding the header to 8 bytes keeps the data section aligned for zero-copy readers.
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}

export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, RawTensor>,
  metadata?: ReadonlyMap<string, string>,
): Promise<void> {
  await writeFile(path, encodeSafetensors(tensors, metadata));
}
