import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { mergeTopK } from './disk-rows';
import { BLOCK_ROWS } from './exact-kernel';
import { exactTopKBatch, type RowHit } from './exact-top-k';
import { sharedFloat64 } from './shared-memory';

const isShared = (a: Float32Array | Float64Array): boolean => a.buffer instanceof SharedArrayBuffer;

/** One exact search: queries [Q, dimension] against rows [0, rows) of `vectors` with ids `ids`. */
export interface ScanJob {
  readonly vectors: Float32Array;
  readonly ids: Float64Array;
  readonly rows: number;
  readonly queries: Float32Array;
  readonly dimension: number;
  readonly k: number;
  /** Added to every hit's row (the first row of a chunk). Default 0. */
  readonly rowOffset?: number;
}

export interface ExactScanPoolOptions {
  /** Worker threads scanning side by side; default the CPU count (at most 8). 0 scans on the caller. */
  readonly threads?: number;
  /** Fewer rows than this per thread are scanned on the caller (a worker's round trip costs more). */
  readonly minRowsPerThread?: number;
  /** The compiled worker; default scan.worker.js next to this module (or the build's, from source). */
  readonly workerFile?: string;
}

/** Rows per thread below which a scan stays on the caller: 8,192 × 1,024 floats ≈ 2 ms of work. */
export const DEFAULT_MIN_ROWS_PER_THREAD = 8192;

/** What a worker is sent: the shared buffers and its row range. */
export interface ScanRequest {
  readonly id: number;
  readonly vectors: SharedArrayBuffer;
  readonly vectorsOffset: number;
  readonly ids: SharedArrayBuffer;
  readonly idsOffset: number;
  readonly first: number;
  readonly rows: number;
  readonly rowOffset: number;
  readonly queries: Float32Array;
  readonly dimension: number;
  readonly k: number;
}

/** A worker's answer: per query, best-first [row, id, score] triples flattened. */
export interface ScanReply {
  readonly id: number;
  readonly hits?: Float64Array[];
  readonly error?: string;
}

interface Pending {
  resolve(hits: RowHit[][]): void;
  reject(error: Error): void;
}

/** The compiled worker next to this module, or (vitest runs `src/`) the same library's build. */
function defaultWorkerFile(): string {
  const here = join(__dirname, 'scan.worker.js');
  if (existsSync(here)) return here;
  const built = join(__dirname, '..', 'dist', 'scan.worker.js');
  if (existsSync(built)) return built;
  throw new Error(`the exact-scan worker is not built (looked for ${here} and ${built}); run npm run build`);
}

class ScanWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  dead = false;

  constructor(file: string) {
    // No inherited flags: a test runner's `--conditions @imagebind-llm/source` would point the
    // compiled worker's imports at `.ts` sources.
    this.worker = new Worker(file, { execArgv: [] });
    this.worker.unref();
    this.worker.on('message', (reply: ScanReply) => this.settle(reply));
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', (code) => this.fail(new Error(`the exact-scan worker exited with code ${code}`)));
  }

  async scan(request: Omit<ScanRequest, 'id'>): Promise<RowHit[][]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id } satisfies ScanRequest);
    });
  }

  async terminate(): Promise<void> {
    this.dead = true;
    await this.worker.terminate();
  }

  private settle(reply: ScanReply): void {
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    this.pending.delete(reply.id);
    if (reply.error !== undefined || reply.hits === undefined) {
      pending.reject(new Error(`exact scan failed in its worker: ${reply.error ?? 'no hits'}`));
      return;
    }
    pending.resolve(reply.hits.map(unflatten));
  }

  private fail(error: Error): void {
    this.dead = true;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}

/** [row, id, score, row, id, score, …] → RowHit[] (the worker's reply format). */
export function flattenHits(hits: readonly RowHit[]): Float64Array {
  const out = new Float64Array(hits.length * 3);
  hits.forEach((hit, i) => {
    out[3 * i] = hit.row;
    out[3 * i + 1] = hit.id;
    out[3 * i + 2] = hit.score;
  });
  return out;
}

function unflatten(flat: Float64Array): RowHit[] {
  const out: RowHit[] = [];
  for (let i = 0; i + 2 < flat.length; i += 3)
    out.push({ row: flat[i]!, id: flat[i + 1]!, score: flat[i + 2]! });
  return out;
}

/**
 * Exact inner-product search on worker threads (issue #18 item 3). The rows are split into one
 * contiguous range per thread; every thread runs the batched WebAssembly scan (exact-top-k.ts)
 * over its range for all queries, and the per-range lists are merged in faiss order. The result
 * is the same, bit for bit and in order, as `exactTopKBatch` over all rows on one thread (the
 * top k of a union is the merge of each part's top k) — only faster, and off the event loop.
 *
 * Rows must sit on a SharedArrayBuffer (sharedFloat32) for workers to read them in place; other
 * arrays, small scans and `threads: 0` are scanned on the caller. Ids that are not shared are
 * copied (8 bytes a row against 4·d for the row itself).
 */
export class ExactScanPool {
  readonly threads: number;
  private readonly minRowsPerThread: number;
  private readonly workerFile: string | undefined;
  private workers: ScanWorker[] = [];
  private closed = false;

  constructor(options: ExactScanPoolOptions = {}) {
    this.threads = Math.max(0, Math.floor(options.threads ?? Math.min(8, availableParallelism())));
    this.minRowsPerThread = Math.max(BLOCK_ROWS, options.minRowsPerThread ?? DEFAULT_MIN_ROWS_PER_THREAD);
    this.workerFile = options.workerFile;
  }

  /** Threads a scan of `rows` rows uses: 0 means on the caller. */
  threadsFor(rows: number): number {
    const n = Math.min(this.threads, Math.floor(rows / this.minRowsPerThread));
    return n >= 1 && !this.closed ? n : 0;
  }

  async topK(job: ScanJob): Promise<RowHit[][]> {
    const { vectors, rows, queries, dimension, k } = job;
    const rowOffset = job.rowOffset ?? 0;
    const threads = isShared(vectors) ? this.threadsFor(rows) : 0;
    if (threads === 0 || queries.length === 0 || k < 1) {
      return exactTopKBatch(vectors, job.ids, rows, queries, dimension, k).map((list) =>
        rowOffset === 0 ? list : list.map((hit) => ({ ...hit, row: hit.row + rowOffset })),
      );
    }
    let ids = job.ids;
    if (!isShared(ids)) {
      const copy = sharedFloat64(rows);
      copy.set(ids.subarray(0, rows));
      ids = copy;
    }
    // Ranges in whole blocks, so every thread but the last scans full blocks.
    const per = Math.ceil(rows / threads / BLOCK_ROWS) * BLOCK_ROWS;
    const workers = this.ensureWorkers(threads);
    const parts = await Promise.all(
      workers.map((worker, t) => {
        const first = t * per;
        const n = Math.max(0, Math.min(per, rows - first));
        if (n === 0) return Promise.resolve<RowHit[][]>([]);
        return worker.scan({
          vectors: vectors.buffer as SharedArrayBuffer,
          vectorsOffset: vectors.byteOffset,
          ids: ids.buffer as SharedArrayBuffer,
          idsOffset: ids.byteOffset,
          first,
          rows: n,
          rowOffset,
          queries: queries.slice(),
          dimension,
          k,
        });
      }),
    );
    const count = queries.length / dimension;
    return Array.from({ length: count }, (_, q) =>
      parts.reduce<RowHit[]>(
        (merged, part) => (part.length === 0 ? merged : mergeTopK(merged, part[q]!, k)),
        [],
      ),
    );
  }

  /** Stops the workers; later scans run on the caller. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private ensureWorkers(n: number): ScanWorker[] {
    this.workers = this.workers.filter((w) => !w.dead);
    const file = this.workerFile ?? defaultWorkerFile();
    while (this.workers.length < n) this.workers.push(new ScanWorker(file));
    return this.workers.slice(0, n);
  }
}
