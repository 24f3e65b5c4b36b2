import { dot } from '@imagebind-llm/domain';

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
  const d = query.length;
  const kk = Math.min(k, count);
  // Sorted best-first in parallel arrays: a replacement shifts at most kk entries and, on real
  // data, replacements become rare after the first few thousand rows.
  const scores = new Float64Array(kk);
  const hitIds = new Float64Array(kk);
  const rows = new Float64Array(kk);
  let filled = 0;
  const consider = (row: number, score: number): void => {
    const id = ids[row]!;
    let pos: number;
    if (filled < kk) {
      pos = filled++;
    } else {
      const last = kk - 1;
      if (!(score > scores[last]! || (score === scores[last]! && id < hitIds[last]!))) return;
      pos = last;
    }
    while (pos > 0 && (score > scores[pos - 1]! || (score === scores[pos - 1]! && id < hitIds[pos - 1]!))) {
      scores[pos] = scores[pos - 1]!;
      hitIds[pos] = hitIds[pos - 1]!;
      rows[pos] = rows[pos - 1]!;
      pos--;
    }
    scores[pos] = score;
    hitIds[pos] = id;
    rows[pos] = row;
  };
  let row = 0;
  // Four rows per pass, each summed in its own accumulator in index order: every score is the
  // same float64 sum as `dot` (float32 × float32 products are exact in float64), but four
  // independent add chains run side by side instead of one waiting on each add.
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
    consider(row, Math.fround(s0));
    consider(row + 1, Math.fround(s1));
    consider(row + 2, Math.fround(s2));
    consider(row + 3, Math.fround(s3));
  }
  for (; row < count; row++) consider(row, innerProductScore(query, vectors, row));
  return Array.from({ length: filled }, (_, i) => ({ row: rows[i]!, id: hitIds[i]!, score: scores[i]! }));
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
