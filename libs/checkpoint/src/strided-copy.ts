/** Row-major strides (in elements) of a contiguous tensor of this shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) strides[i] = (strides[i + 1] ?? 1) * (shape[i + 1] ?? 1);
  return strides;
}

/** Torch calls a tensor contiguous when every dimension longer than 1 has the row-major stride. */
export function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  const expected = contiguousStrides(shape);
  return shape.every((size, i) => size <= 1 || strides[i] === expected[i]);
}

/**
 * Copies a strided view out of `src` into a new contiguous buffer. Elements move as whole 1/2/4-byte
 * words (8-byte items as two 4-byte words) so float bit patterns, NaN payloads included, survive.
 */
export function gatherStrided(
  src: Uint8Array,
  itemSize: number,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
): Uint8Array {
  const numel = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(numel * itemSize);
  if (numel === 0) return out;
  const word = Math.min(itemSize, 4);
  const wordsPerItem = itemSize / word;
  const aligned = src.byteOffset % word === 0 ? src : src.slice();
  const words = (b: Uint8Array): Uint8Array | Uint16Array | Uint32Array => {
    const n = Math.floor(b.byteLength / word);
    if (word === 4) return new Uint32Array(b.buffer, b.byteOffset, n);
    if (word === 2) return new Uint16Array(b.buffer, b.byteOffset, n);
    return b;
  };
  const from = words(aligned);
  const to = words(out);

  const ndim = shape.length;
  if (ndim === 0) {
    for (let w = 0; w < wordsPerItem; w++) to[w] = from[offset * wordsPerItem + w] ?? 0;
    return out;
  }
  const inner = shape[ndim - 1] ?? 1;
  const innerStride = (strides[ndim - 1] ?? 1) * wordsPerItem;
  const index = new Array<number>(ndim - 1).fill(0);
  let base = offset * wordsPerItem;
  let dst = 0;
  const rows = numel / inner;
  for (let row = 0; row < rows; row++) {
    let s = base;
    if (wordsPerItem === 1) {
      for (let j = 0; j < inner; j++, s += innerStride) to[dst++] = from[s] ?? 0;
    } else {
      for (let j = 0; j < inner; j++, s += innerStride) {
        for (let w = 0; w < wordsPerItem; w++) to[dst++] = from[s + w] ?? 0;
      }
    }
    // Odometer over the outer dimensions, keeping the source position incremental.
    for (let d = ndim - 2; d >= 0; d--) {
      const stride = (strides[d] ?? 0) * wordsPerItem;
      const i = (index[d] ?? 0) + 1;
      if (i < (shape[d] ?? 1)) {
        index[d] = i;
        base += stride;
        break;
      }
      index[d] = 0;
      base -= stride * ((shape[d] ?? 1) - 1);
    }
  }
  return out;
}
