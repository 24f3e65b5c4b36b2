/**
 * A flat faiss index as `faiss.write_index` lays it out (MODEL_SPEC §6.5): fourcc, d (i32), ntotal
 * (i64), two i64 dummies, is_trained (u8), metric_type (i32), then the float count (u64) and the
 * float32 rows. Enough to test import paths without Python.
 */
export function faissFlatIndexBytes(kind: 'IxFI' | 'IxF2', d: number, vectors: Float32Array): Uint8Array {
  const ntotal = vectors.length / d;
  const header = 4 + 4 + 8 + 8 + 8 + 1 + 4 + 8;
  const out = new Uint8Array(header + vectors.byteLength);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(kind), 0);
  view.setInt32(4, d, true);
  view.setBigInt64(8, BigInt(ntotal), true);
  view.setBigInt64(16, 1n << 20n, true);
  view.setBigInt64(24, 1n << 20n, true);
  view.setUint8(32, 1);
  view.setInt32(33, kind === 'IxFI' ? 0 : 1, true);
  view.setBigUint64(37, BigInt(vectors.length), true);
  vectors.forEach((v, i) => view.setFloat32(header + i * 4, v, true));
  return out;
}
