import { open, type FileHandle } from 'node:fs/promises';
import type { VectorPart } from './collection-files';
import type { RowHit } from './exact-top-k';
import { sharedBytes } from './shared-memory';

/** Positional reads in flight at once: enough to keep libuv's pool and the disk queue busy. */
const READ_CONCURRENCY = 16;

/**
 * The float32 rows of one committed generation, left in its `.npy` parts and read on demand with
 * positional reads (the disk-resident mode of the embedded store, README "Large collections").
 * The files are never written once committed, so reads need no locking; a newer generation
 * replaces this object and `retire()`s it, which closes the files once the reads that started
 * before are done.
 */
export class DiskRows {
  private active = 0;
  private retired = false;
  private closed: Promise<void> | undefined;

  private constructor(
    private readonly parts: readonly VectorPart[],
    private readonly handles: readonly FileHandle[],
    readonly dimension: number,
    readonly count: number,
    /** Rows per part (every part but the last is full). */
    private readonly partRows: number,
  ) {}

  static async open(parts: readonly VectorPart[], dimension: number, count: number): Promise<DiskRows> {
    const handles: FileHandle[] = [];
    try {
      for (const part of parts) handles.push(await open(part.path, 'r'));
    } catch (error) {
      await Promise.all(handles.map((h) => h.close()));
      throw error;
    }
    return new DiskRows(parts, handles, dimension, count, Math.max(1, parts[0]?.rows ?? 1));
  }

  /** Reads the given rows (any order, repeats allowed) into one packed [rows.length, d] array. */
  async readRows(rows: readonly number[]): Promise<Float32Array> {
    const d = this.dimension;
    const out = new Float32Array(rows.length * d);
    if (rows.length === 0) return out;
    // Sorted, so neighbouring rows become one read.
    const order = Array.from(rows.keys()).sort((a, b) => rows[a]! - rows[b]!);
    const runs: { part: number; first: number; n: number; targets: [offset: number, out: number][] }[] = [];
    for (const i of order) {
      const row = rows[i]!;
      if (!Number.isInteger(row) || row < 0 || row >= this.count) {
        throw new RangeError(`row ${row} is outside 0..${this.count - 1}`);
      }
      const part = Math.floor(row / this.partRows);
      const last = runs.at(-1);
      if (last !== undefined && last.part === part && row <= last.first + last.n) {
        if (row === last.first + last.n) last.n++;
        last.targets.push([row - last.first, i]);
      } else {
        runs.push({ part, first: row, n: 1, targets: [[0, i]] });
      }
    }
    await this.withFiles(() =>
      runConcurrently(runs, READ_CONCURRENCY, async (run) => {
        const bytes = await this.readRange(run.part, run.first, run.n);
        const floats = new Float32Array(bytes.buffer, bytes.byteOffset, run.n * d);
        for (const [offset, target] of run.targets) {
          out.set(floats.subarray(offset * d, (offset + 1) * d), target * d);
        }
      }),
    );
    return out;
  }

  /**
   * Every row in order, `chunkRows` at a time (chunks never straddle parts). The next chunk is
   * read while the caller works on the current one; each chunk is a fresh buffer.
   */
  async *chunks(chunkRows: number): AsyncGenerator<{ first: number; vectors: Float32Array }> {
    const plan: { part: number; first: number; n: number }[] = [];
    for (const [p, part] of this.parts.entries()) {
      for (let r = 0; r < part.rows; r += chunkRows) {
        plan.push({ part: p, first: part.first + r, n: Math.min(chunkRows, part.rows - r) });
      }
    }
    this.acquire();
    try {
      let next = plan.length > 0 ? this.readRange(plan[0]!.part, plan[0]!.first, plan[0]!.n) : undefined;
      for (let i = 0; i < plan.length; i++) {
        const bytes = await next!;
        // Started before yielding, so the disk works while the caller scores this chunk.
        next =
          i + 1 < plan.length
            ? this.readRange(plan[i + 1]!.part, plan[i + 1]!.first, plan[i + 1]!.n)
            : undefined;
        // A read that fails while the caller is away must not become an unhandled rejection.
        next?.catch(() => undefined);
        const first = plan[i]!.first;
        yield {
          first,
          vectors: new Float32Array(bytes.buffer, bytes.byteOffset, plan[i]!.n * this.dimension),
        };
      }
      if (next !== undefined) await next.catch(() => undefined);
    } finally {
      this.release();
    }
  }

  /** No new reads should start; the files close once the running ones finish. */
  async retire(): Promise<void> {
    this.retired = true;
    if (this.active === 0) await this.closeFiles();
  }

  private async readRange(part: number, firstRow: number, rows: number): Promise<Uint8Array> {
    const info = this.parts[part]!;
    const rowBytes = this.dimension * 4;
    // Shared, so the exact-scan workers read the chunk in place.
    const bytes = sharedBytes(rows * rowBytes);
    const position = info.dataStart + (firstRow - info.first) * rowBytes;
    let filled = 0;
    while (filled < bytes.length) {
      const { bytesRead } = await this.handles[part]!.read(
        bytes,
        filled,
        bytes.length - filled,
        position + filled,
      );
      if (bytesRead === 0) throw new Error(`${info.path} ends before row ${firstRow + rows - 1}`);
      filled += bytesRead;
    }
    return bytes;
  }

  private async withFiles<T>(fn: () => Promise<T>): Promise<T> {
    this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private acquire(): void {
    if (this.closed !== undefined) throw new Error('the collection was replaced; its old rows are closed');
    this.active++;
  }

  private release(): void {
    this.active--;
    if (this.retired && this.active === 0) void this.closeFiles();
  }

  private async closeFiles(): Promise<void> {
    this.closed ??= Promise.all(this.handles.map(async (h) => h.close().catch(() => undefined))).then(
      () => undefined,
    );
    await this.closed;
  }
}

async function runConcurrently<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Merges two lists already in faiss order (best score first, lower id first on equal scores) into
 * the best k, in that order. The top-k of a union is the merge of each part's top-k, so a scan
 * chunk by chunk returns exactly what one pass over all rows would.
 */
export function mergeTopK(a: readonly RowHit[], b: readonly RowHit[], k: number): RowHit[] {
  const out: RowHit[] = [];
  let i = 0;
  let j = 0;
  while (out.length < k && (i < a.length || j < b.length)) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && (x.score > y.score || (x.score === y.score && x.id < y.id)))) {
      out.push(x!);
      i++;
    } else {
      out.push(y);
      j++;
    }
  }
  return out;
}
