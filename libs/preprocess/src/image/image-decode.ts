import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import sharp from 'sharp';

import { mediaNative, type MediaNative } from '../native/media-native';
import type { ScratchBuffer } from '../reusable-buffers';

/**
 * Image decoding as `PIL.Image.open(f).convert("RGB")` does it (MODEL_SPEC §2.1 step 1, B12):
 * no EXIF orientation, no ICC conversion, alpha dropped without compositing, greyscale replicated,
 * palettes mapped, CMYK converted with Pillow's plain formula. `sharp` (libvips, libjpeg-turbo
 * family decoder) only turns bytes into raw samples. Size and sample layout come from the
 * decoder's header metadata (`limitInputPixels` refusing a decompression bomb there), so an image
 * too large is refused before any pixel is decoded; plain 8-bit JPEGs, which the addon decodes
 * without sharp, take both from their frame header instead (one decoder call, not two, for most
 * photos).
 */

/** Formats the loader accepts (the ones the ImageBind demos take). */
export type ImageFormat = 'jpeg' | 'png' | 'gif' | 'webp';

/** 8-bit RGB pixels, interleaved and row-major: `data[(y * width + x) * 3 + c]`. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly channels: 3;
  readonly data: Uint8Array;
}

/** Guards against hostile input; every field is optional and has a default. */
export interface ImageLimits {
  /** Largest width × height accepted, checked on the header before decoding. */
  readonly maxPixels?: number;
  /** Largest encoded size in bytes. */
  readonly maxBytes?: number;
  /** Wall-clock limit for the decode itself, in seconds. */
  readonly timeoutSeconds?: number;
  /**
   * Most bytes the decoded samples may take (16-bit and alpha included, with the 8-bit RGB copy
   * made from them), checked on the decoder's header metadata before any pixel is decoded.
   */
  readonly maxDecodedBytes?: number;
}

export const DEFAULT_MAX_IMAGE_PIXELS = 40_000_000;
export const DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_DECODE_TIMEOUT_SECONDS = 30;
/** A 12 MP 8-bit RGB photo needs 72 MB; a 6300×6300 16-bit RGBA PNG (a 309 KB file) 635 MB. */
export const DEFAULT_MAX_IMAGE_DECODED_BYTES = 256 * 1024 * 1024;

/**
 * Bytes `decodeImageRgb` holds at once for a header's size and sample layout: the decoder's raw
 * output (CMYK 4 bytes a pixel; 16-bit as grey16 or rgb16; 8-bit with its own channels) plus the
 * conversions to 8-bit RGB made from it.
 */
export function decodedImageBytes(
  pixels: number,
  layout: { readonly channels: number; readonly depth: string; readonly cmyk: boolean },
): number {
  if (layout.cmyk) return pixels * (4 + 3);
  if (layout.depth === 'ushort') {
    const raw = layout.channels <= 2 ? layout.channels : 3;
    return pixels * (raw * 2 + raw + 3);
  }
  return pixels * (layout.channels + (layout.channels === 3 ? 0 : 3));
}

function unsupported(message: string, cause?: unknown): DomainError {
  return new DomainError(
    ErrorCode.UnsupportedMedia,
    message,
    {},
    cause === undefined ? undefined : { cause },
  );
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function ascii(bytes: Uint8Array, offset: number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(bytes[offset + i] ?? 0);
  return s;
}

/**
 * The container format from the leading bytes, or undefined when it is none of the four. This is
 * checked before sharp sees the bytes: libvips picks its loader from the content, and sharp has
 * no per-call list of loaders (`sharp.block` is process-wide), so without it an SVG, TIFF, HEIF or
 * PDF would be parsed by its own loader before its format could be refused.
 */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return 'png';
  const six = ascii(bytes, 0, Math.min(6, bytes.length));
  if (six === 'GIF87a' || six === 'GIF89a') return 'gif';
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return 'webp';
  return undefined;
}

/** Sample layout as the decoder's metadata reports it (the input of `decodedImageBytes`). */
interface SampleLayout {
  readonly channels: number;
  readonly depth: string;
  readonly cmyk: boolean;
}

/** What a JPEG's start-of-frame segment declares. */
interface JpegFrame {
  readonly width: number;
  readonly height: number;
  /**
   * The layout of an 8-bit Huffman-coded JPEG with 1 or 3 components (nearly every photo):
   * libjpeg turns it into 1 or 3 8-bit channels whatever the markers say, which is what the
   * decoder's metadata would report. Undefined for anything else (CMYK and YCCK, 12-bit,
   * arithmetic or lossless coding), which is left to the metadata.
   */
  readonly plain: SampleLayout | undefined;
}

function needJpeg(b: Uint8Array, end: number): void {
  if (b.length < end) throw unsupported(`truncated jpeg header (${b.length} bytes)`);
}

function u16be(b: Uint8Array, p: number): number {
  return ((b[p] ?? 0) << 8) | (b[p + 1] ?? 0);
}

function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

/**
 * Reads the first start-of-frame segment. The fast path needs it (the addon decodes without
 * sharp, so there is no decoder metadata to refuse a bomb or size the output before decoding);
 * every other format, and any JPEG this does not call plain, takes its size from sharp.
 */
function readJpegFrame(b: Uint8Array): JpegFrame {
  let p = 2;
  let marker: number;
  for (;;) {
    needJpeg(b, p + 2);
    if (b[p] !== 0xff) throw unsupported('corrupt jpeg: expected a marker');
    while (b[p] === 0xff) {
      p++;
      needJpeg(b, p + 1);
    }
    marker = b[p] ?? 0;
    p++;
    // Standalone markers carry no length.
    if (marker === 0x01 || marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7)) continue;
    if (marker === 0xd9 || marker === 0xda)
      throw unsupported('corrupt jpeg: no frame header before the scan');
    needJpeg(b, p + 2);
    const length = u16be(b, p);
    if (length < 2) throw unsupported('corrupt jpeg: bad segment length');
    if (isStartOfFrame(marker)) break;
    p += length;
  }
  needJpeg(b, p + 8);
  const precision = b[p + 2];
  const height = u16be(b, p + 3);
  const width = u16be(b, p + 5);
  const components = b[p + 7];
  // A height of 0 defers it to a DNL marker, which libjpeg does not support.
  if (width < 1 || height < 1) throw unsupported(`corrupt jpeg: declared size ${width}×${height}`);
  const huffman8 = (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) && precision === 8;
  const plain =
    huffman8 && (components === 1 || components === 3)
      ? { channels: components, depth: 'uchar', cmyk: false }
      : undefined;
  return { width, height, plain };
}

/** Pillow's CMYK → RGB: `v = (255 − k) − round((255 − k)·c / 255)` per channel. */
function cmykToRgb(src: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    const nk = 255 - (src[i * 4 + 3] ?? 0);
    for (let c = 0; c < 3; c++) {
      const t = (src[i * 4 + c] ?? 0) * nk + 128;
      out[i * 3 + c] = nk - (((t >> 8) + t) >> 8);
    }
  }
  return out;
}

/** Keeps the colour samples of 8-bit data with 1–4 channels (grey, grey+alpha, RGB, RGBA). */
function toRgb8(src: Uint8Array, pixels: number, channels: number): Uint8Array {
  if (channels === 3) return src;
  const out = new Uint8Array(pixels * 3);
  for (let i = 0; i < pixels; i++) {
    if (channels >= 3) {
      out[i * 3] = src[i * channels] ?? 0;
      out[i * 3 + 1] = src[i * channels + 1] ?? 0;
      out[i * 3 + 2] = src[i * channels + 2] ?? 0;
    } else {
      const v = src[i * channels] ?? 0;
      out[i * 3] = v;
      out[i * 3 + 1] = v;
      out[i * 3 + 2] = v;
    }
  }
  return out;
}

/**
 * 16-bit samples as Pillow reads 16-bit PNGs: RGB, RGBA and grey+alpha keep the high byte, while
 * plain 16-bit grey (mode "I;16") is clipped to 255 on conversion to RGB.
 */
function sixteenToRgb8(src: Uint16Array, pixels: number, channels: number): Uint8Array {
  const bytes = new Uint8Array(pixels * channels);
  const clip = channels === 1;
  for (let i = 0; i < bytes.length; i++) {
    const v = src[i] ?? 0;
    bytes[i] = clip ? Math.min(v, 255) : v >> 8;
  }
  return toRgb8(bytes, pixels, channels);
}

/**
 * A plain JPEG through the addon's libjpeg-turbo (PIL's decoder, at PIL's settings). libjpeg's own
 * working memory (a progressive file's coefficients) is capped at `maxDecoded` as well.
 */
function decodeJpegNative(
  native: MediaNative,
  bytes: Uint8Array,
  maxDecoded: number,
  timeoutSeconds: number,
  into: Uint8Array | undefined,
): RgbImage {
  try {
    const { width, height, data } = native.decodeJpegRgb(bytes, maxDecoded, timeoutSeconds, into);
    return { width, height, channels: 3, data };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? error.message : String(error);
    if (code === 'ETIMEOUT') {
      throw new DomainError(
        ErrorCode.DeadlineExceeded,
        `decoding the jpeg image took longer than ${timeoutSeconds} s`,
        { limit: timeoutSeconds },
        { cause: error },
      );
    }
    if (code === 'EMEMORY') {
      throw new DomainError(
        ErrorCode.PayloadTooLarge,
        `decoding the jpeg image needs more than ${Math.floor(maxDecoded / 2 ** 20)} MiB ` +
          '(server setting PREPROCESS_MAX_IMAGE_DECODED_BYTES): send a smaller image',
        { limit: maxDecoded },
        { cause: error },
      );
    }
    throw unsupported(`cannot decode the jpeg image: ${message}`, error);
  }
}

/** sharp's error when `limitInputPixels` refuses a header (pinned by the unit tests). */
const SHARP_PIXEL_LIMIT = 'Input image exceeds pixel limit';

/**
 * Decodes JPEG/PNG/GIF (first frame)/WebP bytes to 8-bit RGB exactly as PIL's
 * `Image.open(...).convert("RGB")`. Errors are DomainErrors: INVALID_INPUT for an empty buffer,
 * PAYLOAD_TOO_LARGE above the byte or pixel limit (checked on the header, before decoding),
 * UNSUPPORTED_MEDIA for an unknown format or a truncated/corrupt file. With `pixels`, a JPEG
 * decoded by the addon is written into that reused buffer: the image's data is then valid only
 * until the buffer's next use (a worker's next image).
 */
export async function decodeImageRgb(
  bytes: Uint8Array,
  limits: ImageLimits = {},
  pixels?: ScratchBuffer,
): Promise<RgbImage> {
  const maxPixels = limits.maxPixels ?? DEFAULT_MAX_IMAGE_PIXELS;
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  for (const [name, value] of [
    ['maxPixels', maxPixels],
    ['maxBytes', maxBytes],
    ['timeoutSeconds', limits.timeoutSeconds ?? DEFAULT_DECODE_TIMEOUT_SECONDS],
    ['maxDecodedBytes', limits.maxDecodedBytes ?? DEFAULT_MAX_IMAGE_DECODED_BYTES],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw DomainError.invalidInput(`image limit ${name} must be a positive integer (got ${value})`, name);
    }
  }
  if (bytes.length === 0) throw DomainError.invalidInput('the image is empty (0 bytes)');
  if (bytes.length > maxBytes) {
    throw new DomainError(
      ErrorCode.PayloadTooLarge,
      `the image is ${bytes.length} bytes; the limit is ${maxBytes}`,
      { limit: maxBytes },
    );
  }
  const format = sniffImageFormat(bytes);
  if (format === undefined) {
    throw unsupported('unsupported image format: expected JPEG, PNG, GIF or WebP');
  }
  const frame = format === 'jpeg' ? readJpegFrame(bytes) : undefined;
  if (frame !== undefined && frame.width * frame.height > maxPixels) {
    throw new DomainError(
      ErrorCode.PayloadTooLarge,
      `the image declares ${frame.width}×${frame.height} = ${frame.width * frame.height} pixels; the limit is ${maxPixels}`,
      { limit: maxPixels },
    );
  }

  const timeoutSeconds = limits.timeoutSeconds ?? DEFAULT_DECODE_TIMEOUT_SECONDS;
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const open = (): sharp.Sharp =>
    sharp(input, {
      failOn: 'error',
      limitInputPixels: maxPixels,
      ignoreIcc: true,
      autoOrient: false,
      pages: 1,
      page: 0,
    }).timeout({ seconds: timeoutSeconds });

  const maxDecoded = limits.maxDecodedBytes ?? DEFAULT_MAX_IMAGE_DECODED_BYTES;
  /** Refuses, before any pixel is decoded, an image whose samples would need more than the limit. */
  const checkDecodedSize = (w: number, h: number, layout: SampleLayout): void => {
    const decoded = decodedImageBytes(w * h, layout);
    if (decoded > maxDecoded) {
      // Refused on the header: nothing of that size has been allocated yet.
      throw new DomainError(
        ErrorCode.PayloadTooLarge,
        `the image is ${w}×${h} with ${layout.channels} ${layout.depth === 'ushort' ? '16' : '8'}-bit ` +
          `channels: decoding needs ${Math.ceil(decoded / 2 ** 20)} MiB; the limit is ${Math.floor(maxDecoded / 2 ** 20)} MiB ` +
          `(server setting PREPROCESS_MAX_IMAGE_DECODED_BYTES): send a smaller or 8-bit image`,
        { limit: maxDecoded },
      );
    }
  };
  /** 8-bit samples with 1–4 channels, as they are, then their RGB. */
  const decodeUchar = async (): Promise<RgbImage> => {
    const out = await open().raw().toBuffer({ resolveWithObject: true });
    if (out.info.channels < 1 || out.info.channels > 4) {
      throw unsupported(`unexpected decode with ${out.info.channels} channels`);
    }
    const { width, height } = out.info;
    return { width, height, channels: 3, data: toRgb8(out.data, width * height, out.info.channels) };
  };

  let image: RgbImage;
  try {
    if (frame?.plain !== undefined) {
      // A plain JPEG's layout is known from its frame header: one decoder call instead of two.
      checkDecodedSize(frame.width, frame.height, frame.plain);
      const native = mediaNative();
      image =
        native !== undefined
          ? decodeJpegNative(
              native,
              bytes,
              maxDecoded,
              timeoutSeconds,
              pixels?.take(frame.width * frame.height * 3),
            )
          : await decodeUchar();
      if (image.width !== frame.width || image.height !== frame.height) {
        throw unsupported(
          `the jpeg header says ${frame.width}×${frame.height}, the decoder ${image.width}×${image.height}`,
        );
      }
    } else {
      // Header only: `limitInputPixels` refuses an oversize image here, before libvips allocates
      // anything of its size (a 60000×60000 PNG is refused from its IHDR alone).
      const meta = await open().metadata();
      if (meta.format !== format) {
        throw unsupported(`the ${format} signature does not match the decoder's ${meta.format}`);
      }
      checkDecodedSize(meta.width, meta.height, {
        channels: meta.channels,
        depth: meta.depth,
        cmyk: meta.space === 'cmyk',
      });
      if (meta.space === 'cmyk') {
        // Raw CMYK, then Pillow's formula (libvips would otherwise apply a CMYK ICC profile).
        const out = await open()
          .pipelineColourspace('cmyk')
          .toColourspace('cmyk')
          .raw()
          .toBuffer({ resolveWithObject: true });
        if (out.info.channels !== 4)
          throw unsupported(`unexpected CMYK decode with ${out.info.channels} channels`);
        const { width, height } = out.info;
        image = { width, height, channels: 3, data: cmykToRgb(out.data, width * height) };
      } else if (meta.depth === 'ushort') {
        const grey = meta.channels <= 2;
        const out = await open()
          .toColourspace(grey ? 'grey16' : 'rgb16')
          .raw({ depth: 'ushort' })
          .toBuffer({ resolveWithObject: true });
        const { width, height } = out.info;
        const samples = new Uint16Array(out.data.buffer, out.data.byteOffset, out.data.byteLength / 2);
        image = {
          width,
          height,
          channels: 3,
          data: sixteenToRgb8(samples, width * height, out.info.channels),
        };
      } else if (meta.depth === 'uchar') {
        image = await decodeUchar();
      } else {
        throw unsupported(`unsupported sample format ${meta.depth}`);
      }
    }
  } catch (err) {
    if (err instanceof DomainError) throw err;
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    if (reason === SHARP_PIXEL_LIMIT) {
      throw new DomainError(
        ErrorCode.PayloadTooLarge,
        `the ${format} image is larger than the limit of ${maxPixels} pixels`,
        { limit: maxPixels },
        { cause: err },
      );
    }
    throw unsupported(`cannot decode the ${format} image: ${reason}`, err);
  }
  const { width, height, data } = image;
  if (data.length !== width * height * 3) {
    throw unsupported(`decoder returned ${data.length} bytes for ${width}×${height} RGB`);
  }
  return image;
}
