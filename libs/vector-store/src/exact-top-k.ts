import { dot } from '@imagebind-llm/domain';
import { acquireKernel, BLOCK_ROWS, PAIRS_PER_CALL, releaseKernel, type ScanKernel } from './exact-kernel';

/** One hit of a search before it is turned into a port result: the row locates the stored vector. */
export interface RowHit {
  readonly row: number;
  readonly id: number;
  readonly score: number;
}

/**
 * The score of a query against one stored row. It is `dot` from @imagebind-llm/domain rounded once
 * to float32 — the very expression topKInnerProduct uses — so a cache blend fed from the store sees
 * the same bits as the in-process blend (MODEL_SPEC §1.4).
 */
export function innerProductScore(query: Float32Array, vectors: Float32Array, row: number): number {
  return Math.fround(dot(query, vectors, row * query.length));
}

/**
 * The best k of one query so far, sorted best-first in parallel arrays (faiss IndexFlatIP order:
 * higher score first, lower id first on equal scores). A replacement shifts at most k entries and,
 * on real data, replacements become rare after the first few thousand rows.
 */
class Best {
  private scores: Float64Array;
  private ids: Float64Array;
  private rows: Float64Array;
  filled = 0;
  /** The worst kept score once full; -Infinity before, so every score is considered. */
  floor = Number.NEGATIVE_INFINITY;

  constructor(private readonly k: number) {
    const initial = Math.min(k, 64);
    this.scores = new Float64Array(initial);
    this.ids = new Float64Array(initial);
    this.rows = new Float64Array(initial);
  }

  consider(row: number, id: number, score: number): void {
    const { k } = this;
    let pos: number;
    if (this.filled < k) {
      if (this.filled === this.scores.length) this.grow();
      pos = this.filled++;
    } else {
      const last = k - 1;
      if (!(score > this.scores[last]! || (score === this.scores[last]! && id < this.ids[last]!))) return;
      pos = last;
    }
    const { scores, ids, rows } = this;
    while (pos > 0 && (score > scores[pos - 1]! || (score === scores[pos - 1]! && id < ids[pos - 1]!))) {
      scores[pos] = scores[pos - 1]!;
      ids[pos] = ids[pos - 1]!;
      rows[pos] = rows[pos - 1]!;
      pos--;
    }
    scores[pos] = score;
    ids[pos] = id;
    rows[pos] = row;
    if (this.filled === k) this.floor = scores[k - 1]!;
  }

  hits(): RowHit[] {
    return Array.from({ length: this.filled }, (_, i) => ({
      row: this.rows[i]!,
      id: this.ids[i]!,
      score: this.scores[i]!,
    }));
  }

  private grow(): void {
    const size = Math.min(this.k, this.scores.length * 2);
    const grow = (a: Float64Array): Float64Array => {
      const b = new Float64Array(size);
      b.set(a);
      return b;
    };
    this.scores = grow(this.scores);
    this.ids = grow(this.ids);
    this.rows = grow(this.rows);
  }
}

/**
 * A running exact top-k of several queries over rows offered in chunks, in any number of `offer`
 * calls: a caller that streams rows (from disk, say) offers each chunk as it arrives and reads the
 * merged answer at the end. The result is the same, bit for bit and in order, as one
 * `exactTopKBatch` over all the rows at once, however they were chunked.
 *
 *   const top = new TopK(queries, d, k);            // queries: [Q, d] row-major
 *   top.offer(chunk, chunkIds, rowsInChunk, firstRowOfChunk);
 *   ...
 *   const hits = top.result();                      // hits[q]: best-first RowHit[] of query q
 *
 * Scores are Math.fround(dot(query, row)) — see innerProductScore — so results never depend on
 * the chunking, the batch size or whether WebAssembly SIMD is available (the scan falls back to
 * scalar JS where it is not). Each block of 32 rows is copied once into the kernel's memory and
 * scanned there for every query (exact-kernel.ts), so a batch of Q queries reads the rows from
 * memory once, not Q times.
 *
 * `result()` ends the accumulator (its kernel goes back to a pool); offering after it throws.
 */
export class TopK {
  private readonly best: Best[];
  private kernel: ScanKernel | undefined;
  private queriesAt = 0;
  private done = false;

  constructor(
    private readonly queries: Float32Array,
    private readonly dimension: number,
    k: number,
  ) {
    if (!(Number.isInteger(dimension) && dimension > 0 && queries.length % dimension === 0)) {
      throw new RangeError(
        `queries (${queries.length} floats) is not a whole number of ${dimension}-vectors`,
      );
    }
    const count = queries.length / dimension;
    this.best = Array.from({ length: count }, () => new Best(Math.max(0, Math.floor(k))));
    if (count > 0 && k >= 1) this.kernel = acquireKernel(dimension);
    if (this.kernel !== undefined) this.loadQueries(this.kernel);
  }

  /**
   * Offers rows [0, rows) of `vectors` ([rows, d] row-major; longer arrays are fine) whose ids are
   * `ids[0..rows)`. Hits report row `rowOffset + r` for the chunk's row r, so a caller that
   * offers consecutive chunks of one store passes each chunk's first row.
   */
  offer(vectors: Float32Array, ids: ArrayLike<number>, rows: number, rowOffset = 0): void {
    if (this.done) throw new Error('TopK.offer after result()');
    const d = this.dimension;
    if (rows <= 0 || this.best.length === 0 || this.best[0]!.floor === Number.POSITIVE_INFINITY) return;
    if (vectors.length < rows * d) throw new RangeError(`vectors holds fewer than ${rows} rows of ${d}`);
    const kernel = this.kernel;
    if (kernel === undefined) {
      this.best.forEach((best, q) => {
        scalarScan(vectors, ids, rows, rowOffset, this.queries.subarray(q * d, (q + 1) * d), best);
      });
      return;
    }
    const Q = this.best.length;
    const pairs = Q >> 1;
    const scoresAt = kernel.scoresAt;
    for (let start = 0; start < rows; start += BLOCK_ROWS) {
      const m = Math.min(BLOCK_ROWS, rows - start);
      kernel.block.set(vectors.subarray(start * d, (start + m) * d));
      for (let p = 0; p < pairs; p += PAIRS_PER_CALL) {
        const group = Math.min(PAIRS_PER_CALL, pairs - p);
        kernel.pairs[group - 1]!(
          this.queriesAt + p * d * 16,
          scoresAt + 2 * p * BLOCK_ROWS * 4,
          (m + 1) & ~1,
        );
      }
      if (Q & 1) {
        kernel.single(this.queriesAt + pairs * d * 16, scoresAt + (Q - 1) * BLOCK_ROWS * 4, (m + 7) & ~7);
      }
      const scores = kernel.scores;
      for (let q = 0; q < Q; q++) {
        const best = this.best[q]!;
        const base = q * BLOCK_ROWS;
        for (let r = 0; r < m; r++) {
          const score = scores[base + r]!;
          // Below the kept worst: cannot enter (equal scores still can, by a lower id).
          if (score < best.floor) continue;
          best.consider(rowOffset + start + r, ids[start + r]!, score);
        }
      }
    }
  }

  /** The best min(k, rows offered) hits of each query, best first; ends the accumulator. */
  result(): RowHit[][] {
    if (!this.done) {
      this.done = true;
      if (this.kernel !== undefined) releaseKernel(this.kernel);
      this.kernel = undefined;
    }
    return this.best.map((b) => b.hits());
  }

  /** Queries as float64 into the kernel's memory: pairs (qa[i], qb[i]), then the odd one (q[i], q[i]). */
  private loadQueries(kernel: ScanKernel): void {
    const d = this.dimension;
    const Q = this.best.length;
    this.queriesAt = kernel.ensure(Q);
    const data = kernel.queryData;
    const base = this.queriesAt / 8;
    const pairs = Q >> 1;
    for (let p = 0; p < pairs; p++) {
      const a = 2 * p * d;
      const b = a + d;
      const o = base + p * d * 2;
      for (let i = 0; i < d; i++) {
        data[o + 2 * i] = this.queries[a + i]!;
        data[o + 2 * i + 1] = this.queries[b + i]!;
      }
    }
    if (Q & 1) {
      const a = (Q - 1) * d;
      const o = base + pairs * d * 2;
      for (let i = 0; i < d; i++) data[o + 2 * i] = data[o + 2 * i + 1] = this.queries[a + i]!;
    }
  }
}

/** The scalar scan (no WebAssembly SIMD): four rows per pass, each its own float64 chain in index order. */
function scalarScan(
  vectors: Float32Array,
  ids: ArrayLike<number>,
  count: number,
  rowOffset: number,
  query: Float32Array,
  best: Best,
): void {
  const d = query.length;
  const offer = (row: number, score: number): void => {
    if (score >= best.floor) best.consider(rowOffset + row, ids[row]!, score);
  };
  let row = 0;
  for (; row + 4 <= count; row += 4) {
    const o0 = row * d;
    const o1 = o0 + d;
    const o2 = o1 + d;
    const o3 = o2 + d;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < d; i++) {
      const x = query[i]!;
      s0 += x * vectors[o0 + i]!;
      s1 += x * vectors[o1 + i]!;
      s2 += x * vectors[o2 + i]!;
      s3 += x * vectors[o3 + i]!;
    }
    offer(row, Math.fround(s0));
    offer(row + 1, Math.fround(s1));
    offer(row + 2, Math.fround(s2));
    offer(row + 3, Math.fround(s3));
  }
  for (; row < count; row++) offer(row, innerProductScore(query, vectors, row));
}

/**
 * Exact top-k of several queries ([Q, dimension] row-major) over the first `count` rows of
 * `vectors`, whose ids are `ids[row]`: one pass over the rows serves every query. Returns one
 * best-first list of min(k, count) hits per query, each exactly `exactTopK` of that query.
 */
export function exactTopKBatch(
  vectors: Float32Array,
  ids: ArrayLike<number>,
  count: number,
  queries: Float32Array,
  dimension: number,
  k: number,
): RowHit[][] {
  const top = new TopK(queries, dimension, k);
  try {
    top.offer(vectors, ids, count);
  } catch (error) {
    top.result(); // hands the kernel back
    throw error;
  }
  return top.result();
}

/**
 * Exact top-k of one query over the first `count` rows of `vectors` ([count, d] row-major, d =
 * query.length), whose ids are `ids[row]`. Order is faiss IndexFlatIP's: best score first, lower
 * id first on equal scores. Rows may be in any order (deletes move rows), so ties are broken by id,
 * never by row. Returns min(k, count) hits.
 */
export function exactTopK(
  vectors: Float32Array,
  ids: ArrayLike<number>,
  count: number,
  query: Float32Array,
  k: number,
): RowHit[] {
  if (query.length === 0) return count > 0 && k >= 1 ? scalarTopK(vectors, ids, count, query, k) : [];
  return exactTopKBatch(vectors, ids, count, query, query.length, k)[0]!;
}

/**
 * The scan before the SIMD kernel: one query, scalar JS, four float64 chains per pass. Kept for
 * comparison (bench/vector-store/exact.mjs) and as the reference the kernel must match.
 */
export function scalarTopK(
  vectors: Float32Array,
  ids: ArrayLike<number>,
  count: number,
  query: Float32Array,
  k: number,
): RowHit[] {
  const best = new Best(Math.min(k, count));
  if (Math.min(k, count) >= 1) scalarScan(vectors, ids, count, 0, query, best);
  return best.hits();
}

/**
 * Re-scores approximate candidates (rows) with the exact float32 score and returns the best k in
 * faiss order. Used after an HNSW search so scores never depend on which path answered.
 */
export function rescoreRows(
  vectors: Float32Array,
  ids: ArrayLike<number>,
  candidateRows: readonly number[],
  query: Float32Array,
  k: number,
): RowHit[] {
  return candidateRows
    .map((row) => ({ row, id: ids[row]!, score: innerProductScore(query, vectors, row) }))
    .sort((a, b) => b.score - a.score || a.id - b.id)
    .slice(0, k);
}
