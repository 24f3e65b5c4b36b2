import { Buffer } from 'node:buffer';

/**
 * Where a preprocessing step gets its float32 output tensor: `length` elements of a buffer of its
 * own (`byteOffset` 0, the buffer exactly the tensor's size, so it can move between threads), with
 * contents unspecified — every step that takes one writes every element.
 *
 * The pool's workers pass one that hands out buffers the consumer gave back
 * (`PreprocessPool.recycle`): a tensor that arrives on the serving thread is external memory
 * there, and a steady stream of new ones makes V8 run a major GC every 64 MB (a few dozen images);
 * a buffer that goes back to the worker leaves that count as it arrived.
 */
export type TensorAllocator = (length: number) => Float32Array;

/** A new buffer, not zero-filled (the caller writes every element). */
export const newTensor: TensorAllocator = (length) =>
  new Float32Array(Buffer.allocUnsafeSlow(length * Float32Array.BYTES_PER_ELEMENT).buffer, 0, length);

/**
 * Drops the oldest of `buffers` (the front) until at most `maxCount` remain and they hold at most
 * `maxBytes` together: the bound on every list of spare buffers kept for reuse.
 */
export function trimOldest(buffers: ArrayBuffer[], maxCount: number, maxBytes: number): void {
  let total = buffers.reduce((n, b) => n + b.byteLength, 0);
  while (buffers.length > maxCount || total > maxBytes) total -= buffers.shift()!.byteLength;
}

/**
 * Whether `tensor` owns its whole buffer, so that moving the buffer moves exactly this tensor (a
 * view into a larger buffer, a pooled Buffer slice or shared memory does not).
 */
export function ownsItsBuffer(tensor: Float32Array): boolean {
  return (
    tensor.buffer instanceof ArrayBuffer &&
    tensor.byteOffset === 0 &&
    tensor.byteLength > 0 &&
    tensor.byteLength === tensor.buffer.byteLength
  );
}

/**
 * One working buffer that a thread decoding one input at a time reuses from input to input (a
 * decoded image's pixels, held only until its resize): `take(n)` gives its first n bytes, valid
 * until the next `take`, growing it to the next power of two up to `maxBytes`; larger requests
 * get undefined (the caller makes a buffer of its own). A new buffer per image was freed in bulk
 * at the worker's next garbage collection, and glibc handed the pages back to the kernel, so
 * every later image faulted its pixels in afresh (a third of a small image's time on a VM).
 */
export class ScratchBuffer {
  private buffer: Uint8Array | undefined;

  constructor(readonly maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
      throw new RangeError(`a scratch buffer's maxBytes is a non-negative integer (got ${maxBytes})`);
    }
  }

  take(bytes: number): Uint8Array | undefined {
    if (bytes > this.maxBytes) return undefined;
    if (this.buffer === undefined || this.buffer.byteLength < bytes) {
      let size = 4096;
      while (size < bytes) size *= 2;
      this.buffer = new Uint8Array(Math.min(size, this.maxBytes));
    }
    return this.buffer.subarray(0, bytes);
  }

  /** Bytes held now. */
  get size(): number {
    return this.buffer?.byteLength ?? 0;
  }
}

/** What a thread that preprocesses one input at a time keeps from one to the next. */
export interface ReusableBuffersLimits {
  /** Recycled tensor buffers kept (default 2), the oldest dropped first... */
  readonly spareTensors?: number;
  /** ...and at most this many bytes of them (default 40 MiB: two 18 MB video tensors). */
  readonly spareTensorBytes?: number;
  /** The decoded-pixels scratch buffer's largest size (default 12 MiB: a 4-megapixel image). */
  readonly pixelBytes?: number;
}

/**
 * The buffers a pool worker reuses from task to task: output tensors written into the buffers
 * the consumer recycled (`keep`), when one has the size, and a decoded image's pixels in one
 * scratch buffer. Passed to `runPreprocessTask` as its `buffers`.
 */
export class ReusableBuffers {
  readonly pixels: ScratchBuffer;
  private readonly spares: ArrayBuffer[] = [];
  private readonly maxSpares: number;
  private readonly maxSpareBytes: number;

  constructor(limits: ReusableBuffersLimits = {}) {
    this.maxSpares = limits.spareTensors ?? 2;
    this.maxSpareBytes = limits.spareTensorBytes ?? 40 * 1024 * 1024;
    this.pixels = new ScratchBuffer(limits.pixelBytes ?? 12 * 1024 * 1024);
  }

  /** A recycled buffer of exactly the tensor's size when one is kept, else a new one. */
  readonly allocateTensor: TensorAllocator = (length) => {
    const bytes = length * Float32Array.BYTES_PER_ELEMENT;
    for (let i = this.spares.length - 1; i >= 0; i--) {
      if (this.spares[i]!.byteLength === bytes) return new Float32Array(this.spares.splice(i, 1)[0]!);
    }
    return newTensor(length);
  };

  /** Buffers of tensors nothing uses any more, for later outputs of their size. */
  keep(buffers: readonly ArrayBuffer[]): void {
    this.spares.push(...buffers.filter((b) => b.byteLength > 0));
    trimOldest(this.spares, this.maxSpares, this.maxSpareBytes);
  }

  /** Recycled buffers kept now. */
  get spareTensors(): number {
    return this.spares.length;
  }
}
