import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { contiguousStrides } from './strided-copy';
import {
  dtypeItemSize,
  formatShape,
  isDType,
  isTensorEntry,
  shapeNumel,
  type DType,
  type RawTensor,
  type TensorEntry,
} from './tensor';

/**
 * A streaming `torch.save` writer: the zip layout and protocol-2 pickle torch ≥ 1.6 produces
 * (MODEL_SPEC §6.5), written so that a multi-GB checkpoint never holds more than one chunk of one
 * tensor in memory. The pickle needs only each tensor's dtype and shape, so it goes first; the
 * storages follow one at a time, each produced lazily by its source.
 */

// ---------------------------------------------------------------------------------------------
// Public types

/** Receives a tensor's bytes as its source produces them. */
export interface TensorByteSink {
  /**
   * Appends little-endian element bytes. When the promise resolves the bytes have been copied or
   * written, so the caller may refill the same buffer for the next chunk.
   */
  write(chunk: ArrayBufferView): Promise<void>;
  /**
   * Appends `byteLength` zero bytes without materialising them: the file gets a hole, which costs no
   * disk on filesystems with sparse files (zero-initialised tensors, tests of multi-GB layouts).
   */
  zeros(byteLength: number): Promise<void>;
}

/** A tensor whose bytes are produced only when the writer reaches its storage. */
export interface StreamedTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /**
   * Writes exactly numel · itemsize bytes (row-major, little-endian) to the sink, in chunks of any
   * size. Called once per checkpoint, even when the tensor appears at several places in the tree.
   */
  write(sink: TensorByteSink): Promise<void>;
}

/**
 * A tensor leaf: a streamed tensor, bytes already in memory, or an entry of a checkpoint being read
 * (`openTorchCheckpoint`, `openSafetensors`), read when its turn comes.
 */
export type TorchTensorSource = StreamedTensor | RawTensor | TensorEntry;

/**
 * What the writer can pickle:
 * - a `Map` becomes a `collections.OrderedDict` (what `state_dict()` returns);
 * - a plain object becomes a `dict` (e.g. `{ model: stateDict }`, as in the adapter checkpoint);
 * - arrays become lists; safe integers and bigints become ints, other numbers floats;
 * - tensor sources become `torch._utils._rebuild_tensor_v2` calls on a storage of their own.
 */
export type TorchValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | TorchTensorSource
  | readonly TorchValue[]
  | ReadonlyMap<string | number, TorchValue>
  | { readonly [key: string]: TorchValue };

export interface WriteTorchCheckpointOptions {
  /** The zip's top folder. torch uses `archive` (older versions: the file stem). */
  readonly archiveName?: string;
  /** Writes `<archive>/byteorder` = "little", as recent torch versions do (default true). */
  readonly byteorderRecord?: boolean;
  /** ZIP64 records for every entry and the directory even when nothing needs them (tests). */
  readonly forceZip64?: boolean;
  /** Called after each storage is written (progress for large files). */
  readonly onTensor?: (path: string, byteLength: number) => void;
}

export interface TorchCheckpointWriteResult {
  /** Size of the file. */
  readonly bytes: number;
  /** Storages written (a tensor shared by several keys counts once). */
  readonly tensors: number;
  /** Sum of the storages' bytes. */
  readonly tensorBytes: number;
}

/** A {@link StreamedTensor} whose bytes come from a (sync or async) iterable of chunks. */
export function streamedTensor(
  dtype: DType,
  shape: readonly number[],
  chunks: () => AsyncIterable<ArrayBufferView> | Iterable<ArrayBufferView>,
): StreamedTensor {
  return {
    dtype,
    shape,
    write: async (sink) => {
      for await (const chunk of chunks()) await sink.write(chunk);
    },
  };
}

/**
 * Writes `root` as a torch.save checkpoint at `path`. The file is written under a temporary name
 * and renamed when complete, so a failed or interrupted write never leaves a plausible checkpoint.
 */
export async function writeTorchCheckpoint(
  path: string,
  root: TorchValue,
  options: WriteTorchCheckpointOptions = {},
): Promise<TorchCheckpointWriteResult> {
  const archive = checkArchiveName(options.archiveName);
  const { pickle, storages } = pickleCheckpoint(root);
  const partial = `${path}.partial`;
  const zip = await ZipStreamWriter.create(partial, options.forceZip64 === true);
  let tensorBytes = 0;
  try {
    await zip.addEntry(`${archive}/data.pkl`, pickle);
    if (options.byteorderRecord !== false) await zip.addEntry(`${archive}/byteorder`, ascii('little'));
    for (const storage of storages) {
      await zip.addStreamedEntry(`${archive}/data/${storage.key}`, storage.byteLength, async (sink) =>
        writeSource(storage, sink),
      );
      tensorBytes += storage.byteLength;
      options.onTensor?.(storage.path, storage.byteLength);
    }
    await zip.addEntry(`${archive}/version`, ascii('3\n'));
    const bytes = await zip.finish();
    await rename(partial, path);
    return { bytes, tensors: storages.length, tensorBytes };
  } catch (error) {
    await zip.abort();
    await rm(partial, { force: true });
    throw error;
  }
}

/**
 * What {@link writeTorchCheckpoint} would write for `root`, without writing or producing any tensor
 * data: the exact file size (for a disk-space check before a multi-GB write), the storages and
 * their bytes. Only the pickle is built, so this is cheap even for billions of elements.
 */
export function planTorchCheckpoint(
  root: TorchValue,
  options: Pick<WriteTorchCheckpointOptions, 'archiveName' | 'byteorderRecord' | 'forceZip64'> = {},
): TorchCheckpointWriteResult {
  const archive = checkArchiveName(options.archiveName);
  const { pickle, storages } = pickleCheckpoint(root);
  const entries: { name: string; size: number }[] = [{ name: `${archive}/data.pkl`, size: pickle.length }];
  if (options.byteorderRecord !== false) entries.push({ name: `${archive}/byteorder`, size: 6 });
  let tensorBytes = 0;
  for (const storage of storages) {
    entries.push({ name: `${archive}/data/${storage.key}`, size: storage.byteLength });
    tensorBytes += storage.byteLength;
  }
  entries.push({ name: `${archive}/version`, size: 2 });
  return { bytes: zipSize(entries, options.forceZip64 === true), tensors: storages.length, tensorBytes };
}

function checkArchiveName(name: string | undefined): string {
  const archive = name ?? 'archive';
  if (archive === '' || archive.includes('/')) {
    throw new Error(`archive name ${JSON.stringify(archive)} must be a non-empty name without "/"`);
  }
  return archive;
}

async function writeSource(storage: StorageRecord, sink: TensorByteSink): Promise<void> {
  const { source } = storage;
  if (isStreamed(source)) {
    await source.write(sink);
  } else if (isRawTensor(source)) {
    await sink.write(source.data);
  } else {
    const t = await source.read();
    if (t.dtype !== source.dtype || formatShape(t.shape) !== formatShape(source.shape)) {
      throw new Error(
        `tensor ${storage.path}: read() returned ${t.dtype}${formatShape(t.shape)}, the entry says ${source.dtype}${formatShape(source.shape)}`,
      );
    }
    await sink.write(t.data);
  }
}

// ---------------------------------------------------------------------------------------------
// Bytes

/** A growable little-endian byte buffer for headers and pickles. */
/** A pickle LONG1 payload: the shortest little-endian two's-complement bytes of `v`. */
export function long1Bytes(v: number | bigint): number[] {
  let b = BigInt(v);
  const bytes: number[] = [];
  for (;;) {
    const byte = Number(b & 0xffn);
    bytes.push(byte);
    b >>= 8n;
    if ((b === 0n && (byte & 0x80) === 0) || (b === -1n && (byte & 0x80) !== 0)) return bytes;
  }
}

export class ByteBuilder {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  private size = 0;

  get length(): number {
    return this.size;
  }

  private reserve(n: number): void {
    if (this.size + n <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < this.size + n) capacity *= 2;
    const next = new Uint8Array(capacity);
    next.set(this.buffer.subarray(0, this.size));
    this.buffer = next;
    this.view = new DataView(next.buffer);
  }

  byte(...values: number[]): this {
    this.reserve(values.length);
    for (const v of values) this.buffer[this.size++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.reserve(2);
    this.view.setUint16(this.size, v, true);
    this.size += 2;
    return this;
  }

  u32(v: number): this {
    this.reserve(4);
    this.view.setUint32(this.size, v >>> 0, true);
    this.size += 4;
    return this;
  }

  u64(v: number | bigint): this {
    this.reserve(8);
    this.view.setBigUint64(this.size, BigInt(v), true);
    this.size += 8;
    return this;
  }

  f64be(v: number): this {
    this.reserve(8);
    this.view.setFloat64(this.size, v, false);
    this.size += 8;
    return this;
  }

  bytes(data: Uint8Array): this {
    this.reserve(data.length);
    this.buffer.set(data, this.size);
    this.size += data.length;
    return this;
  }

  text(s: string): this {
    return this.bytes(new TextEncoder().encode(s));
  }

  done(): Uint8Array {
    return this.buffer.slice(0, this.size);
  }
}

function ascii(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function asBytes(chunk: ArrayBufferView): Uint8Array {
  return chunk instanceof Uint8Array
    ? chunk
    : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

// ---------------------------------------------------------------------------------------------
// CRC-32 of zero runs

let zeroByteOperator: Uint32Array | undefined;

/** The GF(2) matrix (32 columns) that feeds one zero byte through the CRC-32 register. */
function zeroByteMatrix(): Uint32Array {
  if (zeroByteOperator === undefined) {
    zeroByteOperator = new Uint32Array(32);
    for (let j = 0; j < 32; j++) {
      // The register update c ↦ T[c & 0xff] ^ (c >>> 8) is linear, so its columns are the images
      // of the basis vectors; T[x] is the CRC register after one byte x from state 0.
      let t = (1 << j) & 0xff;
      for (let k = 0; k < 8; k++) t = t & 1 ? 0xedb88320 ^ (t >>> 1) : t >>> 1;
      zeroByteOperator[j] = (t ^ (((1 << j) >>> 0) >>> 8)) >>> 0;
    }
  }
  return zeroByteOperator;
}

function gf2Times(matrix: Uint32Array, vector: number): number {
  let sum = 0;
  for (let j = 0; vector !== 0; j++, vector >>>= 1) if (vector & 1) sum ^= matrix[j]!;
  return sum >>> 0;
}

function gf2Square(matrix: Uint32Array): Uint32Array {
  const out = new Uint32Array(32);
  for (let j = 0; j < 32; j++) out[j] = gf2Times(matrix, matrix[j]!);
  return out;
}

/** The CRC-32 of the bytes behind `previous` followed by `count` zero bytes, in O(log count). */
export function crc32ZeroExtend(previous: number, count: number): number {
  if (!Number.isSafeInteger(count) || count < 0) throw new Error(`invalid zero-run length ${count}`);
  let register = (previous ^ 0xffffffff) >>> 0;
  let power = zeroByteMatrix();
  for (let n = count; n > 0; n = Math.floor(n / 2)) {
    if (n % 2 === 1) register = gf2Times(power, register);
    if (n > 1) power = gf2Square(power);
  }
  return (register ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Zip (STORED entries, data descriptors, ZIP64 where needed, data aligned to 64 bytes)

const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
/** torch's kFieldAlignment: storages start at multiples of 64 so readers can map them in place. */
const DATA_ALIGNMENT = 64;
/** Bit 3: sizes and CRC follow the data (torch's layout); bit 11: names are UTF-8. */
const FLAGS = 0x0808;
/** 1980-01-01, the earliest DOS date (torch writes 0, which is not a valid date). */
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
/** Writes smaller than this are gathered into one buffer; larger ones go straight to the file. */
const STAGING_BYTES = 1 << 20;
const MAX_IO = 1 << 30;

interface CentralRecord {
  readonly name: Uint8Array;
  readonly offset: number;
  readonly size: number;
  readonly crc: number;
  readonly zip64: boolean;
}

/**
 * The size of the archive {@link ZipStreamWriter} writes for these entries, record by record the
 * same layout: local header (+ ZIP64 field) padded so the data starts at a multiple of 64, the data,
 * its descriptor; then the central directory with only the saturated ZIP64 fields, the ZIP64 end
 * records when needed, and the end record.
 */
function zipSize(entries: readonly { name: string; size: number }[], forceZip64: boolean): number {
  let position = 0;
  let central = 0;
  for (const { name, size } of entries) {
    const nameLength = ascii(name).length;
    const offset = position;
    const zip64 = forceZip64 || size >= U32_MAX || offset >= U32_MAX;
    const headerEnd = offset + 30 + nameLength + (zip64 ? 20 : 0) + 4;
    const pad = (DATA_ALIGNMENT - (headerEnd % DATA_ALIGNMENT)) % DATA_ALIGNMENT;
    position = headerEnd + pad + size + 8 + (zip64 ? 16 : 8);
    const extra = (forceZip64 || size >= U32_MAX ? 16 : 0) + (forceZip64 || offset >= U32_MAX ? 8 : 0);
    central += 46 + nameLength + (extra > 0 ? 4 + extra : 0);
  }
  const zip64End = forceZip64 || entries.length >= U16_MAX || central >= U32_MAX || position >= U32_MAX;
  return position + central + (zip64End ? 56 + 20 : 0) + 22;
}

/** A zip archive written front to back with positioned writes (holes for zero runs). */
class ZipStreamWriter {
  private readonly central: CentralRecord[] = [];
  private readonly staging = new Uint8Array(STAGING_BYTES);
  private staged = 0;
  /** File offset where the staged bytes go. */
  private flushedTo = 0;
  private closed = false;

  private constructor(
    private readonly handle: FileHandle,
    private readonly forceZip64: boolean,
  ) {}

  static async create(path: string, forceZip64: boolean): Promise<ZipStreamWriter> {
    return new ZipStreamWriter(await open(path, 'w'), forceZip64);
  }

  private get position(): number {
    return this.flushedTo + this.staged;
  }

  private async flush(): Promise<void> {
    if (this.staged === 0) return;
    await this.writeAt(this.staging.subarray(0, this.staged), this.flushedTo);
    this.flushedTo += this.staged;
    this.staged = 0;
  }

  private async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done, position + done);
      done += bytesWritten;
    }
  }

  private async append(bytes: Uint8Array): Promise<void> {
    if (bytes.length >= this.staging.length / 4) {
      await this.flush();
      await this.writeAt(bytes, this.flushedTo);
      this.flushedTo += bytes.length;
    } else {
      if (bytes.length > this.staging.length - this.staged) await this.flush();
      this.staging.set(bytes, this.staged);
      this.staged += bytes.length;
    }
  }

  private async skip(count: number): Promise<void> {
    await this.flush();
    this.flushedTo += count;
  }

  async addEntry(name: string, data: Uint8Array): Promise<void> {
    await this.addStreamedEntry(name, data.length, async (sink) => sink.write(data));
  }

  /** One STORED entry of `size` bytes, produced by `produce`; fails unless exactly `size` come. */
  async addStreamedEntry(
    name: string,
    size: number,
    produce: (sink: TensorByteSink) => Promise<void>,
  ): Promise<void> {
    const nameBytes = ascii(name);
    const offset = this.position;
    const zip64 = this.forceZip64 || size >= U32_MAX || offset >= U32_MAX;
    // Local header: CRC and sizes are left zero (flag bit 3); a ZIP64 entry says so with 0xffffffff
    // sizes and an (empty) ZIP64 field, and its data descriptor carries 8-byte sizes.
    const zip64Field = zip64 ? 20 : 0;
    const headerEnd = offset + 30 + nameBytes.length + zip64Field + 4;
    const pad = (DATA_ALIGNMENT - (headerEnd % DATA_ALIGNMENT)) % DATA_ALIGNMENT;
    const header = new ByteBuilder()
      .u32(0x04034b50)
      .u16(zip64 ? 45 : 20)
      .u16(FLAGS)
      .u16(0)
      .u16(0)
      .u16(DOS_DATE)
      .u32(0)
      .u32(zip64 ? U32_MAX : 0)
      .u32(zip64 ? U32_MAX : 0)
      .u16(nameBytes.length)
      .u16(zip64Field + 4 + pad)
      .bytes(nameBytes);
    if (zip64) header.u16(0x0001).u16(16).u64(0).u64(0);
    // torch's padding field: id "FB", filled with "Z".
    header.u16(0x4246).u16(pad).bytes(new Uint8Array(pad).fill(0x5a));
    await this.append(header.done());

    let crc = 0;
    let written = 0;
    const overflow = (more: number): void => {
      if (written + more > size) {
        throw new Error(`${name}: the source produced more than the ${size} bytes its dtype and shape need`);
      }
    };
    const sink: TensorByteSink = {
      write: async (chunk) => {
        const bytes = asBytes(chunk);
        overflow(bytes.length);
        // fs.write and zlib take at most 2 GiB per call.
        for (let at = 0; at < bytes.length; at += MAX_IO) {
          const piece = bytes.subarray(at, Math.min(bytes.length, at + MAX_IO));
          crc = zlibCrc32(piece, crc);
          written += piece.length;
          await this.append(piece);
        }
      },
      zeros: async (count) => {
        if (!Number.isSafeInteger(count) || count < 0) throw new Error(`${name}: invalid zero run ${count}`);
        overflow(count);
        crc = crc32ZeroExtend(crc, count);
        written += count;
        await this.skip(count);
      },
    };
    await produce(sink);
    if (written !== size) {
      throw new Error(`${name}: the source produced ${written} bytes; its dtype and shape need ${size}`);
    }
    const descriptor = new ByteBuilder().u32(0x08074b50).u32(crc);
    if (zip64) descriptor.u64(size).u64(size);
    else descriptor.u32(size).u32(size);
    await this.append(descriptor.done());
    this.central.push({ name: nameBytes, offset, size, crc, zip64 });
  }

  /** Writes the central directory and end records, closes the file and returns its size. */
  async finish(): Promise<number> {
    const cdOffset = this.position;
    const cd = new ByteBuilder();
    for (const e of this.central) {
      const bigSize = this.forceZip64 || e.size >= U32_MAX;
      const bigOffset = this.forceZip64 || e.offset >= U32_MAX;
      const extra = new ByteBuilder();
      // Only the saturated fields appear, in this order (APPNOTE 4.5.3).
      if (bigSize) extra.u64(e.size).u64(e.size);
      if (bigOffset) extra.u64(e.offset);
      const extraField =
        extra.length > 0 ? new ByteBuilder().u16(0x0001).u16(extra.length).bytes(extra.done()) : extra;
      cd.u32(0x02014b50)
        .u16(e.zip64 ? 45 : 20)
        .u16(e.zip64 ? 45 : 20)
        .u16(FLAGS)
        .u16(0)
        .u16(0)
        .u16(DOS_DATE)
        .u32(e.crc)
        .u32(bigSize ? U32_MAX : e.size)
        .u32(bigSize ? U32_MAX : e.size)
        .u16(e.name.length)
        .u16(extraField.length)
        .u16(0)
        .u16(0)
        .u16(0)
        .u32(0)
        .u32(bigOffset ? U32_MAX : e.offset)
        .bytes(e.name)
        .bytes(extraField.done());
    }
    const count = this.central.length;
    const cdSize = cd.length;
    await this.append(cd.done());
    const zip64End = this.forceZip64 || count >= U16_MAX || cdSize >= U32_MAX || cdOffset >= U32_MAX;
    const end = new ByteBuilder();
    if (zip64End) {
      const recordOffset = this.position;
      end
        .u32(0x06064b50)
        .u64(44)
        .u16(45)
        .u16(45)
        .u32(0)
        .u32(0)
        .u64(count)
        .u64(count)
        .u64(cdSize)
        .u64(cdOffset)
        .u32(0x07064b50)
        .u32(0)
        .u64(recordOffset)
        .u32(1);
    }
    const force = this.forceZip64;
    end
      .u32(0x06054b50)
      .u16(0)
      .u16(0)
      .u16(force ? U16_MAX : Math.min(count, U16_MAX))
      .u16(force ? U16_MAX : Math.min(count, U16_MAX))
      .u32(force ? U32_MAX : Math.min(cdSize, U32_MAX))
      .u32(force ? U32_MAX : Math.min(cdOffset, U32_MAX))
      .u16(0);
    await this.append(end.done());
    await this.flush();
    const size = this.position;
    this.closed = true;
    await this.handle.close();
    return size;
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Pickle (protocol 2, laid out the way CPython's pickler writes torch.save's objects)

interface StorageRecord {
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

function isStreamed(v: TorchTensorSource): v is StreamedTensor {
  return typeof (v as Partial<StreamedTensor>).write === 'function';
}

function isRawTensor(v: TorchTensorSource): v is RawTensor {
  return (v as Partial<RawTensor>).data instanceof Uint8Array;
}

function isTensorSource(value: unknown): value is TorchTensorSource {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<StreamedTensor & RawTensor>;
  if (!isDType(v.dtype) || !Array.isArray(v.shape)) return false;
  return typeof v.write === 'function' || v.data instanceof Uint8Array || isTensorEntry(value);
}

function isPlainObject(value: unknown): value is { readonly [key: string]: TorchValue } {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

// CPython's pickler emits SETITEMS / APPENDS in batches of this many items.
const BATCH = 1000;

/** The pickle of `root` and the storages it refers to, numbered in order of first appearance. */
function pickleCheckpoint(root: TorchValue): { pickle: Uint8Array; storages: StorageRecord[] } {
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
    const b = ascii(s);
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
  const int = (v: number | bigint): void => {
    if (typeof v === 'number' && v >= 0 && v < 0x100) out.byte(0x4b, v);
    else if (typeof v === 'number' && v >= 0 && v < 0x10000) out.byte(0x4d).u16(v);
    else if (typeof v === 'number' && v >= -(2 ** 31) && v < 2 ** 31) out.byte(0x4a).u32(v >>> 0);
    else {
      const bytes = long1Bytes(v);
      out.byte(0x8a, bytes.length, ...bytes);
    }
  };
  const tuple = (items: readonly (() => void)[]): void => {
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
  };
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
