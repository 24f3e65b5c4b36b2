import { resolveSource, type ByteSource } from './byte-source';
import { CheckpointFormatError } from './checkpoint.error';
import { NOT_HANDLED, PickleGlobal, PickleObject, unpickle } from './pickle-vm';
import { contiguousStrides, gatherStrided, isContiguous } from './strided-copy';
import {
  dtypeItemSize,
  formatShape,
  shapeNumel,
  type DType,
  type RawTensor,
  type TensorEntry,
} from './tensor';
import { ZipReader } from './zip-reader';

/** torch's storage classes as they appear in pickles (MODEL_SPEC §6.5). */
const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  // Untyped storages count bytes; torch only pickles them for raw storages, not tensors.
  UntypedStorage: 'uint8',
};

/** A storage the pickle points at: `<archive>/data/<key>` in the zip. */
export class TorchStorageRef {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
    readonly device: string,
    readonly record: string,
  ) {}
}

interface TensorLayout {
  readonly storage: TorchStorageRef;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
}

/** A tensor of a torch checkpoint; its bytes stay in the file until `read()`. */
export class TorchTensorEntry implements TensorEntry {
  readonly byteLength: number;

  constructor(
    private readonly zip: ZipReader,
    readonly layout: TensorLayout,
    private label = '',
  ) {
    this.byteLength = shapeNumel(layout.shape) * dtypeItemSize(layout.storage.dtype);
  }

  /** The dotted path where the tensor was first found in the checkpoint (or its state-dict key). */
  get name(): string {
    return this.label;
  }

  /** Names a tensor of the unpickled tree after its path; the first path wins for shared tensors. */
  nameIfUnnamed(path: string): void {
    if (this.label === '') this.label = path;
  }

  get dtype(): DType {
    return this.layout.storage.dtype;
  }

  get shape(): readonly number[] {
    return this.layout.shape;
  }

  get strides(): readonly number[] {
    return this.layout.strides;
  }

  /** The same tensor under another name (a state-dict key). */
  withName(name: string): TorchTensorEntry {
    return new TorchTensorEntry(this.zip, this.layout, name);
  }

  async read(): Promise<RawTensor> {
    const { storage, offset, shape, strides } = this.layout;
    const itemSize = dtypeItemSize(storage.dtype);
    const numel = shapeNumel(shape);
    if (numel === 0) return { dtype: storage.dtype, shape, data: new Uint8Array(0) };
    if (isContiguous(shape, strides)) {
      const data = await this.zip.readRange(storage.record, offset * itemSize, numel * itemSize);
      return { dtype: storage.dtype, shape, data };
    }
    // Views (transposes, slices with steps, expands) read only the span they touch.
    const span = maxElement(offset, shape, strides) - offset + 1;
    const window = await this.zip.readRange(storage.record, offset * itemSize, span * itemSize);
    return { dtype: storage.dtype, shape, data: gatherStrided(window, itemSize, shape, strides, 0) };
  }
}

function maxElement(offset: number, shape: readonly number[], strides: readonly number[]): number {
  let last = offset;
  shape.forEach((size, i) => {
    last += (size - 1) * (strides[i] ?? 0);
  });
  return last;
}

/** A path into the unpickled tree: dict keys or list indices. */
export type TreePath = readonly (string | number)[];

export interface TorchCheckpoint {
  readonly file: string;
  /** The zip's top folder (`archive`, or the file stem for older torch versions). */
  readonly archiveName: string;
  /** The unpickled object: Maps, arrays, primitives, {@link TorchTensorEntry} leaves, placeholders. */
  readonly root: unknown;
  /**
   * Every tensor under `prefixPath`, keyed by its dotted path relative to that node (nested dicts
   * flatten to `a.b.c`). Non-tensor values are skipped. `stateDict(['model'])` gives `7B.pth`'s
   * adapter weights (MODEL_SPEC §6.1).
   */
  stateDict(prefixPath?: TreePath): Map<string, TorchTensorEntry>;
  close(): Promise<void>;
}

/**
 * Opens a `torch.save` zip checkpoint (torch ≥ 1.6 default format). Only the zip directory and
 * `data.pkl` are read here; tensor bytes are read by each entry's `read()`.
 */
export async function openTorchCheckpoint(input: string | ByteSource): Promise<TorchCheckpoint> {
  const source = await resolveSource(input);
  try {
    await sniffTorchFile(source);
    const zip = await ZipReader.open(source);
    return await loadFromZip(zip);
  } catch (error) {
    await source.close();
    throw error;
  }
}

const LEGACY_HINT =
  'It uses the legacy (pre-1.6, non-zip) torch.save format, which this reader does not support. ' +
  'Convert it once with a recent PyTorch: `torch.save(torch.load("old.pth", map_location="cpu"), "new.pth")` ' +
  '(zip format), or export it to safetensors (`safetensors.torch.save_file(state_dict, "model.safetensors")`).';

async function sniffTorchFile(source: ByteSource): Promise<void> {
  if (source.size < 4) {
    throw new CheckpointFormatError(
      source.name,
      `is ${source.size} bytes long: not a torch checkpoint (empty or truncated)`,
    );
  }
  const head = await source.read(0, Math.min(16, source.size));
  if (head[0] === 0x50 && head[1] === 0x4b) return;
  if (head[0] === 0x80 && (head[1] ?? 0) >= 2 && (head[1] ?? 0) <= 5) {
    throw new CheckpointFormatError(source.name, `is a bare pickle, not a zip archive. ${LEGACY_HINT}`);
  }
  if (head.length >= 9 && head[8] === 0x7b) {
    throw new CheckpointFormatError(
      source.name,
      'looks like a safetensors file, not a torch zip; open it with openSafetensors',
    );
  }
  const hex = Array.from(head.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new CheckpointFormatError(
    source.name,
    `is not a torch zip checkpoint (starts with bytes ${hex}, expected "PK"); if torch.load reads it, it may be the legacy format. ${LEGACY_HINT}`,
  );
}

async function loadFromZip(zip: ZipReader): Promise<TorchCheckpoint> {
  const file = zip.name;
  const pickles = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pickles.length !== 1) {
    const listing = [...zip.entries.keys()].slice(0, 8).join(', ');
    throw new CheckpointFormatError(
      file,
      pickles.length === 0
        ? `zip has no <archive>/data.pkl record, so it was not written by torch.save (entries: ${listing || 'none'})`
        : `zip has several data.pkl records (${pickles.join(', ')}); cannot tell which is the checkpoint`,
    );
  }
  const pickleName = pickles[0] ?? '';
  const archiveName = pickleName.slice(0, pickleName.indexOf('/'));
  const byteorder = zip.entry(`${archiveName}/byteorder`);
  if (byteorder !== undefined) {
    const order = new TextDecoder().decode(await zip.readEntry(byteorder.name)).trim();
    if (order !== 'little') {
      throw new CheckpointFormatError(
        file,
        `tensors are stored ${order}-endian; only little-endian checkpoints are supported`,
      );
    }
  }
  const pickleBytes = await zip.readEntry(pickleName);
  const where = `${file}:${pickleName}`;
  const storages = new Map<string, TorchStorageRef>();

  const persistentLoad = (pid: unknown): TorchStorageRef => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
      throw new CheckpointFormatError(
        where,
        `unexpected persistent id ${describe(pid)} (expected a ('storage', ...) tuple)`,
      );
    }
    const [, type, key, device, numel] = pid as unknown[];
    if (!(type instanceof PickleGlobal) || typeof key !== 'string' || typeof numel !== 'number') {
      throw new CheckpointFormatError(where, `malformed storage id ${describe(pid)}`);
    }
    const dtype = type.module === 'torch' ? STORAGE_DTYPES[type.name] : undefined;
    if (dtype === undefined) {
      throw new CheckpointFormatError(
        where,
        `storage ${key} has unsupported type ${type.qualifiedName}; supported: ${Object.keys(STORAGE_DTYPES)
          .map((n) => `torch.${n}`)
          .join(', ')}`,
      );
    }
    const existing = storages.get(key);
    if (existing !== undefined) return existing;
    const record = `${archiveName}/data/${key}`;
    const entry = zip.entry(record);
    if (entry === undefined) {
      throw new CheckpointFormatError(
        file,
        `storage record ${record} is missing (truncated or damaged archive)`,
      );
    }
    const needed = numel * dtypeItemSize(dtype);
    if (entry.uncompressedSize < needed) {
      throw new CheckpointFormatError(
        file,
        `storage record ${record} has ${entry.uncompressedSize} bytes but ${type.name} of ${numel} elements needs ${needed}`,
      );
    }
    const ref = new TorchStorageRef(
      key,
      dtype,
      numel,
      typeof device === 'string' ? device : String(device),
      record,
    );
    storages.set(key, ref);
    return ref;
  };

  const rebuild = (args: readonly unknown[]): TorchTensorEntry => {
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof TorchStorageRef)) {
      throw new CheckpointFormatError(where, `tensor rebuilt from ${describe(storage)} instead of a storage`);
    }
    const shape = intTuple(where, size, 'size');
    const strides =
      stride === undefined || stride === null ? contiguousStrides(shape) : intTuple(where, stride, 'stride');
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
      throw new CheckpointFormatError(where, `bad storage offset ${describe(offset)}`);
    }
    if (strides.length !== shape.length) {
      throw new CheckpointFormatError(
        where,
        `tensor size ${formatShape(shape)} and stride ${formatShape(strides)} differ in rank`,
      );
    }
    if (shapeNumel(shape) > 0) {
      const last = maxElement(offset, shape, strides);
      if (last >= storage.numel) {
        throw new CheckpointFormatError(
          where,
          `tensor of size ${formatShape(shape)}, stride ${formatShape(strides)}, offset ${offset} reaches element ${last} of storage ${storage.key}, which has ${storage.numel}`,
        );
      }
    }
    return new TorchTensorEntry(zip, { storage, offset, shape, strides });
  };

  const reduce = (callable: PickleGlobal, args: readonly unknown[]): unknown => {
    switch (callable.qualifiedName) {
      case 'torch._utils._rebuild_tensor_v2':
      case 'torch._utils._rebuild_tensor':
        return rebuild(args);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        // A Parameter is its tensor; requires_grad and hooks do not matter for inference.
        return args[0];
      case 'torch._tensor._rebuild_from_type_v2': {
        // Tensor subclasses: (func, new_type, args, state); the data is func(*args).
        const [func, , inner] = args;
        if (func instanceof PickleGlobal && Array.isArray(inner)) return reduce(func, inner as unknown[]);
        return NOT_HANDLED;
      }
      default:
        return NOT_HANDLED;
    }
  };

  const root = unpickle(pickleBytes, { source: where, hooks: { persistentLoad, reduce } });
  visitTensors(root, '', (path, entry) => entry.nameIfUnnamed(path), new Set());

  return {
    file,
    archiveName,
    root,
    stateDict(prefixPath: TreePath = []): Map<string, TorchTensorEntry> {
      const node = navigate(file, root, prefixPath);
      if (node instanceof TorchTensorEntry) {
        throw new CheckpointFormatError(
          file,
          `${pathLabel(prefixPath)} is a single tensor, not a state dict`,
        );
      }
      const out = new Map<string, TorchTensorEntry>();
      visitTensors(node, '', (path, entry) => out.set(path, entry.withName(path)), new Set());
      return out;
    },
    close: async () => zip.close(),
  };
}

function intTuple(where: string, value: unknown, what: string): number[] {
  if (
    !Array.isArray(value) ||
    !value.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)
  ) {
    throw new CheckpointFormatError(
      where,
      `tensor ${what} ${describe(value)} is not a tuple of non-negative integers`,
    );
  }
  return [...(value as number[])];
}

function describe(value: unknown): string {
  if (value instanceof PickleGlobal) return value.qualifiedName;
  if (value instanceof PickleObject) return `<${value.type.qualifiedName} object>`;
  if (Array.isArray(value)) return `(${value.map(describe).join(', ')})`;
  if (typeof value === 'string') return JSON.stringify(value);
  if (value instanceof Map) return `<dict of ${value.size}>`;
  return String(value);
}

function pathLabel(path: TreePath): string {
  return path.length === 0 ? 'the root object' : path.map((p) => `[${JSON.stringify(p)}]`).join('');
}

/** The children of a container node, as (key, value) pairs. */
function children(node: unknown): [string | number, unknown][] | undefined {
  if (node instanceof Map)
    return [...node.entries()].map(([k, v]) => [typeof k === 'number' ? k : String(k), v]);
  if (Array.isArray(node)) return node.map((v, i) => [i, v]);
  if (node instanceof PickleObject) {
    // A dict subclass keeps its items; an attribute bag (Namespace) keeps its __dict__ as state.
    if (node.dictItems.size > 0) return children(node.dictItems);
    if (node.listItems.length > 0) return children(node.listItems);
    return node.state instanceof Map ? children(node.state) : [];
  }
  return undefined;
}

function navigate(file: string, root: unknown, path: TreePath): unknown {
  let node = root;
  path.forEach((key, depth) => {
    const kids = children(node);
    const hit = kids?.find(([k]) => k === key);
    if (hit === undefined) {
      const available =
        kids === undefined
          ? 'it is not a container'
          : `keys: ${kids
              .map(([k]) => JSON.stringify(k))
              .slice(0, 20)
              .join(', ')}`;
      throw new CheckpointFormatError(
        file,
        `${pathLabel(path.slice(0, depth + 1))} not found in the checkpoint (${available})`,
      );
    }
    node = hit[1];
  });
  return node;
}

/** Depth-first over tensor leaves with their dotted paths; `seen` only guards against cycles. */
function visitTensors(
  node: unknown,
  prefix: string,
  visit: (path: string, entry: TorchTensorEntry) => void,
  seen: Set<unknown>,
): void {
  if (node instanceof TorchTensorEntry) {
    visit(prefix, node);
    return;
  }
  const kids = children(node);
  if (kids === undefined || seen.has(node)) return;
  seen.add(node);
  for (const [key, value] of kids)
    visitTensors(value, prefix === '' ? String(key) : `${prefix}.${key}`, visit, seen);
  seen.delete(node);
}
