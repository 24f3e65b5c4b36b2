/**
 * A seeded generator in [0, 1): the same seed gives the same sequence on every run and machine
 * (IVF centroid initialisation, and test data a failing case can be replayed from).
 */
export function seededRandom(seed: number): () => number {
  // xorshift32: tiny, deterministic, good enough to spread vectors and pick sample rows.
  let state = seed >>> 0 || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}
