import { rename, rm } from 'node:fs/promises';
import { utf8 } from './byte-builder';
import { formatShape, type DType } from './tensor';
import { pickleCheckpoint, type StorageRecord } from './torch-pickle.writer';
import {
  isRawTensor,
  isStreamed,
  type StreamedTensor,
  type TensorByteSink,
  type TorchValue,
} from './torch-value';
import { storedZipSize, ZipStreamWriter } from './zip-stream.writer';

/**
 * A streaming `torch.save` writer: the zip layout and protocol-2 pickle torch ≥ 1.6 produces
 * (MODEL_SPEC §6.5), written so that a multi-GB checkpoint never holds more than one chunk of one
 * tensor in memory. The pickle needs only each tensor's dtype and shape, so it goes first; the
 * storages follow one at a time, each produced lazily by its source.
 *
 * The parts: torch-value.ts (what can be written), torch-pickle.writer.ts (data.pkl),
 * zip-stream.writer.ts (the container), this file (the order of the records, the temporary file).
 */

export type { StreamedTensor, TensorByteSink, TorchTensorSource, TorchValue } from './torch-value';

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
    if (options.byteorderRecord !== false) await zip.addEntry(`${archive}/byteorder`, utf8('little'));
    for (const storage of storages) {
      await zip.addStreamedEntry(`${archive}/data/${storage.key}`, storage.byteLength, async (sink) =>
        writeSource(storage, sink),
      );
      tensorBytes += storage.byteLength;
      options.onTensor?.(storage.path, storage.byteLength);
    }
    await zip.addEntry(`${archive}/version`, utf8('3\n'));
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
  return {
    bytes: storedZipSize(entries, options.forceZip64 === true),
    tensors: storages.length,
    tensorBytes,
  };
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
