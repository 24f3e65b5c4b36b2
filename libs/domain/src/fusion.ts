/**
 * Fusion and the training-free visual cache (MODEL_SPEC §1.2–§1.4), pure math on float32 vectors.
 * Accumulation is in float64 and results are rounded once to float32: within 1e-6 relative of the
 * official float32 code, which is what the golden tolerances allow.
 */

/** Official cache defaults (MODEL_SPEC §1.3). */
export const CACHE_DEFAULTS = { size: 10, temperature: 20, weight: 0.5 } as const;

export function dot(a: ArrayLike<number>, b: ArrayLike<number>, bOffset = 0): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[bOffset + i]!;
  return s;
}

/** v / max(‖v‖₂, 1e-12), as torch.nn.functional.normalize. */
export function l2Normalize(v: ArrayLike<number>): Float32Array {
  const n = Math.max(Math.sqrt(dot(v, v)), 1e-12);
  return Float32Array.from({ length: v.length }, (_, i) => v[i]! / n);
}

/**
 * q = Σ_m w_m / (Σ_k w_k + 1e-6) · l2n(e_m), not re-normalised (MODEL_SPEC B2, B3).
 */
export function fuseEmbeddings(
  embeddings: readonly ArrayLike<number>[],
  weights: readonly number[],
): Float32Array {
  if (embeddings.length === 0 || embeddings.length !== weights.length) {
    throw new Error(
      `fusion needs one weight per embedding (got ${embeddings.length} embeddings, ${weights.length} weights)`,
    );
  }
  const d = embeddings[0]!.length;
  const total = weights.reduce((a, b) => a + b, 0) + 1e-6;
  const acc = new Float64Array(d);
  embeddings.forEach((e, m) => {
    if (e.length !== d) throw new Error(`embedding ${m} has ${e.length} values, expected ${d}`);
    const unit = l2Normalize(e);
    const w = weights[m]! / total;
    for (let i = 0; i < d; i++) acc[i]! += w * unit[i]!;
  });
  return Float32Array.from(acc);
}

export interface Neighbour {
  readonly id: number;
  readonly score: number;
}

/**
 * Exact top-k by inner product over `vectors` ([n, d] row-major), best first, lower id first on
 * equal scores — what faiss IndexFlatIP returns.
 */
export function topKInnerProduct(
  vectors: Float32Array,
  d: number,
  query: ArrayLike<number>,
  k: number,
): Neighbour[] {
  const n = Math.floor(vectors.length / d);
  const kk = Math.min(k, n);
  const best: Neighbour[] = [];
  for (let i = 0; i < n; i++) {
    const score = Math.fround(dot(query, vectors, i * d));
    if (best.length < kk) {
      best.push({ id: i, score });
      best.sort((a, b) => b.score - a.score || a.id - b.id);
    } else if (score > best[kk - 1]!.score) {
      best[kk - 1] = { id: i, score };
      best.sort((a, b) => b.score - a.score || a.id - b.id);
    }
  }
  return best;
}

export interface CacheBlendResult {
  readonly neighbours: Neighbour[];
  /** q′, the query that replaces q. */
  readonly blended: Float32Array;
}

/**
 * The visual cache of MODEL_SPEC §1.4 for one query: α = softmax(t·s) over the k best scores,
 * r = Σ α_j p_j, r̂ = r/‖r‖, u = (1−λ)q + λr̂, q′ = u/‖u‖ (q enters un-normalised, B2). Works per
 * row, so batches are correct (B4 fixed).
 */
export function cacheBlend(
  q: ArrayLike<number>,
  vectors: Float32Array,
  d: number,
  options: { size: number; temperature: number; weight: number },
): CacheBlendResult {
  const neighbours = topKInnerProduct(vectors, d, q, options.size);
  const blended = blendWithNeighbours(
    q,
    neighbours.map((nb) => ({ score: nb.score, vector: vectors.subarray(nb.id * d, (nb.id + 1) * d) })),
    options,
  );
  return { neighbours, blended };
}

/** One retrieved neighbour of the cache: its inner-product score and stored vector. */
export interface ScoredVector {
  readonly score: number;
  readonly vector: ArrayLike<number>;
}

/**
 * The blend step of the visual cache (MODEL_SPEC §1.4) given the k best neighbours, best first —
 * what the gateway runs on the retriever's hits. `cacheBlend` is this after an exact top-k, so
 * both paths give the same q′ for the same neighbours.
 */
export function blendWithNeighbours(
  q: ArrayLike<number>,
  neighbours: readonly ScoredVector[],
  options: { temperature: number; weight: number },
): Float32Array {
  const d = q.length;
  if (neighbours.length === 0) throw new Error('the cache blend needs at least one neighbour');
  const maxScaled = Math.max(...neighbours.map((n) => options.temperature * n.score));
  const expd = neighbours.map((n) => Math.exp(options.temperature * n.score - maxScaled));
  const z = expd.reduce((a, b) => a + b, 0);
  const r = new Float64Array(d);
  neighbours.forEach((nb, j) => {
    if (nb.vector.length !== d)
      throw new Error(`neighbour ${j} has ${nb.vector.length} values, expected ${d}`);
    const alpha = expd[j]! / z;
    for (let i = 0; i < d; i++) r[i]! += alpha * nb.vector[i]!;
  });
  const rNorm = Math.sqrt(dot(r, r));
  const u = new Float64Array(d);
  for (let i = 0; i < d; i++) u[i] = (1 - options.weight) * q[i]! + (options.weight * r[i]!) / rNorm;
  const uNorm = Math.sqrt(dot(u, u));
  return Float32Array.from(u, (x) => x / uNorm);
}
