import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/**
 * Field-by-field reading of SentencePiece's `tokenizer.model` with @bufbuild/protobuf's
 * BinaryReader, which does the wire-format decoding (tags, varints, fixed-width values, skipping).
 * What this class adds is what a schema-less parser of a downloaded file needs: the file may be
 * truncated or corrupt, and a silent misread would tokenize wrongly instead of failing. So every
 * error is a ProtobufDecodeError with an absolute byte offset (BinaryReader throws bare Errors with
 * no position), lengths are checked as 64-bit values (BinaryReader keeps the low 32 bits of a
 * length) and strings must be valid UTF-8. (Not code generated from sentencepiece_model.proto: that
 * would decode every training field too, and could not say where in the file a problem is.)
 */

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
  readonly wireType: WireType;
  readonly offset: number;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A cursor over one message's bytes. Nested messages get their own reader (see `readMessage`). */
export class ProtobufReader {
  private readonly reader: BinaryReader;

  /**
   * @param bytes the message's bytes (exactly the message: a sub-message is a subarray)
   * @param baseOffset where `bytes` starts in the whole file, so errors point at a real offset
   */
  constructor(
    private readonly bytes: Uint8Array,
    private readonly baseOffset = 0,
  ) {
    this.reader = new BinaryReader(bytes);
  }

  /** True once every byte of this message has been consumed. */
  get done(): boolean {
    return this.reader.pos >= this.reader.len;
  }

  /** Absolute offset of the next byte (for error messages). */
  get offset(): number {
    return this.baseOffset + this.reader.pos;
  }

  /** A field header; BinaryReader rejects field number 0, wire types 6 and 7 and tags over 32 bits. */
  readTag(): FieldTag {
    const offset = this.offset;
    const [fieldNumber, wireType] = this.decode(offset, 'tag', () => this.reader.tag());
    return { fieldNumber, wireType, offset };
  }

  /** An `int32`/`enum` field: protobuf sign-extends negatives to 64 bits, so keep the low 32. */
  readInt32(): number {
    return this.decode(this.offset, 'varint', () => this.reader.int32());
  }

  /** A `uint32`/`uint64` varint that must fit a JavaScript safe integer. */
  readUnsigned(): number {
    const offset = this.offset;
    const start = this.reader.pos;
    // Lengths are almost always under 2^28, i.e. at most 4 bytes, which uint32() reads exactly;
    // anything longer is read again as uint64 so no high bits are lost.
    const short = this.decode(offset, 'varint', () => this.reader.uint32());
    if (this.reader.pos - start < 5) return short;
    this.reader.pos = start;
    // BigInt() also accepts the decimal string BinaryReader returns where BigInt support is off.
    const value = BigInt(this.decode(offset, 'varint', () => this.reader.uint64()));
    if (value > MAX_SAFE) {
      throw new ProtobufDecodeError(`varint ${value} is too large`, offset);
    }
    return Number(value);
  }

  readBool(): boolean {
    return this.decode(this.offset, 'varint', () => this.reader.bool());
  }

  /** A `float` field (wire type 5, little-endian IEEE 754 single precision). */
  readFloat(): number {
    return this.decode(this.offset, 'float', () => this.reader.float());
  }

  /** The payload of a length-delimited field (a view, not a copy). */
  readBytes(): Uint8Array {
    const offset = this.offset;
    // Not BinaryReader.bytes(): it reads the length as uint32, so a corrupt length of 2^32 + n
    // would be taken for n instead of failing here.
    const length = this.readUnsigned();
    const start = this.reader.pos;
    const remaining = this.reader.len - start;
    if (length > remaining) {
      throw new ProtobufDecodeError(
        `length-delimited field claims ${length} bytes but only ${remaining} remain (truncated file?)`,
        offset,
      );
    }
    this.reader.pos += length;
    return this.bytes.subarray(start, start + length);
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
    return new ProtobufReader(payload, this.offset - payload.length);
  }

  /** Skips a field this reader does not interpret (newer SentencePiece versions add fields). */
  skip(tag: FieldTag): void {
    if (tag.wireType === WireType.LengthDelimited) {
      this.readBytes(); // with its length checked as above
      return;
    }
    const offset = this.offset;
    try {
      this.reader.skip(tag.wireType, tag.fieldNumber);
    } catch (error) {
      // A wire type that cannot be skipped (a stray group end) is the tag's fault: point at it.
      throw decodeError(error instanceof RangeError ? offset : tag.offset, `field ${tag.fieldNumber}`, error);
    }
  }

  /** Throws unless `tag` has the wire type the schema gives the field. */
  expect(tag: FieldTag, wireType: WireType, what: string): void {
    if (tag.wireType !== wireType) {
      throw new ProtobufDecodeError(
        `${what} (field ${tag.fieldNumber}) has wire type ${tag.wireType}, expected ${wireType}`,
        tag.offset,
      );
    }
  }

  /** Runs one BinaryReader read, turning what it throws into an error that says where. */
  private decode<T>(offset: number, what: string, read: () => T): T {
    try {
      return read();
    } catch (error) {
      throw decodeError(offset, what, error);
    }
  }
}

/** What BinaryReader threw while reading `what` at `offset`, as an error that says where. */
function decodeError(offset: number, what: string, error: unknown): ProtobufDecodeError {
  // BinaryReader reports reading past the end as a RangeError ("premature EOF", or DataView's).
  const detail =
    error instanceof RangeError
      ? `${what} runs past the end of the message (truncated file?)`
      : `malformed ${what}: ${error instanceof Error ? error.message : String(error)}`;
  return new ProtobufDecodeError(detail, offset);
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
