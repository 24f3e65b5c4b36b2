import { promisify } from 'node:util';
import { inflateRaw } from 'node:zlib';
import type { ByteSource } from './byte-source';
import { CheckpointFormatError } from './checkpoint.error';
import { crc32 } from './crc32';

const inflateRawAsync = promisify(inflateRaw);

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;

export const ZIP_STORED = 0;
export const ZIP_DEFLATED = 8;

export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
}

function u64(view: DataView, at: number, what: string, file: string): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CheckpointFormatError(file, `zip ${what} ${value} is too large (corrupt archive)`);
  }
  return Number(value);
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads a zip archive through random access: only the central directory is read up front, so an
 * archive of many GB costs a few KB to open. Handles ZIP64 (torch writes it past 4 GB).
 */
export class ZipReader {
  private readonly dataOffsets = new Map<string, number>();

  private constructor(
    readonly source: ByteSource,
    readonly entries: ReadonlyMap<string, ZipEntry>,
  ) {}

  static async open(source: ByteSource): Promise<ZipReader> {
    const file = source.name;
    const tailLength = Math.min(source.size, EOCD_SIZE + 0xffff + ZIP64_LOCATOR_SIZE);
    const tailStart = source.size - tailLength;
    const tail = await source.read(tailStart, tailLength);
    const tv = dataView(tail);
    let eocd = -1;
    for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + tv.getUint16(i + 20, true) <= tail.length) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) {
      throw new CheckpointFormatError(
        file,
        'zip end-of-central-directory record not found: the file is truncated (incomplete download?) or not a zip archive',
      );
    }
    const diskNumber = tv.getUint16(eocd + 4, true);
    const cdDisk = tv.getUint16(eocd + 6, true);
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const locatorAt = eocd - ZIP64_LOCATOR_SIZE;
      if (locatorAt < 0 || tv.getUint32(locatorAt, true) !== SIG_ZIP64_LOCATOR) {
        throw new CheckpointFormatError(
          file,
          'zip needs a ZIP64 end-of-central-directory locator but has none (corrupt)',
        );
      }
      const recordOffset = u64(tv, locatorAt + 8, 'ZIP64 record offset', file);
      if (recordOffset + 56 > tailStart + locatorAt) {
        throw new CheckpointFormatError(
          file,
          `ZIP64 end-of-central-directory record offset ${recordOffset} is out of range`,
        );
      }
      const record = dataView(await source.read(recordOffset, 56));
      if (record.getUint32(0, true) !== SIG_ZIP64_EOCD) {
        throw new CheckpointFormatError(
          file,
          `no ZIP64 end-of-central-directory record at offset ${recordOffset} (corrupt)`,
        );
      }
      count = u64(record, 32, 'entry count', file);
      cdSize = u64(record, 40, 'central directory size', file);
      cdOffset = u64(record, 48, 'central directory offset', file);
    } else if (diskNumber !== 0 || cdDisk !== 0) {
      throw new CheckpointFormatError(file, 'multi-volume zip archives are not supported');
    }
    if (cdOffset + cdSize > source.size) {
      throw new CheckpointFormatError(
        file,
        `zip central directory (bytes ${cdOffset}..${cdOffset + cdSize}) lies beyond the end of the file (${source.size} bytes): truncated or corrupt`,
      );
    }
    const cd = await source.read(cdOffset, cdSize);
    const entries = parseCentralDirectory(file, cd, count, cdOffset);
    return new ZipReader(source, entries);
  }

  get name(): string {
    return this.source.name;
  }

  entry(name: string): ZipEntry | undefined {
    return this.entries.get(name);
  }

  /** Whole entry, decompressed and CRC-checked (for small records such as data.pkl). */
  async readEntry(name: string): Promise<Uint8Array> {
    const entry = this.requireEntry(name);
    const start = await this.dataOffset(entry);
    const raw = await this.source.read(start, entry.compressedSize);
    const bytes = await this.decompress(entry, raw);
    const actual = crc32(bytes);
    if (actual !== entry.crc32) {
      throw new CheckpointFormatError(
        this.name,
        `zip entry ${name} is corrupt (CRC-32 ${actual.toString(16)} != recorded ${entry.crc32.toString(16)})`,
      );
    }
    return bytes;
  }

  /**
   * A byte range of an entry's uncompressed content. Stored entries (the torch norm) read just that
   * range; deflated ones must be inflated whole first. Not CRC-checked: checksumming GBs of weights
   * on every load would cost more than it protects.
   */
  async readRange(name: string, offset: number, length: number): Promise<Uint8Array> {
    const entry = this.requireEntry(name);
    if (offset < 0 || length < 0 || offset + length > entry.uncompressedSize) {
      throw new CheckpointFormatError(
        this.name,
        `zip entry ${name} has ${entry.uncompressedSize} bytes; bytes ${offset}..${offset + length} were requested`,
      );
    }
    const start = await this.dataOffset(entry);
    if (entry.method === ZIP_STORED) return this.source.read(start + offset, length);
    const whole = await this.decompress(entry, await this.source.read(start, entry.compressedSize));
    return whole.subarray(offset, offset + length);
  }

  async close(): Promise<void> {
    await this.source.close();
  }

  private requireEntry(name: string): ZipEntry {
    const entry = this.entries.get(name);
    if (entry === undefined) throw new CheckpointFormatError(this.name, `zip entry ${name} does not exist`);
    return entry;
  }

  private async decompress(entry: ZipEntry, raw: Uint8Array): Promise<Uint8Array> {
    let bytes: Uint8Array;
    if (entry.method === ZIP_STORED) {
      bytes = raw;
    } else if (entry.method === ZIP_DEFLATED) {
      try {
        const inflated = await inflateRawAsync(raw);
        bytes = new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.byteLength);
      } catch (error) {
        throw new CheckpointFormatError(
          this.name,
          `zip entry ${entry.name} does not inflate: ${(error as Error).message}`,
        );
      }
    } else {
      throw new CheckpointFormatError(
        this.name,
        `zip entry ${entry.name} uses unsupported compression method ${entry.method}`,
      );
    }
    if (bytes.byteLength !== entry.uncompressedSize) {
      throw new CheckpointFormatError(
        this.name,
        `zip entry ${entry.name} has ${bytes.byteLength} bytes, the directory says ${entry.uncompressedSize}`,
      );
    }
    return bytes;
  }

  // The local header's extra field may differ from the central one (torch pads it to align tensor
  // data to 64 bytes), so the data offset is only known after reading the local header.
  private async dataOffset(entry: ZipEntry): Promise<number> {
    const cached = this.dataOffsets.get(entry.name);
    if (cached !== undefined) return cached;
    const header = dataView(await this.source.read(entry.localHeaderOffset, LOCAL_HEADER_SIZE));
    if (header.getUint32(0, true) !== SIG_LOCAL) {
      throw new CheckpointFormatError(
        this.name,
        `zip entry ${entry.name}: no local header at offset ${entry.localHeaderOffset} (corrupt archive)`,
      );
    }
    const start =
      entry.localHeaderOffset + LOCAL_HEADER_SIZE + header.getUint16(26, true) + header.getUint16(28, true);
    if (start + entry.compressedSize > this.source.size) {
      throw new CheckpointFormatError(
        this.name,
        `zip entry ${entry.name} (bytes ${start}..${start + entry.compressedSize}) runs past the end of the file (${this.source.size} bytes)`,
      );
    }
    this.dataOffsets.set(entry.name, start);
    return start;
  }
}

const utf8 = new TextDecoder('utf-8');

function parseCentralDirectory(
  file: string,
  cd: Uint8Array,
  count: number,
  cdOffset: number,
): Map<string, ZipEntry> {
  const view = dataView(cd);
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + CENTRAL_HEADER_SIZE > cd.length || view.getUint32(at, true) !== SIG_CENTRAL) {
      throw new CheckpointFormatError(file, `zip central directory is corrupt at entry ${i} of ${count}`);
    }
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    const crc = view.getUint32(at + 16, true);
    let compressedSize = view.getUint32(at + 20, true);
    let uncompressedSize = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    let localHeaderOffset = view.getUint32(at + 42, true);
    const nameStart = at + CENTRAL_HEADER_SIZE;
    const extraStart = nameStart + nameLength;
    const next = extraStart + extraLength + commentLength;
    if (next > cd.length)
      throw new CheckpointFormatError(file, `zip central directory entry ${i} is truncated`);
    const name = utf8.decode(cd.subarray(nameStart, extraStart));
    // ZIP64 extra field: only the fields whose 32-bit slot is saturated are present, in this order.
    let x = extraStart;
    while (x + 4 <= extraStart + extraLength) {
      const id = view.getUint16(x, true);
      const size = view.getUint16(x + 2, true);
      if (id === 0x0001) {
        let f = x + 4;
        const take = (what: string): number => {
          if (f + 8 > x + 4 + size)
            throw new CheckpointFormatError(file, `zip entry ${name}: ZIP64 field lacks the ${what}`);
          const value = u64(view, f, what, file);
          f += 8;
          return value;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = take('uncompressed size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('local header offset');
      }
      x += 4 + size;
    }
    if (flags & 1) throw new CheckpointFormatError(file, `zip entry ${name} is encrypted`);
    if (localHeaderOffset + LOCAL_HEADER_SIZE + compressedSize > cdOffset) {
      throw new CheckpointFormatError(
        file,
        `zip entry ${name} (offset ${localHeaderOffset}, ${compressedSize} bytes) overlaps the central directory at ${cdOffset} (corrupt)`,
      );
    }
    entries.set(name, {
      name,
      method,
      flags,
      crc32: crc,
      compressedSize,
      uncompressedSize,
      localHeaderOffset,
    });
    at = next;
  }
  return entries;
}
