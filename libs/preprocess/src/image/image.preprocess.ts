import { decodeImageRgb, type ImageLimits, type RgbImage } from './image-decode';
import { pillowResizeBicubic, pillowResizeBicubicToPlanes, type Region } from './pillow-resize';
import type { ScratchBuffer, TensorAllocator } from '../reusable-buffers';

/**
 * ImageBind's image loader (`load_and_transform_vision_data`, MODEL_SPEC §2.1): decode as PIL,
 * Pillow bicubic shorter-side resize to 224, CenterCrop 224 (round-half-even offsets, B9),
 * ToTensor and CLIP Normalize, giving a float32 CHW tensor [3, 224, 224].
 */

export const IMAGE_SIZE = 224;

/** CLIP normalisation constants (per RGB channel). */
export const CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export interface ImageTensor {
  /** Float32 CHW, normalised. */
  readonly tensor: Float32Array;
  readonly shape: [3, number, number];
}

/**
 * torchvision's Resize(int) output size: the shorter side becomes `size`, the longer one
 * `int(size · long / short)` (truncated, evaluated as `(size·long)/short` in double).
 */
export function shortSideResizeSize(
  width: number,
  height: number,
  size = IMAGE_SIZE,
): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.trunc((size * height) / width) };
  return { width: Math.trunc((size * width) / height), height: size };
}

/** Python's `round(x)` on a double: nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** torchvision 0.14 CenterCrop offset: `int(round((length − crop) / 2.0))`. */
export function centerCropOffset(length: number, crop: number): number {
  return roundHalfEven((length - crop) / 2);
}

/** The centre-crop window of the shorter-side resize, in resized coordinates, and that size. */
function centreCropWindow(
  img: RgbImage,
  size: number,
): { target: { width: number; height: number }; region: Region } {
  const target = shortSideResizeSize(img.width, img.height, size);
  const region = {
    left: centerCropOffset(target.width, size),
    top: centerCropOffset(target.height, size),
    width: size,
    height: size,
  };
  return { target, region };
}

/**
 * Shorter-side Pillow bicubic resize to `size` followed by a centre crop of `size × size`, both
 * exactly as the official loader. Only the cropped window is computed.
 */
export function resizeAndCenterCrop(img: RgbImage, size = IMAGE_SIZE): RgbImage {
  const { target, region } = centreCropWindow(img, size);
  const out = pillowResizeBicubic(img, target.width, target.height, region);
  return { width: out.width, height: out.height, channels: 3, data: out.data };
}

/**
 * ToTensor + Normalize of one 8-bit sample as PyTorch computes it, every step rounded to float32:
 * `(fround(p / 255) − mean) / std`.
 */
function normalisedSample(p: number, mean: number, std: number): number {
  const f = Math.fround;
  return f(f(f(p / 255) - f(mean)) / f(std));
}

/**
 * The normalised value of each of the 256 byte values, per channel: a lookup in these tables is
 * `normalisedSample` itself (the same float32, computed once per byte value instead of per pixel).
 */
export function normalisationTables(
  mean: readonly [number, number, number] = CLIP_MEAN,
  std: readonly [number, number, number] = CLIP_STD,
): [Float32Array, Float32Array, Float32Array] {
  const table = (c: 0 | 1 | 2): Float32Array => {
    const t = new Float32Array(256);
    for (let p = 0; p < 256; p++) t[p] = normalisedSample(p, mean[c], std[c]);
    return t;
  };
  return [table(0), table(1), table(2)];
}

/** The CLIP constants' tables, made once (never written after). */
const CLIP_TABLES = normalisationTables();

/** ToTensor + Normalize (`normalisedSample` per sample), laid out CHW. */
export function toNormalizedChw(
  img: RgbImage,
  mean: readonly [number, number, number] = CLIP_MEAN,
  std: readonly [number, number, number] = CLIP_STD,
): Float32Array {
  const tables = mean === CLIP_MEAN && std === CLIP_STD ? CLIP_TABLES : normalisationTables(mean, std);
  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  const data = img.data;
  for (let c = 0; c < 3; c++) {
    const table = tables[c] as Float32Array;
    let o = c * plane;
    const end = 3 * plane;
    for (let i = c; i < end; i += 3) out[o++] = table[data[i] as number] as number;
  }
  return out;
}

/**
 * The full transform on already-decoded RGB pixels: `toNormalizedChw(resizeAndCenterCrop(img))`,
 * with the normalisation applied as the resize's last pass produces each byte. `allocate` gives
 * the output tensor (default a new buffer).
 */
export function preprocessRgbImage(img: RgbImage, allocate?: TensorAllocator): ImageTensor {
  const { target, region } = centreCropWindow(img, IMAGE_SIZE);
  const tensor = pillowResizeBicubicToPlanes(img, target.width, target.height, region, CLIP_TABLES, allocate);
  return { tensor, shape: [3, IMAGE_SIZE, IMAGE_SIZE] };
}

/** Buffers a thread that preprocesses one image at a time reuses (the pool's workers). */
export interface ImageBuffers {
  /** Gives the output tensor (default a new buffer). */
  readonly allocateTensor?: TensorAllocator;
  /** Holds the decoded pixels until the resize has read them. */
  readonly pixels?: ScratchBuffer;
}

/** Decodes an encoded image and applies the ImageBind transform; see `decodeImageRgb` for errors. */
export async function preprocessImage(
  bytes: Uint8Array,
  limits?: ImageLimits,
  buffers: ImageBuffers = {},
): Promise<ImageTensor> {
  return preprocessRgbImage(await decodeImageRgb(bytes, limits, buffers.pixels), buffers.allocateTensor);
}
