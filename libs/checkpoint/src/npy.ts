import { readFileSync, writeFileSync } from 'node:fs';
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

/** Parses `.npy` bytes (format 1.0, 2.0 and 3.0; little-endian, C order). */
export function parseNpy(bytes: Uint8Array, name = '<npy>'): RawTensor {
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
  const dataStart = headerStart + headerLength;
  const byteLength = shapeNumel(shape) * dtypeItemSize(dtype);
  const available = bytes.length - dataStart;
  if (available !== byteLength) {
    throw fail(
      `${descr}${formatShape(shape)} needs ${byteLength} data bytes but the file has ${available}${available < byteLength ? ' (truncated)' : ''}`,
    );
  }
  // A plain copy: a Buffer here would share (and pin) the whole file's memory.
  return { dtype, shape, data: new Uint8Array(bytes.subarray(dataStart)) };
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

/** Serialises a tensor as `.npy` format 1.0 (numpy's own default). */
export function encodeNpy(tensor: RawTensor): Uint8Array {
  const descr = TO_DESCR[tensor.dtype];
  if (descr === undefined) throw new Error(`npy cannot hold ${tensor.dtype}; convert it to float32 first`);
  const expected = shapeNumel(tensor.shape) * dtypeItemSize(tensor.dtype);
  if (tensor.data.byteLength !== expected) {
    throw new Error(
      `tensor ${tensor.dtype}${formatShape(tensor.shape)} needs ${expected} bytes, got ${tensor.data.byteLength}`,
    );
  }
  const shape = tensor.shape.length === 1 ? `(${tensor.shape[0]},)` : `(${tensor.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  // numpy pads so the data starts on a 64-byte boundary, ending the header with a newline.
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  if (header.length > 0xffff) throw new Error(`npy header of ${header.length} bytes does not fit format 1.0`);
  const out = new Uint8Array(10 + header.length + expected);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  out.set(tensor.data, 10 + header.length);
  return out;
}

export function writeNpy(path: string, tensor: RawTensor): void {
  writeFileSync(path, encodeNpy(tensor));
}
