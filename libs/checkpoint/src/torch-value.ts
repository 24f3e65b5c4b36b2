import { isDType, isTensorEntry, type DType, type RawTensor, type TensorEntry } from './tensor';

/**
 * The values `writeTorchCheckpoint` accepts: the tree it pickles and the tensor sources at its
 * leaves, with the guards that tell them apart.
 */

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

export function isStreamed(v: TorchTensorSource): v is StreamedTensor {
  return typeof (v as Partial<StreamedTensor>).write === 'function';
}

export function isRawTensor(v: TorchTensorSource): v is RawTensor {
  return (v as Partial<RawTensor>).data instanceof Uint8Array;
}

export function isTensorSource(value: unknown): value is TorchTensorSource {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Partial<StreamedTensor & RawTensor>;
  if (!isDType(v.dtype) || !Array.isArray(v.shape)) return false;
  return typeof v.write === 'function' || v.data instanceof Uint8Array || isTensorEntry(value);
}

export function isPlainObject(value: unknown): value is { readonly [key: string]: TorchValue } {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}
