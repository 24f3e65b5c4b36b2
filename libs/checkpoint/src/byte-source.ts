import { open, type FileHandle } from 'node:fs/promises';
import { CheckpointFormatError } from './checkpoint.error';

/**
 * Random access to a file's bytes. Readers take this instead of a path so tests can count what is
 * read (the laziness guarantee) and callers can serve bytes from elsewhere.
 */
export interface ByteSource {
  /** Names the file in error messages. */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes at `offset`; fails when the file is shorter. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

// fs.read rejects lengths above 2 GiB - 1; larger tensors are read in pieces into one buffer.
const MAX_CHUNK = 1 << 30;

class FileByteSource implements ByteSource {
  private closed = false;

  constructor(
    readonly name: string,
    readonly size: number,
    private readonly handle: FileHandle,
  ) {}

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.closed) throw new Error(`${this.name}: read after close`);
    checkRange(this, offset, length);
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const want = Math.min(length - done, MAX_CHUNK);
      const { bytesRead } = await this.handle.read(out, done, want, offset + done);
      if (bytesRead === 0) {
        throw new CheckpointFormatError(
          this.name,
          `unexpected end of file at byte ${offset + done} (wanted ${length} bytes at offset ${offset}); the file shrank or is truncated`,
        );
      }
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

function checkRange(source: ByteSource, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new CheckpointFormatError(source.name, `invalid byte range offset=${offset} length=${length}`);
  }
  if (offset + length > source.size) {
    throw new CheckpointFormatError(
      source.name,
      `needs bytes ${offset}..${offset + length} but the file has only ${source.size} bytes (truncated?)`,
    );
  }
}

export async function openFileSource(path: string): Promise<ByteSource> {
  const handle = await open(path, 'r');
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${path}: not a regular file`);
    return new FileByteSource(path, stat.size, handle);
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** In-memory source (small files, tests). */
export function bufferSource(name: string, bytes: Uint8Array): ByteSource {
  const source: ByteSource = {
    name,
    size: bytes.byteLength,
    read: (offset, length) => {
      try {
        checkRange(source, offset, length);
        return Promise.resolve(new Uint8Array(bytes.subarray(offset, offset + length)));
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    },
    close: () => Promise.resolve(),
  };
  return source;
}

/** Opens a path, or takes over an already open source: the reader built on it closes it. */
export async function resolveSource(input: string | ByteSource): Promise<ByteSource> {
  return typeof input === 'string' ? openFileSource(input) : input;
}
