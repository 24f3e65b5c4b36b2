/**
 * Just enough of the protobuf binary wire format (https://protobuf.dev/programming-guides/encoding/)
 * to read SentencePiece's `tokenizer.model`. Hand-written so the tokenizer needs no schema compiler
 * and no npm dependency; every read is bounds-checked because the file comes from a download that
 * may be truncated or corrupt, and a silent misread would tokenize wrongly instead of failing.
 */

/** The wire types a field header can carry (the low 3 bits of the tag). */
export const WireType = {
  Varint: 0,
  Fixed64: 1,
  LengthDelimited: 2,
  StartGroup: 3,
  EndGroup: 4,
  Fixed32: 5,
} as const;

/** Why a byte range is not a well-formed protobuf message; `offset` is absolute in the input. */
export class ProtobufDecodeError extends Error {
  override readonly name = 'ProtobufDecodeError';

  constructor(
    readonly detail: string,
    readonly offset: number,
  ) {
    super(`${detail} (at byte ${offset})`);
  }
}

/** One field header: the field number, its wire type, and where the header started. */
export interface FieldTag {
  readonly fieldNumber: number;
  readonly wireType: number;
  readonly offset: number;
}

const MAX_FIELD_NUMBER = 2 ** 29 - 1;
const MAX_VARINT_BYTES = 10;

/** A cursor over one message's bytes. Nested messages get their own reader (see `readMessage`). */
export class ProtobufReader {
  private pos: number;
  private readonly view: DataView;

  /**
   * @param bytes the message's bytes (exactly the message: a sub-message is a subarray)
   * @param baseOffset where `bytes` starts in the whole file, so errors point at a real offset
   */
  constructor(
    private readonly bytes: Uint8Array,
    private readonly baseOffset = 0,
  ) {
    this.pos = 0;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** True once every byte of this message has been consumed. */
  get done(): boolean {
    return this.pos >= this.bytes.length;
  }

  /** Absolute offset of the next byte (for error messages). */
  get offset(): number {
    return this.baseOffset + this.pos;
  }

  readTag(): FieldTag {
    const offset = this.offset;
    const [lo, hi] = this.readVarintParts();
    const wireType = lo & 7;
    // Field numbers are at most 29 bits: anything wider (or zero) is garbage, not a future field.
    const fieldNumber = hi === 0 ? lo >>> 3 : Number.POSITIVE_INFINITY;
    if (fieldNumber === 0 || fieldNumber > MAX_FIELD_NUMBER) {
      throw new ProtobufDecodeError(`invalid field number in tag`, offset);
    }
    return { fieldNumber, wireType, offset };
  }

  /** An `int32`/`enum` field: protobuf sign-extends negatives to 64 bits, so keep the low 32. */
  readInt32(): number {
    const [lo] = this.readVarintParts();
    return lo | 0;
  }

  /** A `uint32`/`uint64` varint that must fit a JavaScript safe integer. */
  readUnsigned(): number {
    const offset = this.offset;
    const [lo, hi] = this.readVarintParts();
    const value = hi * 2 ** 32 + lo;
    if (!Number.isSafeInteger(value)) {
      throw new ProtobufDecodeError(`varint ${value} is too large`, offset);
    }
    return value;
  }

  readBool(): boolean {
    const [lo, hi] = this.readVarintParts();
    return lo !== 0 || hi !== 0;
  }

  /** A `float` field (wire type 5, little-endian IEEE 754 single precision). */
  readFloat(): number {
    this.need(4, 'float');
    const value = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return value;
  }

  /** The payload of a length-delimited field (a view, not a copy). */
  readBytes(): Uint8Array {
    const offset = this.offset;
    const length = this.readUnsigned();
    if (length > this.bytes.length - this.pos) {
      throw new ProtobufDecodeError(
        `length-delimited field claims ${length} bytes but only ${this.bytes.length - this.pos} remain (truncated file?)`,
        offset,
      );
    }
    const payload = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return payload;
  }

  /** A `string` field. Protobuf requires UTF-8; invalid bytes mean corruption, so they throw. */
  readString(): string {
    const offset = this.offset;
    const payload = this.readBytes();
    try {
      return utf8Strict.decode(payload);
    } catch {
      throw new ProtobufDecodeError('string field is not valid UTF-8', offset);
    }
  }

  /** A nested message: a reader over its bytes that reports offsets within the whole input. */
  readMessage(): ProtobufReader {
    const payload = this.readBytes();
    return new ProtobufReader(payload, this.baseOffset + this.pos - payload.length);
  }

  /** Skips a field this reader does not interpret (newer SentencePiece versions add fields). */
  skip(tag: FieldTag): void {
    switch (tag.wireType) {
      case WireType.Varint:
        this.readVarintParts();
        return;
      case WireType.Fixed64:
        this.need(8, 'fixed64');
        this.pos += 8;
        return;
      case WireType.LengthDelimited:
        this.readBytes();
        return;
      case WireType.Fixed32:
        this.need(4, 'fixed32');
        this.pos += 4;
        return;
      default:
        // Groups (3, 4) are deprecated and never written by SentencePiece; 6 and 7 do not exist.
        throw new ProtobufDecodeError(
          `unsupported wire type ${tag.wireType} for field ${tag.fieldNumber}`,
          tag.offset,
        );
    }
  }

  /** Throws unless `tag` has the wire type the schema gives the field. */
  expect(tag: FieldTag, wireType: number, what: string): void {
    if (tag.wireType !== wireType) {
      throw new ProtobufDecodeError(
        `${what} (field ${tag.fieldNumber}) has wire type ${tag.wireType}, expected ${wireType}`,
        tag.offset,
      );
    }
  }

  /**
   * A base-128 varint as its low and high 32-bit halves (unsigned). Two numbers instead of a
   * bigint keep the hot path (32 000 pieces) cheap; negative int32 values occupy all 10 bytes.
   */
  private readVarintParts(): [number, number] {
    const start = this.offset;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= this.bytes.length) {
        throw new ProtobufDecodeError('varint runs past the end of the message (truncated file?)', start);
      }
      const byte = this.bytes[this.pos++] ?? 0;
      const bits = byte & 0x7f;
      if (i < 4) {
        lo |= bits << (7 * i);
      } else if (i === 4) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >> 4;
      } else {
        hi |= bits << (7 * i - 32);
      }
      if (byte < 0x80) {
        return [lo >>> 0, hi >>> 0];
      }
    }
    throw new ProtobufDecodeError(`varint longer than ${MAX_VARINT_BYTES} bytes`, start);
  }

  private need(count: number, what: string): void {
    if (this.bytes.length - this.pos < count) {
      throw new ProtobufDecodeError(
        `${what} runs past the end of the message (truncated file?)`,
        this.offset,
      );
    }
  }
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
