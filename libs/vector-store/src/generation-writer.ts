import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeNpy } from '@imagebind-llm/checkpoint';
import {
  commitGeneration,
  float32NpyHeader,
  fsyncPath,
  generationFiles,
  STORE_FORMAT,
  STORE_FORMAT_VERSION,
  tempPath,
  writeTemp,
  type CollectionManifest,
  type IndexKind,
  type Quantization,
} from './collection-files';

export interface GenerationWriterOptions {
  readonly folder: string;
  readonly name: string;
  readonly dimension: number;
  /** Rows the generation will hold; row i gets id i. */
  readonly total: number;
  readonly generation: number;
  readonly vectorFileRows: number;
  readonly quantization: Quantization;
  /** The index the generation will carry, saved by the caller at `indexTempPath()`. */
  readonly index: IndexKind | null;
}

/**
 * Writes one generation of a collection as its rows arrive, without holding them: each vectors
 * part is a temp file (`.vectors.<gen>.<p>.npy.tmp`) filled in order, fsynced when full. `commit`
 * writes ids, payloads and the saved index, renames everything into place and replaces the
 * manifest; `abort` (or a crash: the next open drops every file the manifest does not name)
 * leaves the previous generation as it was.
 */
export class GenerationWriter {
  readonly files: CollectionManifest['files'];
  private written = 0;
  private part = -1;
  private handle: FileHandle | undefined;
  private position = 0;
  private readonly temps: string[] = [];

  constructor(private readonly o: GenerationWriterOptions) {
    this.files = generationFiles(o.generation, o.total, o.vectorFileRows, o.index);
  }

  get rowsWritten(): number {
    return this.written;
  }

  /** Where the index is saved before commit (usearch writes paths itself); renamed into place then. */
  indexTempPath(): string {
    if (this.files.index === null) throw new Error('this generation has no index');
    const path = tempPath(join(this.o.folder, this.files.index));
    if (!this.temps.includes(path)) this.temps.push(path);
    return path;
  }

  /** Appends whole rows ([n, dimension] row-major) in order. */
  async append(vectors: Float32Array): Promise<void> {
    const { dimension, total, vectorFileRows } = this.o;
    const rows = vectors.length / dimension;
    if (this.written + rows > total) {
      throw new RangeError(`the rows exceed the announced total of ${total}`);
    }
    const bytes = new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength);
    let done = 0;
    while (done < rows) {
      const row = this.written + done;
      const part = Math.floor(row / vectorFileRows);
      if (part !== this.part) await this.startPart(part);
      const partEnd = Math.min((part + 1) * vectorFileRows, total);
      const n = Math.min(rows - done, partEnd - row);
      await writeFully(
        this.handle!,
        bytes.subarray(done * dimension * 4, (done + n) * dimension * 4),
        this.position,
      );
      this.position += n * dimension * 4;
      done += n;
      if (row + n === partEnd) await this.endPart();
    }
    this.written += rows;
  }

  /** Writes the remaining files and commits; the rows written must equal `total`. */
  async commit(): Promise<CollectionManifest> {
    const { folder, name, dimension, total, generation, vectorFileRows, quantization } = this.o;
    if (this.written !== total) {
      throw new RangeError(`the rows ended after ${this.written} of the announced ${total}`);
    }
    if (total === 0) await this.startPart(0);
    await this.endPart();
    const ids = BigInt64Array.from({ length: total }, (_, i) => BigInt(i));
    const idsTemp = await writeTemp(
      join(folder, this.files.ids),
      encodeNpy({ dtype: 'int64', shape: [total], data: new Uint8Array(ids.buffer) }),
    );
    this.temps.push(idsTemp);
    const payloadsTemp = await writeTemp(join(folder, this.files.payloads), '{}');
    this.temps.push(payloadsTemp);
    const renames: [string, string][] = this.files.vectors.map((file) => [
      tempPath(join(folder, file)),
      file,
    ]);
    renames.push([idsTemp, this.files.ids], [payloadsTemp, this.files.payloads]);
    if (this.files.index !== null) {
      await fsyncPath(this.indexTempPath());
      renames.push([this.indexTempPath(), this.files.index]);
    }
    const manifest: CollectionManifest = {
      format: STORE_FORMAT,
      formatVersion: STORE_FORMAT_VERSION,
      name,
      dimension,
      count: total,
      quantization,
      generation,
      vectorFileRows,
      files: this.files,
    };
    await commitGeneration(folder, manifest, renames);
    this.temps.length = 0;
    return manifest;
  }

  /** Closes and removes everything written so far. Safe to call twice or after a failed commit. */
  async abort(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    await Promise.all(this.temps.map((path) => rm(path, { force: true })));
    this.temps.length = 0;
  }

  private async startPart(part: number): Promise<void> {
    await this.endPart();
    const { folder, dimension, total, vectorFileRows } = this.o;
    const rows = Math.min(vectorFileRows, total - part * vectorFileRows);
    const path = tempPath(join(folder, this.files.vectors[part]!));
    this.temps.push(path);
    this.handle = await open(path, 'w');
    const header = float32NpyHeader([rows, dimension]);
    await writeFully(this.handle, header, 0);
    this.position = header.length;
    this.part = part;
  }

  private async endPart(): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) return;
    this.handle = undefined;
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}
