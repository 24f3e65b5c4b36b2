/** Cosine similarity between embeddings, for the playground's similarity matrix. */

function norm(v: readonly number[]): number {
  let sum = 0;
  for (const x of v) sum += x * x;
  return Math.sqrt(sum);
}

/**
 * cos(a, b) = a·b / (|a| |b|). ImageBind's vectors are already unit length, but dividing by the
 * norms keeps the figure right for any vector; a zero vector has similarity 0 with everything.
 */
export function cosineSimilarity(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) {
    throw new Error(`cannot compare vectors of ${a.length} and ${b.length} dimensions`);
  }
  const denominator = norm(a) * norm(b);
  if (denominator === 0 || !Number.isFinite(denominator)) return 0;
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  // Rounding can push a unit vector's self-similarity a hair past 1.
  return Math.max(-1, Math.min(1, dot / denominator));
}

/** The symmetric matrix of pairwise cosine similarities; the diagonal is 1 for non-zero vectors. */
export function similarityMatrix(vectors: readonly (readonly number[])[]): number[][] {
  const n = vectors.length;
  const matrix = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const s = cosineSimilarity(vectors[i]!, vectors[j]!);
      matrix[i]![j] = s;
      matrix[j]![i] = s;
    }
  }
  return matrix;
}
