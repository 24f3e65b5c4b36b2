/* Typed arrays on SharedArrayBuffers: the rows the exact-scan workers (scan-pool.ts) read in place. */

/**
 * Float32 rows on a SharedArrayBuffer, so scan workers read them in place (an empty array needs
 * none). Collections keep their rows this way; a scan of an ordinary array runs on the caller.
 */
export function sharedFloat32(length: number): Float32Array {
  return length === 0 ? new Float32Array(0) : new Float32Array(new SharedArrayBuffer(length * 4));
}

/** Float64 ids on a SharedArrayBuffer (see sharedFloat32). */
export function sharedFloat64(length: number): Float64Array {
  return length === 0 ? new Float64Array(0) : new Float64Array(new SharedArrayBuffer(length * 8));
}

/** Bytes on a SharedArrayBuffer, for rows read from disk straight into shared memory. */
export function sharedBytes(length: number): Uint8Array {
  return length === 0 ? new Uint8Array(0) : new Uint8Array(new SharedArrayBuffer(length));
}
