import { open, type FileHandle } from 'node:fs/promises';
import { asBytes, ByteBuilder, utf8 } from './byte-builder';
import { crc32, crc32ZeroExtend } from './crc32';
import type { TensorByteSink } from './torch-value';

/**
 * The zip container of a torch checkpoint, written front to back: STORED entries with data
 * descriptors, ZIP64 records only where needed (or everywhere, for tests), data aligned to 64 bytes.
 */

const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
/** torch's kFieldAlignment: storages start at multiples of 64 so readers can map them in place. */
const DATA_ALIGNMENT = 64;
/** Bit 3: sizes and CRC follow the data (torch's layout); bit 11: names are UTF-8. */
const FLAGS = 0x0808;
/** 1980-01-01, the earliest DOS date (torch writes 0, which is not a valid date). */
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
/** Writes smaller than this are gathered into one buffer; larger ones go straight to the file. */
const STAGING_BYTES = 1 << 20;
const MAX_IO = 1 << 30;

interface CentralRecord {
  readonly name: Uint8Array;
  readonly offset: number;
  readonly size: number;
  readonly crc: number;
  readonly zip64: boolean;
}

/**
 * The size of the archive {@link ZipStreamWriter} writes for these entries, record by record the
 * same layout: local header (+ ZIP64 field) padded so the data starts at a multiple of 64, the data,
 * its descriptor; then the central directory with only the saturated ZIP64 fields, the ZIP64 end
 * records when needed, and the end record.
 */
export function storedZipSize(
  entries: readonly { name: string; size: number }[],
  forceZip64: boolean,
): number {
  let position = 0;
  let central = 0;
  for (const { name, size } of entries) {
    const nameLength = utf8(name).length;
    const offset = position;
    const zip64 = forceZip64 || size >= U32_MAX || offset >= U32_MAX;
    const headerEnd = offset + 30 + nameLength + (zip64 ? 20 : 0) + 4;
    const pad = (DATA_ALIGNMENT - (headerEnd % DATA_ALIGNMENT)) % DATA_ALIGNMENT;
    position = headerEnd + pad + size + 8 + (zip64 ? 16 : 8);
    const extra = (forceZip64 || size >= U32_MAX ? 16 : 0) + (forceZip64 || offset >= U32_MAX ? 8 : 0);
    central += 46 + nameLength + (extra > 0 ? 4 + extra : 0);
  }
  const zip64End = forceZip64 || entries.length >= U16_MAX || central >= U32_MAX || position >= U32_MAX;
  return position + central + (zip64End ? 56 + 20 : 0) + 22;
}

/**
 * Appends the ZIP64 end of central directory record (version 4.5, one disk) and its locator, which
 * points back at it from `recordOffset`, the position where the record starts (APPNOTE 4.3.14-15).
 */
export function zip64EndRecords(
  out: ByteBuilder,
  entries: number,
  cdSize: number,
  cdOffset: number,
  recordOffset: number,
): ByteBuilder {
  return out
    .u32(0x06064b50)
    .u64(44)
    .u16(45)
    .u16(45)
    .u32(0)
    .u32(0)
    .u64(entries)
    .u64(entries)
    .u64(cdSize)
    .u64(cdOffset)
    .u32(0x07064b50)
    .u32(0)
    .u64(recordOffset)
    .u32(1);
}

/** A zip archive written front to back with positioned writes (holes for zero runs). */
export class ZipStreamWriter {
  private readonly central: CentralRecord[] = [];
  private readonly staging = new Uint8Array(STAGING_BYTES);
  private staged = 0;
  /** File offset where the staged bytes go. */
  private flushedTo = 0;
  private closed = false;

  private constructor(
    private readonly handle: FileHandle,
    private readonly forceZip64: boolean,
  ) {}

  static async create(path: string, forceZip64: boolean): Promise<ZipStreamWriter> {
    return new ZipStreamWriter(await open(path, 'w'), forceZip64);
  }

  private get position(): number {
    return this.flushedTo + this.staged;
  }

  private async flush(): Promise<void> {
    if (this.staged === 0) return;
    await this.writeAt(this.staging.subarray(0, this.staged), this.flushedTo);
    this.flushedTo += this.staged;
    this.staged = 0;
  }

  private async writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done, position + done);
      done += bytesWritten;
    }
  }

  private async append(bytes: Uint8Array): Promise<void> {
    if (bytes.length >= this.staging.length / 4) {
      await this.flush();
      await this.writeAt(bytes, this.flushedTo);
      this.flushedTo += bytes.length;
    } else {
      if (bytes.length > this.staging.length - this.staged) await this.flush();
      this.staging.set(bytes, this.staged);
      this.staged += bytes.length;
    }
  }

  private async skip(count: number): Promise<void> {
    await this.flush();
    this.flushedTo += count;
  }

  async addEntry(name: string, data: Uint8Array): Promise<void> {
    await this.addStreamedEntry(name, data.length, async (sink) => sink.write(data));
  }

  /** One STORED entry of `size` bytes, produced by `produce`; fails unless exactly `size` come. */
  async addStreamedEntry(
    name: string,
    size: number,
    produce: (sink: TensorByteSink) => Promise<void>,
  ): Promise<void> {
    const nameBytes = utf8(name);
    const offset = this.position;
    const zip64 = this.forceZip64 || size >= U32_MAX || offset >= U32_MAX;
    // Local header: CRC and sizes are left zero (flag bit 3); a ZIP64 entry says so with 0xffffffff
    // sizes and an (empty) ZIP64 field, and its data descriptor carries 8-byte sizes.
    const zip64Field = zip64 ? 20 : 0;
    const headerEnd = offset + 30 + nameBytes.length + zip64Field + 4;
    const pad = (DATA_ALIGNMENT - (headerEnd % DATA_ALIGNMENT)) % DATA_ALIGNMENT;
    const header = new ByteBuilder()
      .u32(0x04034b50)
      .u16(zip64 ? 45 : 20)
      .u16(FLAGS)
      .u16(0)
      .u16(0)
      .u16(DOS_DATE)
      .u32(0)
      .u32(zip64 ? U32_MAX : 0)
      .u32(zip64 ? U32_MAX : 0)
      .u16(nameBytes.length)
      .u16(zip64Field + 4 + pad)
      .bytes(nameBytes);
    if (zip64) header.u16(0x0001).u16(16).u64(0).u64(0);
    // torch's padding field: id "FB", filled with "Z".
    header.u16(0x4246).u16(pad).bytes(new Uint8Array(pad).fill(0x5a));
    await this.append(header.done());

    let crc = 0;
    let written = 0;
    const overflow = (more: number): void => {
      if (written + more > size) {
        throw new Error(`${name}: the source produced more than the ${size} bytes its dtype and shape need`);
      }
    };
    const sink: TensorByteSink = {
      write: async (chunk) => {
        const bytes = asBytes(chunk);
        overflow(bytes.length);
        // fs.write and zlib take at most 2 GiB per call.
        for (let at = 0; at < bytes.length; at += MAX_IO) {
          const piece = bytes.subarray(at, Math.min(bytes.length, at + MAX_IO));
          crc = crc32(piece, crc);
          written += piece.length;
          await this.append(piece);
        }
      },
      zeros: async (count) => {
        if (!Number.isSafeInteger(count) || count < 0) throw new Error(`${name}: invalid zero run ${count}`);
        overflow(count);
        crc = crc32ZeroExtend(crc, count);
        written += count;
        await this.skip(count);
      },
    };
    await produce(sink);
    if (written !== size) {
      throw new Error(`${name}: the source produced ${written} bytes; its dtype and shape need ${size}`);
    }
    const descriptor = new ByteBuilder().u32(0x08074b50).u32(crc);
    if (zip64) descriptor.u64(size).u64(size);
    else descriptor.u32(size).u32(size);
    await this.append(descriptor.done());
    this.central.push({ name: nameBytes, offset, size, crc, zip64 });
  }

  /** Writes the central directory and end records, closes the file and returns its size. */
  async finish(): Promise<number> {
    const cdOffset = this.position;
    const cd = new ByteBuilder();
    for (const e of this.central) {
      const bigSize = this.forceZip64 || e.size >= U32_MAX;
      const bigOffset = this.forceZip64 || e.offset >= U32_MAX;
      const extra = new ByteBuilder();
      // Only the saturated fields appear, in this order (APPNOTE 4.5.3).
      if (bigSize) extra.u64(e.size).u64(e.size);
      if (bigOffset) extra.u64(e.offset);
      const extraField =
        extra.length > 0 ? new ByteBuilder().u16(0x0001).u16(extra.length).bytes(extra.done()) : extra;
      cd.u32(0x02014b50)
        .u16(e.zip64 ? 45 : 20)
        .u16(e.zip64 ? 45 : 20)
        .u16(FLAGS)
        .u16(0)
        .u16(0)
        .u16(DOS_DATE)
        .u32(e.crc)
        .u32(bigSize ? U32_MAX : e.size)
        .u32(bigSize ? U32_MAX : e.size)
        .u16(e.name.length)
        .u16(extraField.length)
        .u16(0)
        .u16(0)
        .u16(0)
        .u32(0)
        .u32(bigOffset ? U32_MAX : e.offset)
        .bytes(e.name)
        .bytes(extraField.done());
    }
    const count = this.central.length;
    const cdSize = cd.length;
    await this.append(cd.done());
    const zip64End = this.forceZip64 || count >= U16_MAX || cdSize >= U32_MAX || cdOffset >= U32_MAX;
    const end = new ByteBuilder();
    if (zip64End) zip64EndRecords(end, count, cdSize, cdOffset, this.position);
    const force = this.forceZip64;
    end
      .u32(0x06054b50)
      .u16(0)
      .u16(0)
      .u16(force ? U16_MAX : Math.min(count, U16_MAX))
      .u16(force ? U16_MAX : Math.min(count, U16_MAX))
      .u32(force ? U32_MAX : Math.min(cdSize, U32_MAX))
      .u32(force ? U32_MAX : Math.min(cdOffset, U32_MAX))
      .u16(0);
    await this.append(end.done());
    await this.flush();
    const size = this.position;
    this.closed = true;
    await this.handle.close();
    return size;
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}
