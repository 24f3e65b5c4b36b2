import { open } from 'node:fs/promises';
import { deflateRawSync } from 'node:zlib';
import { crc32 } from './crc32';
import { contiguousStrides } from './strided-copy';
import { ByteBuilder } from './byte-builder';
import { pickleInt, pickleTuple } from './torch-pickle.writer';
import { zip64EndRecords } from './zip-stream.writer';

/**
 * Writers for hand-made torch checkpoints, used by this library's tests to build valid and hostile
 * files without Python: views, deflated records, protocol 4, arbitrary objects, sparse entries and
 * missing or short storages, none of which the real writer (torch-checkpoint.writer.ts) produces.
 * The pickle layout copies what torch.save emits (see the golden 7B.pth). Not exported from the
 * package index.
 */

// ---------------------------------------------------------------------------------------------
// Pickle

/** Python values the fixture writer can emit. */
export type Py =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly Py[]
  | { readonly float: number }
  | { readonly tuple: readonly Py[] }
  | { readonly dict: readonly (readonly [Py, Py])[]; readonly ordered?: boolean }
  | { readonly tensor: TensorFixture }
  | { readonly object: { readonly module: string; readonly name: string; readonly state: Py } }
  | { readonly raw: Uint8Array };

export interface TensorFixture {
  readonly storage: string;
  /** torch storage class name, e.g. `FloatStorage`. */
  readonly storageType: string;
  /** Elements in the storage (the persistent id's numel). */
  readonly storageNumel: number;
  readonly offset?: number;
  readonly shape: readonly number[];
  /** Defaults to row-major. */
  readonly stride?: readonly number[];
  /** Wrap in torch._utils._rebuild_parameter like an nn.Parameter. */
  readonly parameter?: boolean;
}

/** Serialises a value as torch.save would (protocol 2 by default; 4 exercises the newer opcodes). */
export function picklePy(value: Py, protocol: 2 | 4 = 2): Uint8Array {
  const out = new ByteBuilder();
  const globals = new Map<string, number>();
  let memo = 0;
  const put = (): void => {
    if (protocol >= 4) out.byte(0x94);
    else if (memo < 256) out.byte(0x71, memo);
    else out.byte(0x72).u32(memo);
    memo++;
  };
  const str = (s: string): void => {
    const b = new TextEncoder().encode(s);
    if (protocol >= 4 && b.length < 256) out.byte(0x8c, b.length).bytes(b);
    else out.byte(0x58).u32(b.length).bytes(b);
  };
  const global = (module: string, name: string): void => {
    const key = `${module} ${name}`;
    const seen = globals.get(key);
    if (seen !== undefined) {
      if (seen < 256) out.byte(0x68, seen);
      else out.byte(0x6a).u32(seen);
      return;
    }
    if (protocol >= 4) {
      str(module);
      str(name);
      out.byte(0x93);
    } else {
      out.byte(0x63).text(`${module}\n${name}\n`);
    }
    globals.set(key, memo);
    put();
  };
  const int = (v: number | bigint): void => pickleInt(out, v);
  const tupleOf = (items: readonly (() => void)[]): void => pickleTuple(out, items, put);
  const emit = (v: Py): void => {
    if (v === null) out.byte(0x4e);
    else if (v === true) out.byte(0x88);
    else if (v === false) out.byte(0x89);
    else if (typeof v === 'number' || typeof v === 'bigint') int(v);
    else if (typeof v === 'string') {
      str(v);
      put();
    } else if (v instanceof Uint8Array) {
      if (protocol >= 4) {
        out.byte(0x42).u32(v.length).bytes(v);
      } else {
        // Protocol 2 has no bytes opcode: CPython emits _codecs.encode(text, 'latin1').
        global('_codecs', 'encode');
        let latin = '';
        for (const b of v) latin += String.fromCharCode(b);
        str(latin);
        put();
        str('latin1');
        put();
        out.byte(0x86, 0x52);
      }
      put();
    } else if (Array.isArray(v)) {
      out.byte(0x5d);
      put();
      if (v.length > 0) {
        out.byte(0x28);
        for (const item of v as readonly Py[]) emit(item);
        out.byte(0x65);
      }
    } else if ('float' in v) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, v.float, false);
      out.byte(0x47).bytes(b);
    } else if ('tuple' in v) {
      tupleOf(v.tuple.map((item) => () => emit(item)));
    } else if ('dict' in v) {
      if (v.ordered === true) {
        global('collections', 'OrderedDict');
        out.byte(0x29, 0x52);
      } else {
        out.byte(0x7d);
      }
      put();
      if (v.dict.length > 0) {
        out.byte(0x28);
        for (const [k, val] of v.dict) {
          emit(k);
          emit(val);
        }
        out.byte(0x75);
      }
    } else if ('tensor' in v) {
      emitTensor(v.tensor);
    } else if ('object' in v) {
      // What argparse.Namespace and most plain classes produce: cls.__new__(cls) then __dict__.
      global(v.object.module, v.object.name);
      out.byte(0x29, 0x81);
      put();
      emit(v.object.state);
      out.byte(0x62);
    } else {
      out.bytes((v as { readonly raw: Uint8Array }).raw);
    }
  };
  const emitTensor = (t: TensorFixture): void => {
    if (t.parameter === true) global('torch._utils', '_rebuild_parameter');
    global('torch._utils', '_rebuild_tensor_v2');
    out.byte(0x28);
    // Persistent id ('storage', torch.<Type>, key, 'cpu', numel)
    tupleOf([
      () => str('storage'),
      () => global('torch', t.storageType),
      () => str(t.storage),
      () => str('cpu'),
      () => int(t.storageNumel),
    ]);
    out.byte(0x51);
    int(t.offset ?? 0);
    tupleOf(t.shape.map((d) => () => int(d)));
    tupleOf((t.stride ?? contiguousStrides(t.shape)).map((d) => () => int(d)));
    out.byte(0x89);
    global('collections', 'OrderedDict');
    out.byte(0x29, 0x52);
    put();
    out.byte(0x74);
    put();
    out.byte(0x52);
    put();
    if (t.parameter === true) {
      out.byte(0x89);
      global('collections', 'OrderedDict');
      out.byte(0x29, 0x52);
      put();
      out.byte(0x87, 0x52);
      put();
    }
  };
  out.byte(0x80, protocol);
  if (protocol >= 4) {
    // A single frame header: readers must skip it.
    out.byte(0x95).u64(0);
  }
  emit(value);
  out.byte(0x2e);
  return out.done();
}

// ---------------------------------------------------------------------------------------------
// Zip

export interface ZipFixtureEntry {
  readonly name: string;
  /** Content; or `sparseBytes` for a large zero-filled entry that is never written (a file hole). */
  readonly data?: Uint8Array;
  readonly sparseBytes?: number;
  readonly deflate?: boolean;
}

export interface ZipFixtureOptions {
  /** Write ZIP64 records even for small archives. */
  readonly forceZip64?: boolean;
}

/**
 * Writes a zip archive to `path` by positioned writes, so a multi-GB sparse entry costs no disk.
 * Data is aligned to 64 bytes with a padding extra field, as torch's writer does.
 */
export async function writeZipFixture(
  path: string,
  entries: readonly ZipFixtureEntry[],
  options: ZipFixtureOptions = {},
): Promise<void> {
  const handle = await open(path, 'w');
  try {
    let pos = 0;
    const central = new ByteBuilder();
    const write = async (bytes: Uint8Array): Promise<void> => {
      await handle.write(bytes, 0, bytes.length, pos);
      pos += bytes.length;
    };
    for (const entry of entries) {
      const raw = entry.data ?? new Uint8Array(0);
      const size = entry.data !== undefined ? raw.length : (entry.sparseBytes ?? 0);
      const stored = entry.deflate === true ? new Uint8Array(deflateRawSync(raw)) : raw;
      const compressed = entry.deflate === true ? stored.length : size;
      const crc = entry.data !== undefined ? crc32(raw) : 0;
      const name = new TextEncoder().encode(entry.name);
      const zip64 = options.forceZip64 === true || size >= 0xffffffff || pos >= 0xffffffff;
      const offset = pos;
      const localExtra = new ByteBuilder();
      if (zip64) localExtra.u16(1).u16(16).u64(size).u64(compressed);
      const headerEnd = offset + 30 + name.length + localExtra.length + 4;
      const pad = (64 - (headerEnd % 64)) % 64;
      localExtra.u16(0x4246).u16(pad).bytes(new Uint8Array(pad));
      // From "version needed" to the name length, the local header and the central record agree.
      const sharedFields = (b: ByteBuilder): ByteBuilder =>
        b
          .u16(zip64 ? 45 : 20)
          .u16(0)
          .u16(entry.deflate === true ? 8 : 0)
          .u16(0)
          .u16(0)
          .u32(crc)
          .u32(zip64 ? 0xffffffff : compressed)
          .u32(zip64 ? 0xffffffff : size)
          .u16(name.length);
      const local = sharedFields(new ByteBuilder().u32(0x04034b50))
        .u16(localExtra.length)
        .bytes(name)
        .bytes(localExtra.done());
      await write(local.done());
      if (entry.data !== undefined) await write(stored);
      else pos += size;
      const cExtra = new ByteBuilder();
      if (zip64) cExtra.u16(1).u16(24).u64(size).u64(compressed).u64(offset);
      sharedFields(central.u32(0x02014b50).u16(zip64 ? 45 : 20))
        .u16(cExtra.length)
        .u16(0)
        .u16(0)
        .u16(0)
        .u32(0)
        .u32(zip64 ? 0xffffffff : offset)
        .bytes(name)
        .bytes(cExtra.done());
    }
    const cdOffset = pos;
    const cd = central.done();
    await write(cd);
    const zip64End = options.forceZip64 === true || cdOffset >= 0xffffffff;
    if (zip64End) {
      await write(zip64EndRecords(new ByteBuilder(), entries.length, cd.length, cdOffset, pos).done());
    }
    await write(
      new ByteBuilder()
        .u32(0x06054b50)
        .u16(0)
        .u16(0)
        .u16(zip64End ? 0xffff : entries.length)
        .u16(zip64End ? 0xffff : entries.length)
        .u32(zip64End ? 0xffffffff : cd.length)
        .u32(zip64End ? 0xffffffff : cdOffset)
        .u16(0)
        .done(),
    );
  } finally {
    await handle.close();
  }
}

/** A torch.save-shaped archive: `<archive>/data.pkl`, `<archive>/data/<key>`, `<archive>/version`. */
export async function writeTorchFixture(
  path: string,
  root: Py,
  storages: ReadonlyMap<string, Uint8Array | { readonly sparseBytes: number }>,
  options: ZipFixtureOptions & {
    readonly archive?: string;
    readonly protocol?: 2 | 4;
    readonly deflate?: boolean;
  } = {},
): Promise<void> {
  const archive = options.archive ?? 'archive';
  const entries: ZipFixtureEntry[] = [
    { name: `${archive}/data.pkl`, data: picklePy(root, options.protocol ?? 2), deflate: options.deflate },
  ];
  for (const [key, bytes] of storages) {
    entries.push(
      bytes instanceof Uint8Array
        ? { name: `${archive}/data/${key}`, data: bytes, deflate: options.deflate }
        : { name: `${archive}/data/${key}`, sparseBytes: bytes.sparseBytes },
    );
  }
  entries.push({ name: `${archive}/version`, data: new TextEncoder().encode('3\n') });
  await writeZipFixture(path, entries, options);
}

/** Little-endian bytes of typed-array values (fixtures are built on little-endian hosts). */
export function bytesOf(
  values:
    | Float32Array
    | Uint16Array
    | Int32Array
    | BigInt64Array
    | Float64Array
    | Int8Array
    | Uint8Array
    | Int16Array,
): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
}
