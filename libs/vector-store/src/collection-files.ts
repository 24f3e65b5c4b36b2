import { open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { encodeNpy, parseNpy, parseNpyLayout, viewAs, type NpyLayout } from '@imagebind-llm/checkpoint';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { sharedFloat32 } from './shared-memory';
import { COLLECTION_NAME, MAX_DIMENSION } from './validation';

/**
 * On-disk layout of one embedded collection (README "Persistence layout"):
 *
 *   <dir>/<collection>/manifest.json         the commit record, replaced atomically
 *   <dir>/<collection>/vectors.<gen>.<p>.npy float32 [rows, dimension], part p of the rows in order
 *   <dir>/<collection>/ids.<gen>.npy         int64 [count], row i holds the id of vector row i
 *   <dir>/<collection>/payloads.<gen>.json   {"<id>": {...}} for points that have a payload
 *   <dir>/<collection>/index.<gen>.usearch   the HNSW graph, when one was built
 *   <dir>/<collection>/index.<gen>.ivf       or the IVF lists (ivf.ts), for streamed imports
 *
 * Data files carry a generation number and are never overwritten: a flush writes generation g+1
 * beside g, then renames a new manifest over the old one. Whatever the moment of a crash, the
 * manifest names one complete generation.
 *
 * Vectors are split into parts of `vectorFileRows` rows (256 MiB by default) because a whole cache
 * does not fit one buffer: Node reads at most 2 GiB per readFile and a Uint8Array holds at most
 * 4 GiB, while the CC3M cache is 12 GiB of float32.
 */

export const MANIFEST_FILE = 'manifest.json';
export const STORE_FORMAT = 'imagebind-llm/vector-store';
export const STORE_FORMAT_VERSION = 1;

/** Bytes per vectors part: large enough for few files, small enough to encode without a big copy. */
export const VECTOR_FILE_BYTES = 256 * 1024 * 1024;
/** A Float32Array holds at most 2^32 elements: the row capacity of one collection in this store. */
export const MAX_STORED_FLOATS = 2 ** 32 - 1;

export type Quantization = 'f32' | 'i8';
/** The approximate index a generation carries: usearch's HNSW graph or the IVF lists (ivf.ts). */
export type IndexKind = 'hnsw' | 'ivf';
const INDEX_SUFFIX: Readonly<Record<IndexKind, string>> = { hnsw: 'usearch', ivf: 'ivf' };

/** The kind of index a manifest's index file name says it is. */
export function indexKindOf(file: string | null): IndexKind | null {
  if (file === null) return null;
  return file.endsWith(`.${INDEX_SUFFIX.ivf}`) ? 'ivf' : 'hnsw';
}
export const QUANTIZATIONS: readonly Quantization[] = ['f32', 'i8'];

export interface CollectionManifest {
  readonly format: string;
  readonly formatVersion: number;
  readonly name: string;
  readonly dimension: number;
  readonly count: number;
  /** Quantization of the HNSW index file (the float32 vectors are always stored in full). */
  readonly quantization: Quantization;
  readonly generation: number;
  /** Rows per vectors part; every part but the last is full. */
  readonly vectorFileRows: number;
  readonly files: {
    readonly vectors: readonly string[];
    readonly ids: string;
    readonly payloads: string;
    readonly index: string | null;
  };
}

export interface CollectionSnapshot {
  readonly manifest: CollectionManifest;
  /**
   * The live row buffer (at least count × dimension), encoded part by part while writing so the
   * whole store is never copied at once. The owner must not modify it until the write settles
   * (the driver copies it on write while a flush holds it).
   */
  readonly vectors: Float32Array;
  /** `.npy` bytes. */
  readonly ids: Uint8Array;
  readonly payloads: string;
  /** Where usearch already saved the index (it writes paths synchronously); moved into place here. */
  readonly indexTempFile?: string;
}

export interface StoredCollection {
  readonly manifest: CollectionManifest;
  /** The float32 rows; empty when read with `loadVectors: false` (then see `vectorParts`). */
  readonly vectors: Float32Array;
  /** Where each vectors part's rows start, checked against its header and size. */
  readonly vectorParts: readonly VectorPart[];
  readonly ids: Float64Array;
  readonly payloads: ReadonlyMap<number, Readonly<Record<string, string>>>;
  /** Absolute path of the saved index, when the manifest names one. */
  readonly indexFile: string | undefined;
  readonly indexKind: IndexKind | null;
}

/** One vectors `.npy` part on disk: rows [first, first + rows) of the collection. */
export interface VectorPart {
  readonly path: string;
  readonly first: number;
  readonly rows: number;
  /** Byte offset of the part's first float. */
  readonly dataStart: number;
}

/**
 * The `.npy` header (format 1.0) that encodeNpy writes for a float32 array of this shape, so a
 * part can be written row by row and still be byte-identical to an encoded one.
 */
export function float32NpyHeader(shape: readonly number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(10 + header.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  return out;
}

export function defaultVectorFileRows(dimension: number): number {
  return Math.max(1, Math.floor(VECTOR_FILE_BYTES / (dimension * 4)));
}

export function generationFiles(
  generation: number,
  count: number,
  vectorFileRows: number,
  index: IndexKind | null,
): CollectionManifest['files'] {
  const parts = Math.max(1, Math.ceil(count / vectorFileRows));
  return {
    vectors: Array.from({ length: parts }, (_, p) => `vectors.${generation}.${p}.npy`),
    ids: `ids.${generation}.npy`,
    payloads: `payloads.${generation}.json`,
    index: index === null ? null : `index.${generation}.${INDEX_SUFFIX[index]}`,
  };
}

/** Temp names start with '.', which no collection file or name can: stray ones are easy to spot. */
export function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp`);
}

/** Writes one generation and commits it by replacing the manifest; then drops older generations. */
export async function writeCollection(folder: string, snapshot: CollectionSnapshot): Promise<void> {
  const { files } = snapshot.manifest;
  try {
    const { count, dimension, vectorFileRows } = snapshot.manifest;
    for (const [p, file] of files.vectors.entries()) {
      const first = p * vectorFileRows;
      const rows = Math.min(vectorFileRows, count - first);
      const part = snapshot.vectors.subarray(first * dimension, (first + rows) * dimension);
      const data = new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
      await writeDurably(join(folder, file), encodeNpy({ dtype: 'float32', shape: [rows, dimension], data }));
    }
    await writeDurably(join(folder, files.ids), snapshot.ids);
    await writeDurably(join(folder, files.payloads), snapshot.payloads);
    if (files.index !== null) {
      if (snapshot.indexTempFile === undefined) throw new Error('index file was not saved');
      await syncFile(snapshot.indexTempFile);
      await rename(snapshot.indexTempFile, join(folder, files.index));
    }
    await writeDurably(join(folder, MANIFEST_FILE), `${JSON.stringify(snapshot.manifest, null, 1)}\n`);
    await syncDirectory(folder);
  } catch (error) {
    throw DomainError.unavailable(
      `could not write vector store collection ${JSON.stringify(snapshot.manifest.name)} to ${folder}: ` +
        `${error instanceof Error ? error.message : String(error)}; check free space and permissions`,
      error,
    );
  }
  await removeStrayFiles(folder, snapshot.manifest);
}

/** Removes every file the manifest does not name: older generations and temp files of a crash. */
export async function removeStrayFiles(folder: string, manifest: CollectionManifest): Promise<void> {
  const { vectors, ids, payloads, index } = manifest.files;
  const keep = new Set<string>([
    MANIFEST_FILE,
    ...vectors,
    ids,
    payloads,
    ...(index === null ? [] : [index]),
  ]);
  for (const entry of await readdir(folder, { withFileTypes: true })) {
    if (entry.isFile() && !keep.has(entry.name)) await rm(join(folder, entry.name), { force: true });
  }
}

async function writeDurably(path: string, data: Uint8Array | string): Promise<void> {
  await rename(await writeTemp(path, data), path);
}

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes the renames durable. Best effort: some platforms cannot fsync a directory. */
async function syncDirectory(folder: string): Promise<void> {
  try {
    const handle = await open(folder, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // The data files are synced already; only the rename's durability is at stake.
  }
}

/**
 * Commits a generation whose data files were written (and fsynced) under temp names: renames them
 * into place, then replaces the manifest, then drops every file the new manifest does not name.
 * Until the manifest rename the previous generation stays the committed one.
 */
export async function commitGeneration(
  folder: string,
  manifest: CollectionManifest,
  renames: readonly (readonly [from: string, to: string])[],
): Promise<void> {
  try {
    for (const [from, to] of renames) await rename(from, join(folder, to));
    await writeDurably(join(folder, MANIFEST_FILE), `${JSON.stringify(manifest, null, 1)}\n`);
    await syncDirectory(folder);
  } catch (error) {
    throw DomainError.unavailable(
      `could not commit vector store collection ${JSON.stringify(manifest.name)} in ${folder}: ` +
        `${error instanceof Error ? error.message : String(error)}; check free space and permissions`,
      error,
    );
  }
  await removeStrayFiles(folder, manifest);
}

/** Writes `data` to `path` under a temp name, fsynced, and returns the temp name (not renamed). */
export async function writeTemp(path: string, data: Uint8Array | string): Promise<string> {
  const tmp = tempPath(path);
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return tmp;
}

export async function fsyncPath(path: string): Promise<void> {
  await syncFile(path);
}

export interface ReadCollectionOptions {
  /**
   * false: leave the float32 rows on disk (only their parts' headers and sizes are checked) and
   * return `vectors` empty. Default true.
   */
  readonly loadVectors?: boolean | ((manifest: CollectionManifest) => boolean);
}

/** Loads one collection folder, checking every file against the manifest. */
export async function readCollection(
  folder: string,
  options: ReadCollectionOptions = {},
): Promise<StoredCollection> {
  const corrupt = (detail: string, cause?: unknown): DomainError =>
    new DomainError(
      ErrorCode.FailedPrecondition,
      `vector store collection at ${folder} cannot be loaded: ${detail}. ` +
        'Restore the folder from a backup, or delete it to drop the collection',
      { folder },
      { cause },
    );
  const read = async (file: string): Promise<Buffer> => {
    try {
      return await readFile(join(folder, file));
    } catch (error) {
      throw corrupt(
        `${file} cannot be read (${error instanceof Error ? error.message : String(error)})`,
        error,
      );
    }
  };

  let raw: unknown;
  try {
    raw = JSON.parse((await read(MANIFEST_FILE)).toString('utf8'));
  } catch (error) {
    if (error instanceof DomainError) throw error;
    throw corrupt(`${MANIFEST_FILE} is not valid JSON`, error);
  }
  const manifest = checkManifest(raw, basename(folder), corrupt);
  const { dimension, count, files } = manifest;

  const npy = async (file: string, dtype: string, shape: readonly number[]): Promise<Uint8Array> => {
    const bytes = await read(file);
    let tensor;
    try {
      tensor = parseNpy(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file);
    } catch (error) {
      throw corrupt(error instanceof Error ? error.message : String(error), error);
    }
    if (tensor.dtype !== dtype || tensor.shape.join(',') !== shape.join(',')) {
      throw corrupt(
        `${file} holds ${tensor.dtype}[${tensor.shape.join(', ')}], expected ${dtype}[${shape.join(', ')}]`,
      );
    }
    return tensor.data;
  };

  const loadVectors =
    typeof options.loadVectors === 'function' ? options.loadVectors(manifest) : (options.loadVectors ?? true);
  const vectors = sharedFloat32(loadVectors ? count * dimension : 0);
  const vectorParts: VectorPart[] = [];
  for (const [p, file] of files.vectors.entries()) {
    const first = p * manifest.vectorFileRows;
    const rows = Math.min(manifest.vectorFileRows, count - first);
    if (loadVectors) {
      vectors.set(viewAs(await npy(file, 'float32', [rows, dimension]), Float32Array), first * dimension);
      vectorParts.push({ path: join(folder, file), first, rows, dataStart: -1 });
    } else {
      const dataStart = await checkPartOnDisk(join(folder, file), file, rows, dimension, corrupt);
      vectorParts.push({ path: join(folder, file), first, rows, dataStart });
    }
  }
  const rawIds = viewAs(await npy(files.ids, 'int64', [count]), BigInt64Array);
  const ids = new Float64Array(count);
  const seen = new Set<number>();
  for (let row = 0; row < count; row++) {
    const id = Number(rawIds[row]!);
    if (!Number.isSafeInteger(id) || id < 0)
      throw corrupt(`${files.ids}[${row}] = ${rawIds[row]} is not a valid id`);
    if (seen.has(id)) throw corrupt(`${files.ids} holds id ${id} twice`);
    seen.add(id);
    ids[row] = id;
  }

  let payloadJson: unknown;
  try {
    payloadJson = JSON.parse((await read(files.payloads)).toString('utf8'));
  } catch (error) {
    if (error instanceof DomainError) throw error;
    throw corrupt(`${files.payloads} is not valid JSON`, error);
  }
  if (typeof payloadJson !== 'object' || payloadJson === null || Array.isArray(payloadJson)) {
    throw corrupt(`${files.payloads} must hold an object keyed by id`);
  }
  const payloads = new Map<number, Readonly<Record<string, string>>>();
  for (const [key, value] of Object.entries(payloadJson as Record<string, unknown>)) {
    const id = Number(key);
    if (!seen.has(id)) throw corrupt(`${files.payloads} has a payload for id ${key}, which is not stored`);
    if (
      typeof value !== 'object' ||
      value === null ||
      Array.isArray(value) ||
      !Object.values(value).every((v) => typeof v === 'string')
    ) {
      throw corrupt(`${files.payloads}: the payload of id ${key} is not an object of strings`);
    }
    payloads.set(id, Object.freeze({ ...(value as Record<string, string>) }));
  }

  return {
    manifest,
    vectors,
    vectorParts,
    ids,
    payloads,
    indexFile: files.index === null ? undefined : join(folder, files.index),
    indexKind: indexKindOf(files.index),
  };
}

/** Checks a vectors part's header and size without reading its rows; returns where they start. */
async function checkPartOnDisk(
  path: string,
  file: string,
  rows: number,
  dimension: number,
  corrupt: (detail: string, cause?: unknown) => DomainError,
): Promise<number> {
  let layout: NpyLayout;
  let size: number;
  try {
    const handle = await open(path, 'r');
    try {
      size = (await handle.stat()).size;
      const head = new Uint8Array(Math.min(size, 65_536));
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      layout = parseNpyLayout(head.subarray(0, bytesRead), file);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw corrupt(
      `${file} cannot be read (${error instanceof Error ? error.message : String(error)})`,
      error,
    );
  }
  if (layout.dtype !== 'float32' || layout.shape.join(',') !== `${rows},${dimension}`) {
    throw corrupt(
      `${file} holds ${layout.dtype}[${layout.shape.join(', ')}], expected float32[${rows}, ${dimension}]`,
    );
  }
  if (size !== layout.dataStart + layout.byteLength) {
    throw corrupt(
      `${file} has ${size - layout.dataStart} data bytes, expected ${layout.byteLength}` +
        (size < layout.dataStart + layout.byteLength ? ' (truncated)' : ''),
    );
  }
  return layout.dataStart;
}

function checkManifest(
  raw: unknown,
  folderName: string,
  corrupt: (detail: string) => DomainError,
): CollectionManifest {
  if (typeof raw !== 'object' || raw === null) throw corrupt(`${MANIFEST_FILE} is not an object`);
  const m = raw as Partial<Record<keyof CollectionManifest, unknown>>;
  if (m.format !== STORE_FORMAT) throw corrupt(`${MANIFEST_FILE} has format ${JSON.stringify(m.format)}`);
  if (m.formatVersion !== STORE_FORMAT_VERSION) {
    throw corrupt(
      `${MANIFEST_FILE} has format version ${String(m.formatVersion)}; this build reads version ${STORE_FORMAT_VERSION}`,
    );
  }
  if (m.name !== folderName || !COLLECTION_NAME.test(folderName)) {
    throw corrupt(
      `${MANIFEST_FILE} names collection ${JSON.stringify(m.name)} but the folder is ${folderName}`,
    );
  }
  const positive = (v: unknown, max: number): v is number =>
    typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
  if (!positive(m.dimension, MAX_DIMENSION) || m.dimension === 0) {
    throw corrupt(`${MANIFEST_FILE} has dimension ${String(m.dimension)}`);
  }
  if (!positive(m.count, Math.floor(MAX_STORED_FLOATS / m.dimension))) {
    throw corrupt(`${MANIFEST_FILE} has count ${String(m.count)}, more than this store can hold`);
  }
  if (!positive(m.vectorFileRows, Number.MAX_SAFE_INTEGER) || m.vectorFileRows === 0) {
    throw corrupt(`${MANIFEST_FILE} has vectorFileRows ${String(m.vectorFileRows)}`);
  }
  if (!positive(m.generation, Number.MAX_SAFE_INTEGER)) {
    throw corrupt(`${MANIFEST_FILE} has generation ${String(m.generation)}`);
  }
  if (!QUANTIZATIONS.includes(m.quantization as Quantization)) {
    throw corrupt(`${MANIFEST_FILE} has quantization ${JSON.stringify(m.quantization)}`);
  }
  const files = m.files as Partial<Record<keyof CollectionManifest['files'], unknown>> | undefined;
  const expected = generationFiles(
    m.generation,
    m.count,
    m.vectorFileRows,
    typeof files?.index === 'string' ? indexKindOf(files.index) : null,
  );
  if (
    files === undefined ||
    !Array.isArray(files.vectors) ||
    files.vectors.join('/') !== expected.vectors.join('/') ||
    files.ids !== expected.ids ||
    files.payloads !== expected.payloads ||
    files.index !== expected.index
  ) {
    throw corrupt(
      `${MANIFEST_FILE} lists files ${JSON.stringify(files)}, expected ${JSON.stringify(expected)}`,
    );
  }
  return {
    format: STORE_FORMAT,
    formatVersion: STORE_FORMAT_VERSION,
    name: folderName,
    dimension: m.dimension,
    count: m.count,
    quantization: m.quantization as Quantization,
    generation: m.generation,
    vectorFileRows: m.vectorFileRows,
    files: expected,
  };
}
