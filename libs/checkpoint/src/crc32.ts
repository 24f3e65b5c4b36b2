import { crc32 as zlibCrc32 } from 'node:zlib';

/**
 * CRC-32 (zip / zlib polynomial); `previous` continues a running checksum. Node's zlib computes it
 * natively (Node ≥ 20.15); only the zero-extension used for huge zero-filled entries is our own
 * (`crc32ZeroExtend` in the checkpoint writer).
 */
export function crc32(bytes: Uint8Array, previous = 0): number {
  return zlibCrc32(bytes, previous);
}
