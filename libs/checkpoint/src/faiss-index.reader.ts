import { resolveSource, type ByteSource } from './byte-source';
import { CheckpointFormatError } from './checkpoint.error';
import { viewAs } from './tensor';

export type FaissFlatType = 'IndexFlatIP' | 'IndexFlatL2';
export type FaissMetric = 'inner_product' | 'l2';

const FLAT_TYPES: Readonly<Record<string, { type: FaissFlatType; metric: FaissMetric; metricType: number }>> =
  {
    IxFI: { type: 'IndexFlatIP', metric: 'inner_product', metricType: 0 },
    IxF2: { type: 'IndexFlatL2', metric: 'l2', metricType: 1 },
  };

// Names for the error message only: an operator who downloaded the wrong index needs to know what
// they have. autofaiss commonly produces the IVF/HNSW/PQ kinds.
const OTHER_TYPES: Readonly<Record<string, string>> = {
  IxFl: 'IndexFlat (legacy)',
  IHNf: 'IndexHNSWFlat',
  IHNp: 'IndexHNSWPQ',
  IHNs: 'IndexHNSWSQ',
  IwFl: 'IndexIVFFlat',
  IwFI: 'IndexIVFFlat',
  IwPQ: 'IndexIVFPQ',
  IwQR: 'IndexIVFPQR',
  IwSq: 'IndexIVFScalarQuantizer',
  IwSQ: 'IndexIVFScalarQuantizer',
  IxPQ: 'IndexPQ',
  IxSQ: 'IndexScalarQuantizer',
  IxMp: 'IndexIDMap',
  IxM2: 'IndexIDMap2',
  IxPT: 'IndexPreTransform',
  IxRF: 'IndexRefineFlat',
  IxLS: 'IndexLSH',
};

export interface FaissFlatIndexInfo {
  /** The 4-byte type tag, `IxFI` or `IxF2`. */
  readonly fourcc: string;
  readonly type: FaissFlatType;
  readonly metric: FaissMetric;
  /** Only stored for metric types above 1 (never for these two kinds, kept for completeness). */
  readonly metricArg: number | undefined;
  readonly d: number;
  readonly ntotal: number;
  readonly isTrained: boolean;
}

/** A flat index whose vectors stay on disk: 13 GB (the real CC3M cache) must not be loaded at once. */
export interface FaissFlatIndex extends FaissFlatIndexInfo {
  readonly file: string;
  /** Rows `first .. first+count-1`, row-major `[count, d]`. */
  readVectors(first: number, count: number): Promise<Float32Array>;
  /** All rows in order, `rowsPerBatch` at a time (the last batch may be shorter). */
  batches(rowsPerBatch: number): AsyncGenerator<{ readonly first: number; readonly vectors: Float32Array }>;
  close(): Promise<void>;
}

export interface FaissFlatIndexData extends FaissFlatIndexInfo {
  /** Row-major `[ntotal, d]`. */
  readonly vectors: Float32Array;
}

const FIXED_HEADER = 4 + 4 + 8 + 8 + 8 + 1 + 4;

/** Opens a faiss IndexFlatIP / IndexFlatL2 file (MODEL_SPEC §6.5) and validates its layout. */
export async function openFaissFlatIndex(input: string | ByteSource): Promise<FaissFlatIndex> {
  const source = await resolveSource(input);
  try {
    return await parseFlatIndex(source);
  } catch (error) {
    await source.close();
    throw error;
  }
}

/** Reads the whole index into memory (fine for the tiny golden set, not for the real 13 GB file). */
export async function readFaissFlatIndex(input: string | ByteSource): Promise<FaissFlatIndexData> {
  const index = await openFaissFlatIndex(input);
  try {
    const { fourcc, type, metric, metricArg, d, ntotal, isTrained } = index;
    return {
      fourcc,
      type,
      metric,
      metricArg,
      d,
      ntotal,
      isTrained,
      vectors: await index.readVectors(0, ntotal),
    };
  } finally {
    await index.close();
  }
}

/** Short name for {@link readFaissFlatIndex}. */
export const readFaissIndex = readFaissFlatIndex;

async function parseFlatIndex(source: ByteSource): Promise<FaissFlatIndex> {
  const file = source.name;
  const fail = (detail: string): CheckpointFormatError =>
    new CheckpointFormatError(file, `faiss index: ${detail}`);
  if (source.size < 4) throw fail(`file is ${source.size} bytes, too short for a faiss index (truncated)`);
  const fourcc = String.fromCharCode(...(await source.read(0, 4)));
  const flat = FLAT_TYPES[fourcc];
  if (flat === undefined) {
    const known = OTHER_TYPES[fourcc];
    throw fail(
      `type ${JSON.stringify(fourcc)}${known !== undefined ? ` (${known})` : ''} is not supported; only flat indexes ` +
        'IxFI (IndexFlatIP) and IxF2 (IndexFlatL2) are. Export the vectors to a flat index first ' +
        '(e.g. faiss.IndexFlatIP(d) + add(index.reconstruct_n(0, index.ntotal)))',
    );
  }
  if (source.size < FIXED_HEADER + 8) {
    throw fail(`file is ${source.size} bytes, shorter than the ${fourcc} header (truncated)`);
  }
  const headerBytes = await source.read(0, Math.min(source.size, FIXED_HEADER + 4 + 8));
  const view = new DataView(headerBytes.buffer, headerBytes.byteOffset, headerBytes.byteLength);
  const d = view.getInt32(4, true);
  const ntotalBig = view.getBigInt64(8, true);
  const isTrained = view.getUint8(32) !== 0;
  const metricType = view.getInt32(33, true);
  let at = FIXED_HEADER;
  let metricArg: number | undefined;
  if (metricType > 1) {
    metricArg = view.getFloat32(at, true);
    at += 4;
  }
  if (metricType !== flat.metricType) {
    throw fail(
      `${fourcc} (${flat.type}) must have metric_type ${flat.metricType} but the header says ${metricType} (corrupt)`,
    );
  }
  if (d <= 0) throw fail(`dimension d=${d} is not positive (corrupt header)`);
  if (ntotalBig < 0n || ntotalBig > BigInt(Number.MAX_SAFE_INTEGER))
    throw fail(`ntotal=${ntotalBig} is impossible (corrupt header)`);
  if (at + 8 > headerBytes.length) throw fail('file ends inside the header (truncated)');
  const count = view.getBigUint64(at, true);
  at += 8;
  const ntotal = Number(ntotalBig);
  if (count !== ntotalBig * BigInt(d)) {
    throw fail(
      `stores ${count} floats but ntotal*d = ${ntotal}*${d} = ${ntotalBig * BigInt(d)} (corrupt header)`,
    );
  }
  const dataStart = at;
  const expectedSize = BigInt(dataStart) + count * 4n;
  if (BigInt(source.size) !== expectedSize) {
    throw fail(
      BigInt(source.size) < expectedSize
        ? `file is ${source.size} bytes but ${ntotal} vectors of d=${d} need ${expectedSize} (truncated)`
        : `file is ${source.size} bytes, ${BigInt(source.size) - expectedSize} more than ${ntotal} vectors of d=${d} need (trailing data: not a plain flat index)`,
    );
  }
  const rowBytes = d * 4;

  const readVectors = async (first: number, rows: number): Promise<Float32Array> => {
    if (
      !Number.isSafeInteger(first) ||
      !Number.isSafeInteger(rows) ||
      first < 0 ||
      rows < 0 ||
      first + rows > ntotal
    ) {
      throw new RangeError(`${file}: rows ${first}..${first + rows} are outside 0..${ntotal}`);
    }
    return viewAs(await source.read(dataStart + first * rowBytes, rows * rowBytes), Float32Array);
  };

  return {
    file,
    fourcc,
    type: flat.type,
    metric: flat.metric,
    metricArg,
    d,
    ntotal,
    isTrained,
    readVectors,
    async *batches(rowsPerBatch: number) {
      if (!Number.isSafeInteger(rowsPerBatch) || rowsPerBatch <= 0) {
        throw new RangeError(`rowsPerBatch must be a positive integer, got ${rowsPerBatch}`);
      }
      for (let first = 0; first < ntotal; first += rowsPerBatch) {
        yield { first, vectors: await readVectors(first, Math.min(rowsPerBatch, ntotal - first)) };
      }
    },
    close: async () => source.close(),
  };
}
