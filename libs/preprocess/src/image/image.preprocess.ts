import { decodeImageRgb, type ImageLimits, type RgbImage } from './image-decode';
import { pillowResizeBicubic } from './pillow-resize';

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

/**
 * Shorter-side Pillow bicubic resize to `size` followed by a centre crop of `size × size`, both
 * exactly as the official loader. Only the cropped window is computed.
 */
export function resizeAndCenterCrop(img: RgbImage, size = IMAGE_SIZE): RgbImage {
  const target = shortSideResizeSize(img.width, img.height, size);
  const region = {
    left: centerCropOffset(target.width, size),
    top: centerCropOffset(target.height, size),
    width: size,
    height: size,
  };
  const out = pillowResizeBicubic(img, target.width, target.height, region);
  return { width: out.width, height: out.height, channels: 3, data: out.data };
}

/**
 * ToTensor + Normalize: `(fround(p / 255) − mean_c) / std_c`, every step rounded to float32 as
 * PyTorch computes it, laid out CHW.
 */
export function toNormalizedChw(
  img: RgbImage,
  mean: readonly [number, number, number] = CLIP_MEAN,
  std: readonly [number, number, number] = CLIP_STD,
): Float32Array {
  const plane = img.width * img.height;
  const out = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c] ?? 0);
    const s = Math.fround(std[c] ?? 1);
    for (let i = 0; i < plane; i++) {
      const x = Math.fround((img.data[i * 3 + c] ?? 0) / 255);
      out[c * plane + i] = Math.fround(Math.fround(x - m) / s);
    }
  }
  return out;
}

/** The full transform on already-decoded RGB pixels. */
export function preprocessRgbImage(img: RgbImage): ImageTensor {
  const cropped = resizeAndCenterCrop(img, IMAGE_SIZE);
  return { tensor: toNormalizedChw(cropped), shape: [3, IMAGE_SIZE, IMAGE_SIZE] };
}

/** Decodes an encoded image and applies the ImageBind transform; see `decodeImageRgb` for errors. */
export async function preprocessImage(bytes: Uint8Array, limits?: ImageLimits): Promise<ImageTensor> {
  return preprocessRgbImage(await decodeImageRgb(bytes, limits));
}
