import { stat, readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import {
  CheckpointFormatError,
  bufferSource,
  isTensorEntry,
  openTorchCheckpoint,
  parseNpy,
  parseNpyLayout,
  shapeNumel,
  toFloat32,
  type RawTensor,
  type TensorEntry,
} from '@imagebind-llm/checkpoint';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { looksLikePcd, parsePcd } from './formats/pcd';
import { parsePly } from './formats/ply';
import { parseObj, parseXyz } from './formats/text';
import { normalizePointCloud, type NormalizeOptions } from './normalize';
import {
  DEFAULT_MAX_POINTS,
  invalidPointInput,
  tooManyPoints,
  unsupportedPointMedia,
  validatePointCloud,
  type PointCloud,
} from './point-cloud';

export type PointCloudFormat = 'pt' | 'npy' | 'ply' | 'obj' | 'xyz' | 'pts' | 'pcd';

export const POINT_CLOUD_FORMATS: readonly PointCloudFormat[] = [
  'pt',
  'npy',
  'ply',
  'obj',
  'xyz',
  'pts',
  'pcd',
];

/** Default cap on the file size read into memory. */
export const DEFAULT_MAX_POINT_FILE_BYTES = 1024 * 1024 * 1024;

export interface LoadPointCloudOptions {
  /** More points → PAYLOAD_TOO_LARGE (checked from headers before parsing where the format allows); default 10⁷. */
  readonly maxPoints?: number;
  /**
   * Fewer points → INVALID_INPUT; default 1. Callers that encode pass the repository's grouping
   * needs, max(num_group, group_size) (see PointGrouping).
   */
  readonly minPoints?: number;
  /** Larger files → PAYLOAD_TOO_LARGE before reading; default 1 GiB. */
  readonly maxBytes?: number;
  /**
   * Off by default: the official loader neither normalises nor resamples (MODEL_SPEC §2.5).
   * `true` applies the training convention (FPS to 8192, centre, unit sphere); an object tunes it.
   */
  readonly normalize?: boolean | NormalizeOptions;
}

/**
 * The format named by the file's extension (case-insensitive). The official loader matches
 * substrings of the name; this takes the last extension, so `scan.ply.bak` is refused.
 */
export function pointCloudFormatOf(fileName: string): PointCloudFormat {
  const ext = extname(fileName).slice(1).toLowerCase();
  const format = POINT_CLOUD_FORMATS.find((f) => f === ext);
  if (format === undefined) {
    throw unsupportedPointMedia(
      `${basename(fileName)}: unsupported point-cloud file type ${ext === '' ? '(no extension)' : `.${ext}`}; ` +
        `supported: ${POINT_CLOUD_FORMATS.map((f) => `.${f}`).join(', ')}`,
    );
  }
  return format;
}

type ContentKind = 'zip' | 'npy' | 'ply' | 'pcd' | 'text' | 'binary';

function sniff(bytes: Uint8Array): ContentKind {
  const starts = (magic: readonly number[]): boolean => magic.every((b, i) => bytes[i] === b);
  if (starts([0x50, 0x4b, 0x03, 0x04]) || starts([0x50, 0x4b, 0x05, 0x06])) return 'zip';
  if (starts([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59])) return 'npy';
  if (starts([0x70, 0x6c, 0x79]) && (bytes[3] === 0x0a || bytes[3] === 0x0d)) return 'ply';
  if (looksLikePcd(bytes)) return 'pcd';
  return bytes.subarray(0, 4096).includes(0) ? 'binary' : 'text';
}

const EXPECTED_KIND: Readonly<Record<PointCloudFormat, ContentKind>> = {
  pt: 'zip',
  npy: 'npy',
  ply: 'ply',
  pcd: 'pcd',
  obj: 'text',
  xyz: 'text',
  pts: 'text',
};

const KIND_NAMES: Readonly<Record<ContentKind, string>> = {
  zip: 'a zip archive (torch.save .pt)',
  npy: 'a numpy .npy array',
  ply: 'a PLY file',
  pcd: 'a PCD file',
  text: 'plain text',
  binary: 'unrecognised binary data',
};

/**
 * Parses a point-cloud file held in memory (`fileName` picks the format) into float32 `[N, 3]`.
 * Hostile input gets a DomainError: INVALID_INPUT (empty, truncated, non-finite, too few points),
 * UNSUPPORTED_MEDIA (unknown type, content not matching the extension), PAYLOAD_TOO_LARGE.
 */
export async function parsePointCloud(
  bytes: Uint8Array,
  fileName: string,
  options: LoadPointCloudOptions = {},
): Promise<PointCloud> {
  const name = basename(fileName);
  const format = pointCloudFormatOf(fileName);
  const maxPoints = options.maxPoints ?? DEFAULT_MAX_POINTS;
  const minPoints = options.minPoints ?? 1;
  if (bytes.length === 0) throw invalidPointInput(`${name}: the file is empty`);
  const kind = sniff(bytes);
  const expected = EXPECTED_KIND[format];
  if (kind !== expected) {
    throw unsupportedPointMedia(
      `${name}: the name says .${format} (${KIND_NAMES[expected]}) but the content is ${KIND_NAMES[kind]}`,
      { format, detected: kind },
    );
  }
  let cloud: PointCloud;
  try {
    cloud = await parseByFormat(bytes, name, format, maxPoints);
  } catch (error) {
    if (error instanceof CheckpointFormatError) {
      throw new DomainError(ErrorCode.UnsupportedMedia, `${name}: ${error.detail}`, {}, { cause: error });
    }
    throw error;
  }
  validatePointCloud(cloud, name, { minPoints, maxPoints });
  if (options.normalize === undefined || options.normalize === false) return cloud;
  return normalizePointCloud(cloud, options.normalize === true ? {} : options.normalize);
}

/** Reads and parses a point-cloud file; the size limit is checked before reading. */
export async function loadPointCloudFile(
  path: string,
  options: LoadPointCloudOptions = {},
): Promise<PointCloud> {
  pointCloudFormatOf(path);
  const info = await stat(path);
  if (!info.isFile()) throw invalidPointInput(`${basename(path)}: not a regular file`);
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_POINT_FILE_BYTES;
  if (info.size > maxBytes) {
    throw new DomainError(
      ErrorCode.PayloadTooLarge,
      `${basename(path)}: ${info.size} bytes exceed the limit of ${maxBytes}`,
      { limit: maxBytes },
    );
  }
  return parsePointCloud(await readFile(path), path, options);
}

function parseByFormat(
  bytes: Uint8Array,
  name: string,
  format: PointCloudFormat,
  maxPoints: number,
): PointCloud | Promise<PointCloud> {
  switch (format) {
    case 'ply':
      return parsePly(bytes, name, maxPoints);
    case 'pcd':
      return parsePcd(bytes, name, maxPoints);
    case 'obj':
      return parseObj(bytes, name, maxPoints);
    case 'xyz':
      return parseXyz(bytes, name, maxPoints, false);
    case 'pts':
      return parseXyz(bytes, name, maxPoints, true);
    case 'npy':
      // The header's shape is checked before the array is copied out of the file.
      checkTensorShape(parseNpyLayout(bytes, name).shape, name, maxPoints);
      return tensorToCloud(parseNpy(bytes, name), name, maxPoints);
    case 'pt':
      return readTorchTensor(bytes, name, maxPoints);
  }
}

function checkTensorShape(shape: readonly number[], name: string, maxPoints: number): number {
  if (shape.length !== 2 || shape[1] !== 3) {
    throw invalidPointInput(
      `${name}: a point cloud tensor must have shape [N, 3], got [${shape.join(', ')}]`,
    );
  }
  const count = shape[0] ?? 0;
  if (count > maxPoints) throw tooManyPoints(name, count, maxPoints);
  return count;
}

function tensorToCloud(tensor: RawTensor, name: string, maxPoints: number): PointCloud {
  const count = checkTensorShape(tensor.shape, name, maxPoints);
  if (tensor.dtype === 'bool') throw invalidPointInput(`${name}: a bool tensor is not a point cloud`);
  // float64 and integer inputs are cast to float32 (B11); float32 passes through unchanged.
  const points = toFloat32(tensor);
  if (points.length !== shapeNumel(tensor.shape)) throw new Error(`${name}: tensor conversion lost elements`);
  return { points, count };
}

async function readTorchTensor(bytes: Uint8Array, name: string, maxPoints: number): Promise<PointCloud> {
  const checkpoint = await openTorchCheckpoint(bufferSource(name, bytes));
  try {
    let entry: TensorEntry | undefined;
    if (isTensorEntry(checkpoint.root)) entry = checkpoint.root;
    else {
      const tensors = [...checkpoint.stateDict().values()];
      if (tensors.length === 1) entry = tensors[0];
      else {
        throw invalidPointInput(
          `${name}: expected a single tensor (torch.save(points, path)); found ${tensors.length} tensors`,
        );
      }
    }
    if (entry === undefined) throw invalidPointInput(`${name}: no tensor in the file`);
    // The shape is known before any tensor bytes are read.
    checkTensorShape(entry.shape, name, maxPoints);
    return tensorToCloud(await entry.read(), name, maxPoints);
  } finally {
    await checkpoint.close();
  }
}
