import { readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { CheckpointFormatError } from './checkpoint.error';
import { dtypeItemSize, formatShape, shapeNumel, type DType, type RawTensor } from './tensor';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const FROM_DESCR: Readonly<Record<string, DType>> = {
  '<f4': 'float32',
  '<f2': 'float16',
  '<f8': 'float64',
  '<i8': 'int64',
  '<i4': 'int32',
  '<i2': 'int16',
  '|i1': 'int8',
  '|u1': 'uint8',
  '|b1': 'bool',
};

const TO_DESCR: Readonly<Record<DType, string | undefined>> = {
  float32: '<f4',
  float16: '<f2',
  float64: '<f8',
  int64: '<i8',
  int32: '<i4',
  int16: '<i2',
  int8: '|i1',
  uint8: '|u1',
  bool: '|b1',
  bfloat16: undefined,
};

/** Where an `.npy` file's array starts and what it holds, from its header. */
export interface NpyLayout {
  readonly dtype: DType;
  readonly shape: number[];
  /** Byte offset of the first element. */
  readonly dataStart: number;
  /** Bytes of the array (elements × item size). */
  readonly byteLength: number;
}

/**
 * Reads the header from the leading bytes of an `.npy` file (format 1.0, 2.0 and 3.0;
 * little-endian, C order). `bytes` must reach at least past the header.
 */
export function parseNpyLayout(bytes: Uint8Array, name: string): NpyLayout {
  const fail = (detail: string): CheckpointFormatError => new CheckpointFormatError(name, `npy: ${detail}`);
  if (bytes.length < 10 || !MAGIC.every((b, i) => bytes[i] === b))
    throw fail('missing \\x93NUMPY magic (not a .npy file)');
  const major = bytes[6] ?? 0;
  const minor = bytes[7] ?? 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw fail('file ends inside the header length (truncated)');
    headerLength = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw fail(`format version ${major}.${minor} is not supported (1.0, 2.0, 3.0 are)`);
  }
  if (headerStart + headerLength > bytes.length) throw fail('file ends inside the header (truncated)');
  const decoder = new TextDecoder(major === 3 ? 'utf-8' : 'latin1');
  const header = decoder.decode(bytes.subarray(headerStart, headerStart + headerLength));
  const { descr, fortranOrder, shape } = parseHeaderDict(header, fail);
  const dtype = FROM_DESCR[descr];
  if (dtype === undefined) {
    throw fail(
      `dtype ${JSON.stringify(descr)} is not supported (supported: ${Object.keys(FROM_DESCR).join(', ')})`,
    );
  }
  if (fortranOrder && shape.filter((d) => d > 1).length > 1) {
    throw fail('array is stored in Fortran order; re-save it with np.save(path, np.ascontiguousarray(a))');
  }
  return {
    dtype,
    shape,
    dataStart: headerStart + headerLength,
    byteLength: shapeNumel(shape) * dtypeItemSize(dtype),
  };
}

function checkDataLength(layout: NpyLayout, fileBytes: number, name: string): void {
  const available = fileBytes - layout.dataStart;
  if (available !== layout.byteLength) {
    throw new CheckpointFormatError(
      name,
      `npy: ${TO_DESCR[layout.dtype] ?? layout.dtype}${formatShape(layout.shape)} needs ${layout.byteLength} data bytes but the file has ${available}${available < layout.byteLength ? ' (truncated)' : ''}`,
    );
  }
}

/** Parses `.npy` bytes (format 1.0, 2.0 and 3.0; little-endian, C order). */
export function parseNpy(bytes: Uint8Array, name = '<npy>'): RawTensor {
  const layout = parseNpyLayout(bytes, name);
  checkDataLength(layout, bytes.length, name);
  // A plain copy: a Buffer here would share (and pin) the whole file's memory.
  return { dtype: layout.dtype, shape: layout.shape, data: new Uint8Array(bytes.subarray(layout.dataStart)) };
}

/** One slice of rows of a 2-D (or higher) `.npy` array, as {@link readNpyRows} yields them. */
export interface NpyRowChunk {
  readonly dtype: DType;
  /** Shape of the whole array; rows are along its first axis. */
  readonly shape: readonly number[];
  /** Index of the first row in this chunk. */
  readonly start: number;
  readonly rows: number;
  /** `rows` rows, C order, freshly allocated (safe to keep). */
  readonly data: Uint8Array;
}

/**
 * Streams an `.npy` array a few rows at a time. For arrays too big to hold twice, or at all: Node
 * refuses to read a file over 2 GiB in one call, and the real visual cache (~3M × 1024 float32,
 * 12.3 GB) is far past that.
 */
export async function* readNpyRows(path: string, rowsPerChunk: number): AsyncGenerator<NpyRowChunk> {
  if (!Number.isSafeInteger(rowsPerChunk) || rowsPerChunk < 1) {
    throw new RangeError(`rowsPerChunk must be a positive integer, got ${rowsPerChunk}`);
  }
  const file = await open(path, 'r');
  try {
    const size = (await file.stat()).size;
    // The fixed preamble says how long the header is: 2 bytes from offset 8 in format 1.0, 4 in
    // 2.0/3.0. Too short or not .npy at all, and parseNpyLayout names the problem.
    const lead = new Uint8Array(Math.min(size, 12));
    await file.read(lead, 0, lead.length, 0);
    const view = new DataView(lead.buffer);
    let headerEnd = lead.length;
    if (lead.length >= 10 && lead[6] === 1) headerEnd = 10 + view.getUint16(8, true);
    else if (lead.length >= 12) headerEnd = 12 + view.getUint32(8, true);
    const head = new Uint8Array(Math.min(size, headerEnd));
    await file.read(head, 0, head.length, 0);
    const layout = parseNpyLayout(head, path);
    checkDataLength(layout, size, path);
    const [rows = 0] = layout.shape;
    const rowBytes = rows === 0 ? 0 : layout.byteLength / rows;
    for (let start = 0; start < rows; start += rowsPerChunk) {
      const count = Math.min(rowsPerChunk, rows - start);
      const data = new Uint8Array(count * rowBytes);
      let filled = 0;
      while (filled < data.length) {
        const { bytesRead } = await file.read(
          data,
          filled,
          data.length - filled,
          layout.dataStart + start * rowBytes + filled,
        );
        if (bytesRead === 0)
          throw new CheckpointFormatError(path, 'npy: file shrank while it was being read');
        filled += bytesRead;
      }
      yield { dtype: layout.dtype, shape: layout.shape, start, rows: count, data };
    }
  } finally {
    await file.close();
  }
}

/**
 * The header is a Python dict literal, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
 * Only that exact vocabulary is accepted: strings, booleans, tuples of integers.
 */
function parseHeaderDict(
  header: string,
  fail: (detail: string) => CheckpointFormatError,
): { descr: string; fortranOrder: boolean; shape: number[] } {
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw fail(
      `header ${JSON.stringify(header.trim())} lacks descr, fortran_order or shape (structured dtypes are not supported)`,
    );
  }
  const parts = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const shape = parts.map((s) => (/^\d+$/.test(s) ? Number(s) : Number.NaN));
  if (shape.some((d) => !Number.isSafeInteger(d)))
    throw fail(`shape (${shapeText}) is not a tuple of integers`);
  return { descr, fortranOrder: fortran === 'True', shape };
}

/**
 * Synchronous on purpose: .npy files here are small (golden outputs, CLI dumps, cache vectors read
 * once at start-up), and callers use them in plain loops.
 */
export function readNpy(path: string): RawTensor {
  const bytes = readFileSync(path);
  return parseNpy(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/**
 * The `.npy` format 1.0 preamble and header (numpy's own default) for an array of `dtype` and
 * `shape`: what precedes the data, padded so the data starts on a 64-byte boundary.
 */
export function encodeNpyHeader(dtype: DType, shape: readonly number[]): Uint8Array {
  const descr = TO_DESCR[dtype];
  if (descr === undefined) throw new Error(`npy cannot hold ${dtype}; convert it to float32 first`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // numpy pads so the data starts on a 64-byte boundary, ending the header with a newline.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  if (header.length > 0xffff) throw new Error(`npy header of ${header.length} bytes does not fit format 1.0`);
  const out = new Uint8Array(10 + header.length);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  return out;
}

/** Serialises a tensor as `.npy` format 1.0 (numpy's own default). */
export function encodeNpy(tensor: RawTensor): Uint8Array {
  const head = encodeNpyHeader(tensor.dtype, tensor.shape);
  const expected = shapeNumel(tensor.shape) * dtypeItemSize(tensor.dtype);
  if (tensor.data.byteLength !== expected) {
    throw new Error(
      `tensor ${tensor.dtype}${formatShape(tensor.shape)} needs ${expected} bytes, got ${tensor.data.byteLength}`,
    );
  }
  const out = new Uint8Array(head.length + expected);
  out.set(head, 0);
  out.set(tensor.data, head.length);
  return out;
}

export function writeNpy(path: string, tensor: RawTensor): void {
  writeFileSync(path, encodeNpy(tensor));
}

/**
 * Writes an `.npy` array chunk by chunk (C order, rows along the first axis), for arrays too big
 * to hold at once (the real visual cache is 13.3 GB): the header first, then each chunk as it
 * comes. Fails, leaving the file incomplete for the caller to remove, when the chunks do not add
 * up to the shape. `onChunk` hears of every chunk's bytes once written. Returns the data bytes.
 */
export async function writeNpyRows(
  path: string,
  dtype: DType,
  shape: readonly number[],
  chunks: AsyncIterable<Uint8Array>,
  onChunk?: (bytes: number) => void,
): Promise<number> {
  const expected = shapeNumel(shape) * dtypeItemSize(dtype);
  const file = await open(path, 'w');
  try {
    const head = encodeNpyHeader(dtype, shape);
    await file.write(head, 0, head.length, 0);
    let written = 0;
    for await (const chunk of chunks) {
      if (written + chunk.byteLength > expected) {
        throw new Error(`${path}: more data than ${dtype}${formatShape(shape)} holds (${expected} bytes)`);
      }
      let at = 0;
      while (at < chunk.byteLength) {
        const { bytesWritten } = await file.write(
          chunk,
          at,
          chunk.byteLength - at,
          head.length + written + at,
        );
        at += bytesWritten;
      }
      written += chunk.byteLength;
      onChunk?.(chunk.byteLength);
    }
    if (written !== expected) {
      throw new Error(
        `${path}: got ${written} bytes of data, ${dtype}${formatShape(shape)} needs ${expected}`,
      );
    }
    return written;
  } finally {
    await file.close();
  }
}
