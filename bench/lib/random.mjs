// Seeded uniform numbers for the benches' synthetic data: the same seed gives the same data on
// every run and machine (xorshift32).

/** A generator of uniform numbers in [-0.5, 0.5). */
export function centredRandom(seed) {
  let state = seed >>> 0 || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000 - 0.5;
  };
}
