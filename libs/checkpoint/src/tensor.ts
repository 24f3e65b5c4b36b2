/** Element types the readers understand; names follow numpy/torch spelling. */
export type DType =
  'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const DTYPES: readonly DType[] = [
  'float32',
  'float16',
  'bfloat16',
  'float64',
  'int64',
  'int32',
  'int16',
  'int8',
  'uint8',
  'bool',
];

/** Tensor bytes in memory: little-endian, contiguous, row-major (C order). */
export interface RawTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/**
 * A tensor inside a file whose bytes have not been read yet. Opening a multi-GB checkpoint only
 * parses metadata; `read()` fetches this tensor's bytes (and nothing else).
 */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Bytes of the contiguous tensor `read()` returns. */
  readonly byteLength: number;
  read(): Promise<RawTensor>;
}

const ITEM_SIZE: Readonly<Record<DType, number>> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function dtypeItemSize(dtype: DType): number {
  return ITEM_SIZE[dtype];
}

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ITEM_SIZE, value);
}

export function isFloatingDType(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float64';
}

/** Product of the dimensions; 1 for a scalar (shape []). */
export function shapeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Structural check so a tree walker can recognise tensor leaves from any reader. */
export function isTensorEntry(value: unknown): value is TensorEntry {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<TensorEntry>;
  return (
    typeof v.name === 'string' &&
    isDType(v.dtype) &&
    Array.isArray(v.shape) &&
    typeof v.byteLength === 'number' &&
    typeof v.read === 'function'
  );
}

// Typed-array views below reinterpret bytes in host order; every supported file format is
// little-endian, so a big-endian host would silently produce garbage instead of failing.
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndianHost(): void {
  if (!HOST_LITTLE_ENDIAN) {
    throw new Error('@imagebind-llm/checkpoint needs a little-endian host (tensor files are little-endian)');
  }
}

type TypedArrayCtor<T> = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
};

/** Views bytes as a typed array, copying only when the offset is misaligned for the element size. */
export function viewAs<T>(data: Uint8Array, ctor: TypedArrayCtor<T>): T {
  requireLittleEndianHost();
  const size = ctor.BYTES_PER_ELEMENT;
  if (data.byteLength % size !== 0) {
    throw new Error(`byte length ${data.byteLength} is not a multiple of the element size ${size}`);
  }
  const bytes = data.byteOffset % size === 0 ? data : data.slice();
  return new ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size);
}

/** Exact: every float16 value is representable in float32. */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Round-to-nearest-even, like numpy's astype(float16) and torch's .half(). */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) {
    // Keep NaN a NaN even when its payload lives only in the low bits.
    return sign | 0x7c00 | (mantissa !== 0 ? 0x200 | (mantissa >>> 13) : 0);
  }
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mantissa & ((1 << shift) - 1);
    let result = mantissa >>> shift;
    if (rest > half || (rest === half && (result & 1) === 1)) result += 1;
    // A carry out of the subnormal range lands on the smallest normal, which is the right answer.
    return sign | result;
  }
  let result = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (result & 1) === 1)) result += 1;
  // A carry into the exponent is correct, including the overflow to infinity (0x7c00).
  return sign | result;
}

export function bfloat16BitsToFloat32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0] ?? 0;
}

/** Round-to-nearest-even, like torch's .bfloat16(). */
export function float32ToBfloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0] ?? 0;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** Float32 array to float16 bits (for writing fp16 files and for tests). */
export function float32ArrayToFloat16(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i] ?? 0);
  return out;
}

let halfTable: Float32Array | undefined;

function float16Table(): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = float16BitsToFloat32(i);
  }
  return halfTable;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * int64 to the nearest float32 with a single rounding. Going through a double first would round
 * twice for |v| > 2^53 and can land one ulp off; 26 significant bits plus a sticky bit give
 * Math.fround enough to round once, correctly.
 */
export function int64ToFloat32(value: bigint): number {
  if (value <= SAFE && value >= -SAFE) return Math.fround(Number(value));
  const negative = value < 0n;
  const magnitude = negative ? -value : value;
  const shift = BigInt(magnitude.toString(2).length - 26);
  const sticky = (magnitude & ((1n << shift) - 1n)) !== 0n ? 1n : 0n;
  const top = Math.fround(Number((magnitude >> shift) | sticky)) * 2 ** Number(shift);
  return negative ? -top : top;
}

/**
 * Converts any tensor to float32 values as IEEE round-to-nearest-even would (exact for float16,
 * bfloat16 and small integers). Float32 input is copied so callers may mutate the result.
 */
export function toFloat32(t: RawTensor): Float32Array {
  const numel = shapeNumel(t.shape);
  const expectedBytes = numel * dtypeItemSize(t.dtype);
  if (t.data.byteLength !== expectedBytes) {
    throw new Error(
      `tensor ${t.dtype}${formatShape(t.shape)} needs ${expectedBytes} bytes but has ${t.data.byteLength}`,
    );
  }
  switch (t.dtype) {
    case 'float32':
      return Float32Array.from(viewAs(t.data, Float32Array));
    case 'float16': {
      const table = float16Table();
      const bits = viewAs(t.data, Uint16Array);
      const out = new Float32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = table[bits[i] ?? 0] ?? 0;
      return out;
    }
    case 'bfloat16': {
      const bits = viewAs(t.data, Uint16Array);
      const out = new Float32Array(numel);
      const asU32 = new Uint32Array(out.buffer);
      for (let i = 0; i < numel; i++) asU32[i] = (bits[i] ?? 0) << 16;
      return out;
    }
    case 'float64':
      return Float32Array.from(viewAs(t.data, Float64Array));
    case 'int64': {
      const ints = viewAs(t.data, BigInt64Array);
      const out = new Float32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = int64ToFloat32(ints[i] ?? 0n);
      return out;
    }
    case 'int32':
      return Float32Array.from(viewAs(t.data, Int32Array));
    case 'int16':
      return Float32Array.from(viewAs(t.data, Int16Array));
    case 'int8':
      return Float32Array.from(viewAs(t.data, Int8Array));
    case 'uint8':
      return Float32Array.from(t.data);
    case 'bool': {
      const out = new Float32Array(numel);
      for (let i = 0; i < numel; i++) out[i] = t.data[i] !== 0 ? 1 : 0;
      return out;
    }
  }
}

/** Float32 values as a RawTensor (copies). */
export function float32Tensor(values: Float32Array, shape: readonly number[]): RawTensor {
  if (shapeNumel(shape) !== values.length) {
    throw new Error(`shape ${formatShape(shape)} does not hold ${values.length} values`);
  }
  const copy = Float32Array.from(values);
  return { dtype: 'float32', shape: [...shape], data: new Uint8Array(copy.buffer) };
}
