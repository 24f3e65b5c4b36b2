/** A growable little-endian byte buffer for headers and pickles. */
export class ByteBuilder {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  private size = 0;

  get length(): number {
    return this.size;
  }

  private reserve(n: number): void {
    if (this.size + n <= this.buffer.length) return;
    let capacity = this.buffer.length * 2;
    while (capacity < this.size + n) capacity *= 2;
    const next = new Uint8Array(capacity);
    next.set(this.buffer.subarray(0, this.size));
    this.buffer = next;
    this.view = new DataView(next.buffer);
  }

  byte(...values: number[]): this {
    this.reserve(values.length);
    for (const v of values) this.buffer[this.size++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.reserve(2);
    this.view.setUint16(this.size, v, true);
    this.size += 2;
    return this;
  }

  u32(v: number): this {
    this.reserve(4);
    this.view.setUint32(this.size, v >>> 0, true);
    this.size += 4;
    return this;
  }

  u64(v: number | bigint): this {
    this.reserve(8);
    this.view.setBigUint64(this.size, BigInt(v), true);
    this.size += 8;
    return this;
  }

  f64be(v: number): this {
    this.reserve(8);
    this.view.setFloat64(this.size, v, false);
    this.size += 8;
    return this;
  }

  bytes(data: Uint8Array): this {
    this.reserve(data.length);
    this.buffer.set(data, this.size);
    this.size += data.length;
    return this;
  }

  text(s: string): this {
    return this.bytes(utf8(s));
  }

  done(): Uint8Array {
    return this.buffer.slice(0, this.size);
  }
}

/** The UTF-8 bytes of `s` (zip entry names, pickle strings and small text records). */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** The bytes behind any typed array or DataView, without copying. */
export function asBytes(chunk: ArrayBufferView): Uint8Array {
  return chunk instanceof Uint8Array
    ? chunk
    : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}
