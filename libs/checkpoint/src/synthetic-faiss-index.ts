import { faissFlatIndexBytes, writeFaissFlatIndexStream, type FaissFlatFourcc } from './faiss-index.writer';

/**
 * A stand-in for the CC3M visual cache (`knn.index`, MODEL_SPEC §6.5) at any size: unit vectors
 * clustered like CLIP image features, row i = normalise(centroid[c(i)] + noise), with c(i) and the
 * noise drawn from (seed, i) alone. Any row can be regenerated without the file
 * ({@link syntheticFaissRow}), and query vectors near stored rows come from
 * {@link syntheticFaissQueries}, so a recall measurement needs no second copy of the data.
 * Integer PRNGs only (xorshift32 seeded by a 32-bit mix of seed and row): the same options give the
 * same bytes on every machine. One thread generates 250 MB/s to 1.3 GB/s (measured on a shared
 * 2-core VM, by load); end to end 190–230 MB/s for 1 GB there, the disk's pace beyond the page
 * cache (110 MB/s for 4.3 GB on that VM's contended disk).
 */
export interface SyntheticFaissOptions {
  /** Rows (3,250,000 for the full cache). */
  readonly count: number;
  /** Vector width (1024 for ImageBind). */
  readonly dimension: number;
  readonly seed: number;
  /** Random unit centroids the rows scatter around (4096 by default, at most `count`). */
  readonly clusters?: number;
  /**
   * ‖noise‖ / ‖centroid‖ before normalising (0.6 by default): a row's cosine to its centroid is
   * about 1/√(1 + noise²) ≈ 0.86 and two rows of one cluster about 0.74, where rows of different
   * clusters are near 0, as CLIP image features of one concept are against unrelated ones.
   */
  readonly noise?: number;
  readonly fourcc?: FaissFlatFourcc;
  /** Bytes of vectors generated per chunk (16 MiB by default; two such buffers alternate). */
  readonly chunkBytes?: number;
  /** Rows written so far and the total, after each chunk (chunks of at most 65,536 rows). */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface SyntheticFaissResult {
  readonly path: string;
  readonly bytes: number;
  readonly ntotal: number;
  readonly d: number;
  readonly clusters: number;
}

const DEFAULT_CLUSTERS = 4096;
const DEFAULT_NOISE = 0.6;
/** Bytes of vectors per chunk: two such buffers alternate while one is being written. */
const CHUNK_BYTES = 16 * 1024 * 1024;
const MAX_CHUNK_ROWS = 65536;

/** Salts that make the centroid, cluster and query streams independent of the row streams. */
const CENTROID_SALT = 0x3c6ef372;
const CLUSTER_SALT = 0x5851f42d;
const QUERY_SALT = 0x1b873593;

/** murmur3's 32-bit finaliser over two words: a well-spread nonzero xorshift state. */
function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h === 0 ? 0x6d2b79f5 : h;
}

/** A state for stream `index` (any safe integer) under `seed` and `salt`. */
function streamState(seed: number, salt: number, index: number): number {
  const hi = Math.floor(index / 4294967296);
  return mix(mix(seed | 0, salt), mix(index >>> 0, hi));
}

/** Standard deviation of a centred uniform 16-bit draw, (u − 32767.5) for u in 0..65535. */
const UNIFORM16_STD = Math.sqrt((65536 * 65536 - 1) / 12);

/**
 * out[at..at+d) = normalise(base[baseAt..] + scale·u), u centred uniform 16-bit noise, two per
 * xorshift32 draw (the halves of one 32-bit state: half the generator work of one draw per value,
 * which is what bounds the write speed). The norm is accumulated in double.
 */
function fillUnit(
  out: Float32Array,
  at: number,
  d: number,
  state: number,
  scale: number,
  base: Float32Array,
  baseAt: number,
): void {
  let s = state;
  let norm = 0;
  const even = d - (d % 2);
  for (let j = 0; j < even; j += 2) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const v0 = base[baseAt + j]! + scale * ((s & 0xffff) - 32767.5);
    const v1 = base[baseAt + j + 1]! + scale * ((s >>> 16) - 32767.5);
    out[at + j] = v0;
    out[at + j + 1] = v1;
    norm += v0 * v0 + v1 * v1;
  }
  if (even < d) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const v = base[baseAt + even]! + scale * ((s & 0xffff) - 32767.5);
    out[at + even] = v;
    norm += v * v;
  }
  const inv = 1 / Math.sqrt(norm);
  for (let j = 0; j < d; j++) out[at + j] = out[at + j]! * inv;
}

interface Resolved {
  readonly count: number;
  readonly d: number;
  readonly seed: number;
  readonly clusters: number;
  readonly noiseScale: number;
}

function resolve(options: SyntheticFaissOptions): Resolved {
  const { count, dimension: d, seed } = options;
  if (!Number.isSafeInteger(count) || count < 0)
    throw new Error(`count must be a non-negative integer, got ${count}`);
  if (!Number.isSafeInteger(d) || d <= 0) throw new Error(`dimension must be a positive integer, got ${d}`);
  if (!Number.isSafeInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  const clusters = Math.max(1, Math.min(options.clusters ?? DEFAULT_CLUSTERS, count));
  if (!Number.isSafeInteger(clusters))
    throw new Error(`clusters must be a positive integer, got ${options.clusters}`);
  const noise = options.noise ?? DEFAULT_NOISE;
  if (!(noise > 0 && Number.isFinite(noise))) throw new Error(`noise must be positive, got ${noise}`);
  // Centroids are unit vectors: per-coordinate noise std noise/√d gives ‖noise‖ ≈ noise.
  return { count, d, seed, clusters, noiseScale: noise / Math.sqrt(d) / UNIFORM16_STD };
}

/** Centroids: uniform noise around the origin, normalised (directions uniform enough on the sphere). */
function centroidInto(r: Resolved, c: number, out: Float32Array, at: number): void {
  fillUnit(out, at, r.d, streamState(r.seed, CENTROID_SALT, c), 1, new Float32Array(r.d), 0);
}

function clusterOf(r: Resolved, row: number): number {
  return (streamState(r.seed, CLUSTER_SALT, row) >>> 0) % r.clusters;
}

/** The size of the file {@link writeSyntheticFaissIndex} writes. */
export function syntheticFaissIndexBytes(
  options: Pick<SyntheticFaissOptions, 'count' | 'dimension'>,
): number {
  return faissFlatIndexBytes(options.dimension, options.count);
}

/**
 * Writes `count` clustered unit vectors as a faiss flat index (IndexFlatIP unless `fourcc` says
 * otherwise). Memory: the centroid table (clusters × d floats, 16 MB by default at d = 1024) and
 * two 16 MB chunk buffers, whatever the count; the disk write of one chunk overlaps the
 * generation of the next.
 */
export async function writeSyntheticFaissIndex(
  path: string,
  options: SyntheticFaissOptions,
): Promise<SyntheticFaissResult> {
  const r = resolve(options);
  const { d, count } = r;
  const centroids = new Float32Array(r.clusters * d);
  for (let c = 0; c < r.clusters; c++) centroidInto(r, c, centroids, c * d);
  const chunkRows = Math.max(
    1,
    Math.min(MAX_CHUNK_ROWS, Math.floor((options.chunkBytes ?? CHUNK_BYTES) / (4 * d)), count),
  );
  const buffers = [new Float32Array(chunkRows * d), new Float32Array(chunkRows * d)];
  const written = await writeFaissFlatIndexStream(
    path,
    { d, ntotal: count, overlap: true, ...(options.fourcc === undefined ? {} : { fourcc: options.fourcc }) },
    async (sink) => {
      for (let first = 0, k = 0; first < count; first += chunkRows, k++) {
        const n = Math.min(chunkRows, count - first);
        const chunk = buffers[k % 2]!.subarray(0, n * d);
        for (let i = 0; i < n; i++) {
          const row = first + i;
          fillUnit(
            chunk,
            i * d,
            d,
            streamState(r.seed, 0, row),
            r.noiseScale,
            centroids,
            clusterOf(r, row) * d,
          );
        }
        await sink(chunk);
        options.onProgress?.(first + n, count);
      }
    },
  );
  return { path, bytes: written.bytes, ntotal: count, d, clusters: r.clusters };
}

/**
 * Row `row` of the index {@link writeSyntheticFaissIndex} writes with these options, bit for bit,
 * regenerated without the file.
 */
export function syntheticFaissRow(
  row: number,
  options: Omit<SyntheticFaissOptions, 'onProgress' | 'fourcc' | 'chunkBytes'>,
  out = new Float32Array(options.dimension),
): Float32Array {
  const r = resolve(options);
  if (!Number.isSafeInteger(row) || row < 0 || row >= r.count) {
    throw new RangeError(`row ${row} is outside 0..${r.count - 1}`);
  }
  const centroid = new Float32Array(r.d);
  centroidInto(r, clusterOf(r, row), centroid, 0);
  fillUnit(out, 0, r.d, streamState(r.seed, 0, row), r.noiseScale, centroid, 0);
  return out;
}

export interface SyntheticFaissQueries {
  /** The stored row each query was made from. */
  readonly rows: readonly number[];
  /** Row-major [queries, d], unit norm. */
  readonly vectors: Float32Array;
}

/**
 * `queries` unit vectors near stored rows, for recall measurements: query q is
 * normalise(row[r_q] + perturbation · noise) for rows r_q drawn from `querySeed`. With the default
 * perturbation 0.1 a query's cosine to its row is ≈ 0.995, so its true nearest neighbour is
 * (almost always) that row, and the next ones are rows of its cluster.
 */
export function syntheticFaissQueries(
  options: Omit<SyntheticFaissOptions, 'onProgress' | 'fourcc' | 'chunkBytes'>,
  queries: number,
  querySeed = 0,
  perturbation = 0.1,
): SyntheticFaissQueries {
  const r = resolve(options);
  if (!Number.isSafeInteger(queries) || queries < 0)
    throw new Error(`queries must be a non-negative integer`);
  if (r.count === 0 && queries > 0) throw new Error('no rows to draw queries from');
  if (!(perturbation >= 0 && Number.isFinite(perturbation))) throw new Error(`perturbation must be ≥ 0`);
  const vectors = new Float32Array(queries * r.d);
  const rows: number[] = [];
  const row = new Float32Array(r.d);
  const scale = perturbation / Math.sqrt(r.d) / UNIFORM16_STD;
  for (let q = 0; q < queries; q++) {
    const state = streamState(querySeed, QUERY_SALT ^ r.seed, q);
    const index = Math.floor(((state >>> 0) / 4294967296) * r.count);
    rows.push(index);
    syntheticFaissRow(index, options, row);
    if (scale === 0) vectors.set(row, q * r.d);
    else fillUnit(vectors, q * r.d, r.d, mix(state, QUERY_SALT), scale, row, 0);
  }
  return { rows, vectors };
}
