import { open, rename, rm } from 'node:fs/promises';
import type { FaissFlatType } from './faiss-index.reader';

/**
 * Writes faiss flat indexes the way `faiss.write_index` stores IndexFlatIP (`IxFI`) and
 * IndexFlatL2 (`IxF2`) (MODEL_SPEC §6.5), what `openFaissFlatIndex` reads: fourcc, int32 d, int64
 * ntotal, two int64 dummies (faiss writes 2^20), uint8 is_trained, int32 metric_type, then the
 * codes as a uint64 float count followed by the float32 vectors, all little-endian. The vectors are
 * streamed, so a 13 GB index needs only the caller's chunk in memory.
 */

export type FaissFlatFourcc = 'IxFI' | 'IxF2';

const METRIC_TYPE: Readonly<Record<FaissFlatFourcc, number>> = { IxFI: 0, IxF2: 1 };
/** Bytes before the first vector. */
export const FAISS_FLAT_HEADER_BYTES = 4 + 4 + 8 + 8 + 8 + 1 + 4 + 8;
const FAISS_DUMMY = 1n << 20n;

export const FAISS_FLAT_FOURCC: Readonly<Record<FaissFlatType, FaissFlatFourcc>> = {
  IndexFlatIP: 'IxFI',
  IndexFlatL2: 'IxF2',
};

function checkSize(d: number, ntotal: number): void {
  if (!Number.isSafeInteger(d) || d <= 0) throw new Error(`dimension d must be a positive integer, got ${d}`);
  if (!Number.isSafeInteger(ntotal) || ntotal < 0 || ntotal * d * 4 > Number.MAX_SAFE_INTEGER) {
    throw new Error(`ntotal must be a non-negative integer of safe size, got ${ntotal}`);
  }
}

/** The header of a flat index of `ntotal` vectors of dimension `d`. */
export function encodeFaissFlatHeader(
  d: number,
  ntotal: number,
  fourcc: FaissFlatFourcc = 'IxFI',
): Uint8Array {
  checkSize(d, ntotal);
  const out = new Uint8Array(FAISS_FLAT_HEADER_BYTES);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = fourcc.charCodeAt(i);
  view.setInt32(4, d, true);
  view.setBigInt64(8, BigInt(ntotal), true);
  view.setBigInt64(16, FAISS_DUMMY, true);
  view.setBigInt64(24, FAISS_DUMMY, true);
  view.setUint8(32, 1); // is_trained: flat indexes need no training
  view.setInt32(33, METRIC_TYPE[fourcc], true);
  view.setBigUint64(37, BigInt(ntotal) * BigInt(d), true);
  return out;
}

/** The size of the file of a flat index of `ntotal` vectors of dimension `d`. */
export function faissFlatIndexBytes(d: number, ntotal: number): number {
  checkSize(d, ntotal);
  return FAISS_FLAT_HEADER_BYTES + ntotal * d * 4;
}

export interface FaissFlatIndexStreamOptions {
  readonly d: number;
  readonly ntotal: number;
  readonly fourcc?: FaissFlatFourcc;
}

/**
 * Receives whole rows, row-major. When the promise resolves the writer has taken the chunk: the
 * caller may refill that buffer. With `overlap` the writer keeps the previous chunk in flight while
 * the caller fills the next one: the caller must then alternate between two buffers.
 */
export type FaissRowSink = (rows: Float32Array) => Promise<void>;

/**
 * Writes a flat index of `ntotal` × `d` vectors that `produce` pushes into the sink a chunk at a
 * time. The file is written as `<path>.partial` and renamed when complete, so an interrupted write
 * never leaves a plausible index; producing other than exactly ntotal rows is an error.
 * With `overlap: true`, `sink` returns as soon as the chunk's write has started (it waits for the
 * previous one), so generation and disk writes overlap: the caller alternates two buffers.
 */
export async function writeFaissFlatIndexStream(
  path: string,
  options: FaissFlatIndexStreamOptions & { readonly overlap?: boolean },
  produce: (sink: FaissRowSink) => Promise<void>,
): Promise<{ readonly bytes: number; readonly ntotal: number }> {
  const { d, ntotal } = options;
  const header = encodeFaissFlatHeader(d, ntotal, options.fourcc ?? 'IxFI');
  const partial = `${path}.partial`;
  const handle = await open(partial, 'w');
  let position = 0;
  const writeAll = async (bytes: Uint8Array): Promise<void> => {
    for (let done = 0; done < bytes.length;) {
      const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
      done += bytesWritten;
    }
    position += bytes.length;
  };
  let rows = 0;
  let inFlight: Promise<void> = Promise.resolve();
  try {
    await writeAll(header);
    await produce(async (chunk) => {
      if (chunk.length % d !== 0)
        throw new Error(`a chunk of ${chunk.length} floats is not whole rows of d=${d}`);
      const n = chunk.length / d;
      if (rows + n > ntotal) throw new Error(`the source produced more than the ${ntotal} rows announced`);
      rows += n;
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      await inFlight;
      const start = position;
      position += bytes.length;
      const write = (async () => {
        for (let done = 0; done < bytes.length;) {
          const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, start + done);
          done += bytesWritten;
        }
      })();
      if (options.overlap === true) {
        // Keep the rejection observed until the next chunk or the end awaits it.
        inFlight = write;
        write.catch(() => undefined);
      } else {
        await write;
      }
    });
    await inFlight;
    if (rows !== ntotal) throw new Error(`the source produced ${rows} rows; the header announces ${ntotal}`);
    await handle.close();
    await rename(partial, path);
    return { bytes: position, ntotal };
  } catch (error) {
    await inFlight.catch(() => undefined);
    await handle.close().catch(() => undefined);
    await rm(partial, { force: true });
    throw error;
  }
}
