import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { encodeFaissFlatHeader, type FaissFlatFourcc } from '@imagebind-llm/checkpoint';

/**
 * A faiss flat index in memory (IndexFlatIP `IxFI` / IndexFlatL2 `IxF2`, MODEL_SPEC §6.5), with the
 * header of @imagebind-llm/checkpoint's streamed writer (which large indexes should use).
 */

export type { FaissFlatFourcc };

/** The bytes of a flat index holding `vectors` (row-major `[n, d]`). */
export function encodeFaissFlatIndex(
  vectors: Float32Array,
  d: number,
  fourcc: FaissFlatFourcc = 'IxFI',
): Uint8Array {
  if (!Number.isSafeInteger(d) || d <= 0) throw new Error(`dimension d must be a positive integer, got ${d}`);
  if (vectors.length % d !== 0) {
    throw new Error(`${vectors.length} values are not a whole number of ${d}-dimensional vectors`);
  }
  const header = encodeFaissFlatHeader(d, vectors.length / d, fourcc);
  const out = new Uint8Array(header.length + vectors.byteLength);
  out.set(header);
  out.set(new Uint8Array(vectors.buffer, vectors.byteOffset, vectors.byteLength), header.length);
  return out;
}

/** Writes the index at `path` (under a temporary name, then renamed). */
export function writeFaissFlatIndex(
  path: string,
  vectors: Float32Array,
  d: number,
  fourcc: FaissFlatFourcc = 'IxFI',
): { readonly bytes: number; readonly ntotal: number } {
  const bytes = encodeFaissFlatIndex(vectors, d, fourcc);
  mkdirSync(dirname(path), { recursive: true });
  const partial = `${path}.partial`;
  writeFileSync(partial, bytes);
  renameSync(partial, path);
  return { bytes: bytes.length, ntotal: vectors.length / d };
}

/**
 * `count` random unit vectors of dimension `d` (row-major), uniform on the sphere: normalised
 * Gaussian draws from a seeded 32-bit generator, so a seed gives the same vectors everywhere.
 */
export function randomUnitVectors(count: number, d: number, seed: number): Float32Array {
  if (!Number.isSafeInteger(count) || count < 0) throw new Error(`count must be a non-negative integer`);
  if (!Number.isSafeInteger(d) || d <= 0) throw new Error(`d must be a positive integer`);
  const random = seededUniform(seed);
  const out = new Float32Array(count * d);
  const row = new Float64Array(d);
  for (let r = 0; r < count; r++) {
    let norm = 0;
    for (let i = 0; i < d; i += 2) {
      // Box–Muller: two independent standard normals from two uniforms in (0, 1].
      const radius = Math.sqrt(-2 * Math.log(random()));
      const angle = 2 * Math.PI * random();
      row[i] = radius * Math.cos(angle);
      if (i + 1 < d) row[i + 1] = radius * Math.sin(angle);
    }
    for (const v of row) norm += v * v;
    const scale = 1 / Math.sqrt(norm);
    for (let i = 0; i < d; i++) out[r * d + i] = row[i]! * scale;
  }
  return out;
}

/** Uniform draws in (0, 1] from splitmix32 over an integer seed. */
export function seededUniform(seed: number): () => number {
  let state = (Math.trunc(seed) ^ 0x5bd1e995) | 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let t = state ^ (state >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    t ^= t >>> 15;
    return ((t >>> 0) + 1) / 4294967296;
  };
}
