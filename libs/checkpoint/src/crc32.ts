import { crc32 as zlibCrc32 } from 'node:zlib';

/**
 * CRC-32 (zip / zlib polynomial); `previous` continues a running checksum. Node's zlib computes it
 * natively (Node ≥ 20.15); only the zero-extension used for huge zero-filled entries is our own
 * ({@link crc32ZeroExtend}, used by the checkpoint writer).
 */
export function crc32(bytes: Uint8Array, previous = 0): number {
  return zlibCrc32(bytes, previous);
}

let zeroByteOperator: Uint32Array | undefined;

/** The GF(2) matrix (32 columns) that feeds one zero byte through the CRC-32 register. */
function zeroByteMatrix(): Uint32Array {
  if (zeroByteOperator === undefined) {
    zeroByteOperator = new Uint32Array(32);
    for (let j = 0; j < 32; j++) {
      // The register update c ↦ T[c & 0xff] ^ (c >>> 8) is linear, so its columns are the images
      // of the basis vectors; T[x] is the CRC register after one byte x from state 0.
      let t = (1 << j) & 0xff;
      for (let k = 0; k < 8; k++) t = t & 1 ? 0xedb88320 ^ (t >>> 1) : t >>> 1;
      zeroByteOperator[j] = (t ^ (((1 << j) >>> 0) >>> 8)) >>> 0;
    }
  }
  return zeroByteOperator;
}

function gf2Times(matrix: Uint32Array, vector: number): number {
  let sum = 0;
  for (let j = 0; vector !== 0; j++, vector >>>= 1) if (vector & 1) sum ^= matrix[j]!;
  return sum >>> 0;
}

function gf2Square(matrix: Uint32Array): Uint32Array {
  const out = new Uint32Array(32);
  for (let j = 0; j < 32; j++) out[j] = gf2Times(matrix, matrix[j]!);
  return out;
}

/** The CRC-32 of the bytes behind `previous` followed by `count` zero bytes, in O(log count). */
export function crc32ZeroExtend(previous: number, count: number): number {
  if (!Number.isSafeInteger(count) || count < 0) throw new Error(`invalid zero-run length ${count}`);
  let register = (previous ^ 0xffffffff) >>> 0;
  let power = zeroByteMatrix();
  for (let n = count; n > 0; n = Math.floor(n / 2)) {
    if (n % 2 === 1) register = gf2Times(power, register);
    if (n > 1) power = gf2Square(power);
  }
  return (register ^ 0xffffffff) >>> 0;
}
