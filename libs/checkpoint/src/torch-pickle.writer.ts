import { ByteBuilder, utf8 } from './byte-builder';
import { contiguousStrides } from './strided-copy';
import { dtypeItemSize, formatShape, shapeNumel, type DType } from './tensor';
import {
  isPlainObject,
  isRawTensor,
  isStreamed,
  isTensorSource,
  type TorchTensorSource,
  type TorchValue,
} from './torch-value';

/**
 * The `data.pkl` of a torch checkpoint: protocol 2, laid out the way CPython's pickler writes
 * torch.save's objects (MODEL_SPEC §6.5), with each tensor a persistent-id reference to a storage
 * the caller writes separately.
 */

/** A pickle LONG1 payload: the shortest little-endian two's-complement bytes of `v`. */
function long1Bytes(v: number | bigint): number[] {
  let b = BigInt(v);
  const bytes: number[] = [];
  for (;;) {
    const byte = Number(b & 0xffn);
    bytes.push(byte);
    b >>= 8n;
    if ((b === 0n && (byte & 0x80) === 0) || (b === -1n && (byte & 0x80) !== 0)) return bytes;
  }
}

/**
 * Appends the integer `v` as CPython's pickler writes it: BININT1, BININT2 or BININT where it fits,
 * else LONG1. A number that is not an integer falls through to LONG1, which refuses it.
 */
export function pickleInt(out: ByteBuilder, v: number | bigint): void {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 0x100) out.byte(0x4b, v);
  else if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 0x10000) out.byte(0x4d).u16(v);
  else if (typeof v === 'number' && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31) {
    out.byte(0x4a).u32(v >>> 0);
  } else {
    const bytes = long1Bytes(v);
    out.byte(0x8a, bytes.length, ...bytes);
  }
}

/**
 * Appends a tuple of what `items` emit, as CPython's pickler writes it (EMPTY_TUPLE, TUPLE1-3, or
 * MARK ... TUPLE), then memoises it with `put` (an empty tuple is not memoised).
 */
export function pickleTuple(out: ByteBuilder, items: readonly (() => void)[], put: () => void): void {
  if (items.length === 0) {
    out.byte(0x29);
    return;
  }
  if (items.length <= 3) {
    for (const item of items) item();
    out.byte(0x84 + items.length);
  } else {
    out.byte(0x28);
    for (const item of items) item();
    out.byte(0x74);
  }
  put();
}

export interface StorageRecord {
  readonly key: string;
  readonly source: TorchTensorSource;
  readonly byteLength: number;
  /** Dotted path of the first place the tensor appears. */
  readonly path: string;
}

const STORAGE_TYPES: Readonly<Record<DType, string>> = {
  float32: 'FloatStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
  float64: 'DoubleStorage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  int16: 'ShortStorage',
  int8: 'CharStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
};

// CPython's pickler emits SETITEMS / APPENDS in batches of this many items.
const BATCH = 1000;

/** The pickle of `root` and the storages it refers to, numbered in order of first appearance. */
export function pickleCheckpoint(root: TorchValue): { pickle: Uint8Array; storages: StorageRecord[] } {
  const out = new ByteBuilder();
  const memo = { next: 0 };
  const stringMemo = new Map<string, number>();
  const globalMemo = new Map<string, number>();
  const tensorMemo = new Map<TorchTensorSource, number>();
  const storages: StorageRecord[] = [];
  const ancestors = new Set<object>();

  const put = (): number => {
    const index = memo.next++;
    if (index < 256) out.byte(0x71, index);
    else out.byte(0x72).u32(index);
    return index;
  };
  const get = (index: number): void => {
    if (index < 256) out.byte(0x68, index);
    else out.byte(0x6a).u32(index);
  };
  const str = (s: string): void => {
    const seen = stringMemo.get(s);
    if (seen !== undefined) return get(seen);
    const b = utf8(s);
    out.byte(0x58).u32(b.length).bytes(b);
    stringMemo.set(s, put());
  };
  const global = (module: string, name: string): void => {
    const key = `${module}\n${name}`;
    const seen = globalMemo.get(key);
    if (seen !== undefined) return get(seen);
    out.byte(0x63).text(`${module}\n${name}\n`);
    globalMemo.set(key, put());
  };
  const int = (v: number | bigint): void => pickleInt(out, v);
  const tuple = (items: readonly (() => void)[]): void => pickleTuple(out, items, put);
  const batches = <T>(items: readonly T[], one: number, many: number, emitItem: (item: T) => void): void => {
    for (let i = 0; i < items.length; i += BATCH) {
      const batch = items.slice(i, i + BATCH);
      if (batch.length === 1) {
        emitItem(batch[0]!);
        out.byte(one);
      } else {
        out.byte(0x28);
        batch.forEach(emitItem);
        out.byte(many);
      }
    }
  };
  const emptyOrderedDict = (): void => {
    global('collections', 'OrderedDict');
    out.byte(0x29, 0x52);
    put();
  };

  const tensor = (t: TorchTensorSource, path: string): void => {
    const seen = tensorMemo.get(t);
    if (seen !== undefined) return get(seen);
    const where = path === '' ? 'the root tensor' : `tensor ${path}`;
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`${where}: shape ${formatShape(t.shape)} is not a list of non-negative integers`);
    }
    const numel = shapeNumel(t.shape);
    const byteLength = numel * dtypeItemSize(t.dtype);
    if (isRawTensor(t) && !isStreamed(t) && t.data.byteLength !== byteLength) {
      throw new Error(
        `${where}: ${t.dtype}${formatShape(t.shape)} needs ${byteLength} bytes, the data has ${t.data.byteLength}`,
      );
    }
    const key = String(storages.length);
    storages.push({ key, source: t, byteLength, path });
    global('torch._utils', '_rebuild_tensor_v2');
    out.byte(0x28);
    // Persistent id ('storage', torch.<Type>Storage, key, 'cpu', numel)
    tuple([
      () => str('storage'),
      () => global('torch', STORAGE_TYPES[t.dtype]),
      () => str(key),
      () => str('cpu'),
      () => int(numel),
    ]);
    out.byte(0x51);
    int(0);
    tuple(t.shape.map((d) => () => int(d)));
    tuple(contiguousStrides(t.shape).map((d) => () => int(d)));
    out.byte(0x89); // requires_grad = False
    emptyOrderedDict(); // backward hooks
    out.byte(0x74);
    put();
    out.byte(0x52);
    tensorMemo.set(t, put());
  };

  const emit = (v: TorchValue, path: string): void => {
    if (v === null) out.byte(0x4e);
    else if (v === true) out.byte(0x88);
    else if (v === false) out.byte(0x89);
    else if (typeof v === 'bigint') int(v);
    else if (typeof v === 'number') {
      if (Number.isSafeInteger(v)) int(v);
      else out.byte(0x47).f64be(v);
    } else if (typeof v === 'string') str(v);
    else if (isTensorSource(v)) tensor(v, path);
    else {
      if (ancestors.has(v)) throw new Error(`the checkpoint tree contains a cycle at ${path || 'the root'}`);
      ancestors.add(v);
      const child = (key: string | number): string => (path === '' ? String(key) : `${path}.${key}`);
      if (Array.isArray(v)) {
        out.byte(0x5d);
        put();
        const items = (v as readonly TorchValue[]).map((item, i) => [i, item] as const);
        batches(items, 0x61, 0x65, ([i, item]) => emit(item, child(i)));
      } else if (v instanceof Map) {
        emptyOrderedDict();
        const items = [...(v as ReadonlyMap<string | number, TorchValue>)];
        batches(items, 0x73, 0x75, ([k, item]) => {
          emitKey(k);
          emit(item, child(k));
        });
      } else if (isPlainObject(v)) {
        out.byte(0x7d);
        put();
        batches(Object.entries(v), 0x73, 0x75, ([k, item]) => {
          str(k);
          emit(item, child(k));
        });
      } else {
        throw new Error(
          `cannot pickle the value at ${path || 'the root'} (${Object.prototype.toString.call(v)})`,
        );
      }
      ancestors.delete(v);
    }
  };
  const emitKey = (k: string | number): void => {
    if (typeof k === 'string') str(k);
    else if (Number.isSafeInteger(k)) int(k);
    else throw new Error(`dict key ${k} is not a string or an integer`);
  };

  out.byte(0x80, 2);
  emit(root, '');
  out.byte(0x2e);
  return { pickle: out.done(), storages };
}
