import { open } from 'node:fs/promises';
import { exactSearch, MetricKind } from 'usearch';
import { seededRandom } from './seeded-random';

/*
 * IVF: an inverted file over spherical k-means lists, with int8 codes of every row grouped by list
 * (faiss's IVF-SQ8 layout). A search ranks the centroids exactly, scans the codes of the `probes`
 * best lists exactly, and hands the best candidates to the caller for float32 re-scoring.
 *
 * Why not only the HNSW graph: on 3.25 M rows spread over thousands of unrelated clusters, greedy
 * graph routing rarely reaches the query's cluster (recall@10 0.64, docs/operations.md §1.8). An
 * IVF's coarse step compares the query with every centroid, so it lands in the right lists
 * whatever their geometry; its cost is a scan of the probed lists, which usearch's SIMD kernels do
 * at ~30 G int8 multiply-adds per second on one core.
 *
 * usearch's `exactSearch` reads a typed array from the start of its ArrayBuffer, whatever its
 * byteOffset, so every array handed to it here owns its buffer (see `owned`).
 */

/** Build settings of an IVF index. */
export interface IvfBuildOptions {
  /** Number of lists (k-means centroids). Default: √rows, at most 65 536. */
  readonly lists?: number;
  /** Training sample per list (faiss warns below 39). Default 64. */
  readonly trainingRowsPerList?: number;
  /** k-means iterations. Default 10. */
  readonly iterations?: number;
  /** Threads of usearch's exact search while training and assigning. */
  readonly threads: number;
  /** Seed of the centroid initialisation (the build is deterministic for a given seed). */
  readonly seed?: number;
}

/** A long build step: k-means iterations, then rows assigned to their lists. */
export interface IvfBuildProgress {
  readonly phase: 'train' | 'assign';
  readonly done: number;
  readonly total: number;
}

export const IVF_DEFAULTS = {
  trainingRowsPerList: 64,
  iterations: 10,
  probes: 32,
  rescoreCandidates: 128,
} as const;

const MAGIC = 'IBLLMIVF';
const FORMAT_VERSION = 1;
const HEADER_BYTES = 32;
/** Rows per block of codes while building (256 KiB at d=1024): the unit of work between yields (~10–40 ms). */
const BLOCK_ROWS = 256;

/** √rows lists: the usual IVF balance between the centroid scan and the list scans. */
export function defaultIvfLists(rows: number): number {
  return Math.max(1, Math.min(65_536, rows, Math.round(Math.sqrt(rows))));
}

/** A copy when the array does not start its own buffer (usearch reads from the buffer's start). */
function owned<T extends Float32Array | Int8Array>(array: T): T {
  return (array.byteOffset === 0 ? array : array.slice()) as T;
}

/** Top `count` of `dataset` rows for each query by inner product: [keys, 1 − score]. */
function nearest(
  dataset: Float32Array | Int8Array,
  queries: Float32Array | Int8Array,
  dimension: number,
  count: number,
  threads: number,
): { keys: BigUint64Array; distances: Float32Array } {
  const found = exactSearch(owned(dataset), owned(queries), dimension, count, MetricKind.IP, threads);
  return { keys: found.keys, distances: found.distances };
}

function quantizeInto(source: Float32Array, scale: number, out: Int8Array, at: number): void {
  for (let j = 0; j < source.length; j++) {
    const v = Math.round(source[j]! * scale);
    out[at + j] = v > 127 ? 127 : v < -127 ? -127 : v;
  }
}

function maxAbs(values: Float32Array): number {
  let m = 0;
  for (let j = 0; j < values.length; j++) {
    const a = Math.abs(values[j]!);
    if (a > m) m = a;
  }
  return m;
}

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Collects rows in order (int8 codes plus a strided training sample), then trains the centroids,
 * assigns the rows and writes the index file. Memory: one byte per component of every row, plus
 * the sample.
 */
export class IvfBuilder {
  private readonly blocks: (Int8Array | undefined)[] = [];
  private rows = 0;
  private scale = 0;
  private readonly lists: number;
  private readonly sample: Int8Array;
  private readonly sampleRows: number;
  private sampled = 0;

  constructor(
    readonly dimension: number,
    readonly total: number,
    private readonly options: IvfBuildOptions,
  ) {
    if (!Number.isSafeInteger(total) || total < 1) throw new RangeError(`IVF needs rows, got ${total}`);
    this.lists = Math.min(total, options.lists ?? defaultIvfLists(total));
    const perList = options.trainingRowsPerList ?? IVF_DEFAULTS.trainingRowsPerList;
    this.sampleRows = Math.min(total, this.lists * perList);
    this.sample = new Int8Array(this.sampleRows * dimension);
  }

  /** Row `s` of the sample is row ⌊s · total / sampleRows⌋ of the collection. */
  private nextSampled(): number {
    return Math.floor((this.sampled * this.total) / this.sampleRows);
  }

  /** Appends rows ([n, dimension] float32) in collection order. */
  add(vectors: Float32Array): void {
    const d = this.dimension;
    const n = vectors.length / d;
    if (this.rows + n > this.total) throw new RangeError(`more than ${this.total} rows added`);
    // One scale for every code: the first chunk's largest component maps to 127 (later rows clip).
    if (this.scale === 0) this.scale = 127 / (maxAbs(vectors) || 1);
    for (let i = 0; i < n; i++) {
      const row = this.rows + i;
      const b = Math.floor(row / BLOCK_ROWS);
      let block = this.blocks[b];
      if (block === undefined) {
        block = new Int8Array(Math.min(BLOCK_ROWS, this.total - b * BLOCK_ROWS) * d);
        this.blocks[b] = block;
      }
      const at = (row - b * BLOCK_ROWS) * d;
      quantizeInto(vectors.subarray(i * d, (i + 1) * d), this.scale, block, at);
      if (this.sampled < this.sampleRows && row === this.nextSampled()) {
        this.sample.set(block.subarray(at, at + d), this.sampled * d);
        this.sampled++;
      }
    }
    this.rows += n;
  }

  /**
   * Trains spherical k-means on the sample, assigns every row to its nearest centroid and writes
   * the index file at `path` list by list straight from the codes held, which are then released (so
   * the codes are never held twice: read the file back with {@link IvfIndex.load}). Runs in steps
   * of 256 rows (10–40 ms each at d=1024), yielding to the event loop between them; `signal` is
   * checked at each step.
   */
  async writeIndex(
    path: string,
    onProgress?: (p: IvfBuildProgress) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    if (this.rows !== this.total) throw new RangeError(`IVF got ${this.rows} of ${this.total} rows`);
    const d = this.dimension;
    const threads = this.options.threads;
    const iterations = this.options.iterations ?? IVF_DEFAULTS.iterations;
    const lists = this.lists;
    const centroids = new Float32Array(lists * d);
    // Initial centroids: distinct sample rows in a seeded random order.
    const rand = seededRandom(this.options.seed ?? 1);
    const order = Uint32Array.from({ length: this.sampleRows }, (_, i) => i);
    for (let i = 0; i < lists; i++) {
      const j = i + Math.floor(rand() * (this.sampleRows - i));
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
      setUnit(centroids, i, this.sample.subarray(order[i]! * d, (order[i]! + 1) * d));
    }
    const sums = new Float64Array(lists * d);
    const counts = new Uint32Array(lists);
    const scratch = new Int8Array(BLOCK_ROWS * d);
    for (let it = 0; it < iterations; it++) {
      const codes = quantizeCentroids(centroids);
      sums.fill(0);
      counts.fill(0);
      for (let first = 0; first < this.sampleRows; first += BLOCK_ROWS) {
        signal?.throwIfAborted();
        const n = Math.min(BLOCK_ROWS, this.sampleRows - first);
        scratch.set(this.sample.subarray(first * d, (first + n) * d));
        const { keys } = nearest(codes, scratch.subarray(0, n * d), d, 1, threads);
        for (let i = 0; i < n; i++) {
          const list = Number(keys[i]);
          counts[list]!++;
          const at = (first + i) * d;
          const to = list * d;
          for (let j = 0; j < d; j++) sums[to + j]! += this.sample[at + j]!;
        }
        await yieldToLoop();
      }
      for (let list = 0; list < lists; list++) {
        // An empty list takes a random sample row, so no centroid is wasted.
        if (counts[list] === 0) {
          const s = Math.floor(rand() * this.sampleRows);
          setUnit(centroids, list, this.sample.subarray(s * d, (s + 1) * d));
        } else {
          setUnit(centroids, list, sums.subarray(list * d, (list + 1) * d));
        }
      }
      onProgress?.({ phase: 'train', done: it + 1, total: iterations });
    }
    // Every row to its nearest centroid, block by block.
    const codes = quantizeCentroids(centroids);
    const assigned = new Uint32Array(this.total);
    const sizes = new Uint32Array(lists);
    for (let b = 0; b < this.blocks.length; b++) {
      signal?.throwIfAborted();
      const block = this.blocks[b]!;
      const { keys } = nearest(codes, block, d, 1, threads);
      for (let i = 0; i < keys.length; i++) {
        const list = Number(keys[i]);
        assigned[b * BLOCK_ROWS + i] = list;
        sizes[list]!++;
      }
      onProgress?.({ phase: 'assign', done: Math.min(this.total, (b + 1) * BLOCK_ROWS), total: this.total });
      await yieldToLoop();
    }
    // Rows by list (counting sort), then each list's codes gathered from the blocks and written.
    const starts = new Uint32Array(lists + 1);
    for (let list = 0; list < lists; list++) starts[list + 1] = starts[list]! + sizes[list]!;
    const rowsByList = new Uint32Array(this.total);
    const filled = starts.slice(0, lists);
    for (let row = 0; row < this.total; row++) rowsByList[filled[assigned[row]!]!++] = row;
    const file = await open(path, 'w');
    try {
      await file.write(encodeHeader(d, lists, this.total, this.scale));
      await file.write(bytesOf(centroids));
      await file.write(bytesOf(sizes));
      await file.write(bytesOf(rowsByList));
      const gathered = new Int8Array(Math.max(...sizes) * d);
      for (let list = 0; list < lists; list++) {
        signal?.throwIfAborted();
        const n = sizes[list]!;
        for (let i = 0; i < n; i++) {
          const row = rowsByList[starts[list]! + i]!;
          const block = this.blocks[Math.floor(row / BLOCK_ROWS)]!;
          const at = (row % BLOCK_ROWS) * d;
          gathered.set(block.subarray(at, at + d), i * d);
        }
        if (n > 0) await file.write(bytesOf(gathered.subarray(0, n * d)));
      }
      await file.sync();
    } finally {
      await file.close();
    }
    this.blocks.length = 0;
  }
}

/** Bytes of an index file: header, centroids, list sizes, rows by list, codes by list. */
export function ivfFileBytes(dimension: number, lists: number, rows: number): number {
  return HEADER_BYTES + lists * dimension * 4 + lists * 4 + rows * 4 + rows * dimension;
}

function encodeHeader(dimension: number, lists: number, rows: number, scale: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.write(MAGIC, 0, 'latin1');
  header.writeUInt32LE(FORMAT_VERSION, 8);
  header.writeUInt32LE(dimension, 12);
  header.writeUInt32LE(lists, 16);
  header.writeUInt32LE(rows, 20);
  header.writeDoubleLE(scale, 24);
  return header;
}

/** Writes `values` scaled to unit length as centroid `list`. */
function setUnit(centroids: Float32Array, list: number, values: ArrayLike<number>): void {
  const d = values.length;
  let norm = 0;
  for (let j = 0; j < d; j++) norm += values[j]! * values[j]!;
  const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let j = 0; j < d; j++) centroids[list * d + j] = values[j]! * inv;
}

function quantizeCentroids(centroids: Float32Array): Int8Array {
  const codes = new Int8Array(centroids.length);
  quantizeInto(centroids, 127 / (maxAbs(centroids) || 1), codes, 0);
  return codes;
}

/** An IVF index over rows 0..size-1 of a collection (see the file comment). */
export class IvfIndex {
  readonly size: number;

  constructor(
    readonly dimension: number,
    /** float → int8 factor of every code (components beyond 127 / scale clip). */
    readonly scale: number,
    /** [lists, dimension], unit length. */
    readonly centroids: Float32Array,
    readonly listRows: readonly Uint32Array[],
    /** Per list: its rows' int8 codes, [rows, dimension], each array owning its buffer. */
    readonly listCodes: readonly Int8Array[],
  ) {
    this.size = listRows.reduce((sum, rows) => sum + rows.length, 0);
  }

  get lists(): number {
    return this.listRows.length;
  }

  /**
   * The rows of the `candidates` best int8 scores among the `probes` lists whose centroids score
   * best for `query`, best first. One synchronous call: about 0.06 ms per 1,800-row list at d=1024.
   */
  search(query: Float32Array, probes: number, candidates: number): number[] {
    const d = this.dimension;
    const q = owned(query);
    const coarse = nearest(this.centroids, q, d, Math.min(probes, this.lists), 1);
    const code = new Int8Array(d);
    quantizeInto(q, this.scale, code, 0);
    const distances: number[] = [];
    const rows: number[] = [];
    for (const key of coarse.keys) {
      const list = Number(key);
      const listRows = this.listRows[list]!;
      if (listRows.length === 0) continue;
      const found = nearest(this.listCodes[list]!, code, d, Math.min(candidates, listRows.length), 1);
      for (let i = 0; i < found.keys.length; i++) {
        distances.push(found.distances[i]!);
        rows.push(listRows[Number(found.keys[i])]!);
      }
    }
    const order = Array.from(rows.keys()).sort((a, b) => distances[a]! - distances[b]!);
    return order.slice(0, candidates).map((i) => rows[i]!);
  }

  /** Reads a saved index; throws when the file is not one, is cut short, or has another shape. */
  static async load(path: string, expected: { dimension: number; size: number }): Promise<IvfIndex> {
    const file = await open(path, 'r');
    try {
      const { size: fileBytes } = await file.stat();
      const header = Buffer.alloc(HEADER_BYTES);
      await readFully(file, header, 0);
      const dimension = header.readUInt32LE(12);
      const lists = header.readUInt32LE(16);
      const size = header.readUInt32LE(20);
      const scale = header.readDoubleLE(24);
      if (header.toString('latin1', 0, 8) !== MAGIC || header.readUInt32LE(8) !== FORMAT_VERSION) {
        throw new Error(`${path} is not an IVF index of format ${FORMAT_VERSION}`);
      }
      if (dimension !== expected.dimension || size !== expected.size || lists < 1 || !(scale > 0)) {
        throw new Error(
          `${path} indexes ${size} rows of dimension ${dimension}, expected ${expected.size} of ${expected.dimension}`,
        );
      }
      const expectedBytes = ivfFileBytes(dimension, lists, size);
      if (fileBytes !== expectedBytes)
        throw new Error(`${path} has ${fileBytes} bytes, expected ${expectedBytes}`);
      let at = HEADER_BYTES;
      const centroids = new Float32Array(lists * dimension);
      at = await readFully(file, bytesOf(centroids), at);
      const sizes = new Uint32Array(lists);
      at = await readFully(file, bytesOf(sizes), at);
      if (sizes.reduce((sum, n) => sum + n, 0) !== size) throw new Error(`${path}: list sizes do not add up`);
      const listRows: Uint32Array[] = [];
      for (const n of sizes) {
        const rows = new Uint32Array(n);
        at = await readFully(file, bytesOf(rows), at);
        if (rows.some((row) => row >= size)) throw new Error(`${path}: a row number is out of range`);
        listRows.push(rows);
      }
      const listCodes: Int8Array[] = [];
      for (const n of sizes) {
        const codes = new Int8Array(n * dimension);
        at = await readFully(file, bytesOf(codes), at);
        listCodes.push(codes);
      }
      return new IvfIndex(dimension, scale, centroids, listRows, listCodes);
    } finally {
      await file.close();
    }
  }
}

function bytesOf(array: Float32Array | Uint32Array | Int8Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** Reads `into.length` bytes at `position`; returns the position after them. */
async function readFully(
  file: Awaited<ReturnType<typeof open>>,
  into: Uint8Array,
  position: number,
): Promise<number> {
  let done = 0;
  while (done < into.length) {
    // At most 1 GiB per read: Node refuses larger positional reads.
    const want = Math.min(into.length - done, 1 << 30);
    const { bytesRead } = await file.read(into, done, want, position + done);
    if (bytesRead === 0) throw new Error('unexpected end of file');
    done += bytesRead;
  }
  return position + done;
}
