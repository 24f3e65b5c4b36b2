import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import sharp from 'sharp';

import { mediaNative, type MediaNative } from '../native/media-native';

/**
 * Image decoding as `PIL.Image.open(f).convert("RGB")` does it (MODEL_SPEC §2.1 step 1, B12):
 * no EXIF orientation, no ICC conversion, alpha dropped without compositing, greyscale replicated,
 * palettes mapped, CMYK converted with Pillow's plain formula. `sharp` (libvips, libjpeg-turbo
 * family decoder) only turns bytes into raw samples; the size is read from the header first, so a
 * decompression bomb is refused before any pixel is decoded. The sample layout is then taken from
 * the decoder's metadata, except for plain 8-bit JPEGs, whose frame header already tells it (one
 * decoder call instead of two for most photos).
 */

/** Formats the loader accepts (the ones the ImageBind demos take). */
export type ImageFormat = 'jpeg' | 'png' | 'gif' | 'webp';

/** The size declared by an image's header. */
export interface ImageHeader {
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
}

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

/** The container format from the leading bytes, or undefined when it is none of the four. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return 'png';
  const six = ascii(bytes, 0, Math.min(6, bytes.length));
  if (six === 'GIF87a' || six === 'GIF89a') return 'gif';
  if (bytes.length >= 12 && ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return 'webp';
  return undefined;
}

function need(bytes: Uint8Array, end: number, format: ImageFormat): void {
  if (bytes.length < end) throw unsupported(`truncated ${format} header (${bytes.length} bytes)`);
}

function u16be(b: Uint8Array, p: number): number {
  return ((b[p] ?? 0) << 8) | (b[p + 1] ?? 0);
}

function u16le(b: Uint8Array, p: number): number {
  return (b[p] ?? 0) | ((b[p + 1] ?? 0) << 8);
}

function u24le(b: Uint8Array, p: number): number {
  return (b[p] ?? 0) | ((b[p + 1] ?? 0) << 8) | ((b[p + 2] ?? 0) << 16);
}

function u32be(b: Uint8Array, p: number): number {
  return (b[p] ?? 0) * 0x1000000 + (((b[p + 1] ?? 0) << 16) | ((b[p + 2] ?? 0) << 8) | (b[p + 3] ?? 0));
}

function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

/** Offset of the first start-of-frame segment's length field, after its marker. */
function jpegFrameOffset(b: Uint8Array): number {
  let p = 2;
  for (;;) {
    need(b, p + 2, 'jpeg');
    if (b[p] !== 0xff) throw unsupported('corrupt jpeg: expected a marker');
    while (b[p] === 0xff) {
      p++;
      need(b, p + 1, 'jpeg');
    }
    const marker = b[p] ?? 0;
    p++;
    // Standalone markers carry no length.
    if (marker === 0x01 || marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7)) continue;
    if (marker === 0xd9 || marker === 0xda)
      throw unsupported('corrupt jpeg: no frame header before the scan');
    need(b, p + 2, 'jpeg');
    const length = u16be(b, p);
    if (length < 2) throw unsupported('corrupt jpeg: bad segment length');
    if (isStartOfFrame(marker)) {
      need(b, p + 7, 'jpeg');
      return p;
    }
    p += length;
  }
}

function jpegSize(b: Uint8Array): [number, number] {
  const p = jpegFrameOffset(b);
  return [u16be(b, p + 5), u16be(b, p + 3)];
}

/** Sample layout as the decoder's metadata reports it (the input of `decodedImageBytes`). */
interface SampleLayout {
  readonly channels: number;
  readonly depth: string;
  readonly cmyk: boolean;
}

/**
 * The layout of an 8-bit Huffman-coded JPEG with 1 or 3 components (nearly every photo), read
 * from its frame header: libjpeg turns it into 1 or 3 8-bit channels whatever the markers say,
 * which is what the decoder's metadata would report. Undefined for anything else (CMYK and YCCK,
 * 12-bit, arithmetic or lossless coding, a header cut short), which is left to the metadata.
 */
function plainJpegLayout(b: Uint8Array): SampleLayout | undefined {
  const p = jpegFrameOffset(b);
  const marker = b[p - 1];
  const precision = b[p + 2];
  const components = b[p + 7];
  if (marker !== 0xc0 && marker !== 0xc1 && marker !== 0xc2) return undefined;
  if (precision !== 8 || (components !== 1 && components !== 3)) return undefined;
  return { channels: components, depth: 'uchar', cmyk: false };
}

function webpSize(b: Uint8Array): [number, number] {
  need(b, 16, 'webp');
  const chunk = ascii(b, 12, 4);
  if (chunk === 'VP8 ') {
    need(b, 30, 'webp');
    if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a)
      throw unsupported('corrupt webp: bad VP8 start code');
    return [u16le(b, 26) & 0x3fff, u16le(b, 28) & 0x3fff];
  }
  if (chunk === 'VP8L') {
    need(b, 25, 'webp');
    if (b[20] !== 0x2f) throw unsupported('corrupt webp: bad VP8L signature');
    const bits = (b[21] ?? 0) | ((b[22] ?? 0) << 8) | ((b[23] ?? 0) << 16) | ((b[24] ?? 0) << 24);
    return [(bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1];
  }
  if (chunk === 'VP8X') {
    need(b, 30, 'webp');
    return [u24le(b, 24) + 1, u24le(b, 27) + 1];
  }
  throw unsupported(`corrupt webp: unknown first chunk ${JSON.stringify(chunk)}`);
}

/**
 * Reads the format and declared size from the header alone (no decoding, no allocation that
 * depends on the declared size). Throws UNSUPPORTED_MEDIA for an unknown or broken header.
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  const format = sniffImageFormat(bytes);
  if (format === undefined) {
    throw unsupported('unsupported image format: expected JPEG, PNG, GIF or WebP');
  }
  let width: number;
  let height: number;
  switch (format) {
    case 'jpeg':
      [width, height] = jpegSize(bytes);
      break;
    case 'png':
      need(bytes, 24, format);
      if (ascii(bytes, 12, 4) !== 'IHDR') throw unsupported('corrupt png: first chunk is not IHDR');
      width = u32be(bytes, 16);
      height = u32be(bytes, 20);
      break;
    case 'gif':
      need(bytes, 10, format);
      width = u16le(bytes, 6);
      height = u16le(bytes, 8);
      break;
    case 'webp':
      [width, height] = webpSize(bytes);
      break;
  }
  if (width < 1 || height < 1) throw unsupported(`corrupt ${format}: declared size ${width}×${height}`);
  return { format, width, height };
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
): RgbImage {
  try {
    const { width, height, data } = native.decodeJpegRgb(bytes, maxDecoded, timeoutSeconds);
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

/**
 * Decodes JPEG/PNG/GIF (first frame)/WebP bytes to 8-bit RGB exactly as PIL's
 * `Image.open(...).convert("RGB")`. Errors are DomainErrors: INVALID_INPUT for an empty buffer,
 * PAYLOAD_TOO_LARGE above the byte or pixel limit (checked on the header, before decoding),
 * UNSUPPORTED_MEDIA for an unknown format or a truncated/corrupt file.
 */
export async function decodeImageRgb(bytes: Uint8Array, limits: ImageLimits = {}): Promise<RgbImage> {
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
  const header = readImageHeader(bytes);
  const declared = header.width * header.height;
  if (declared > maxPixels) {
    throw new DomainError(
      ErrorCode.PayloadTooLarge,
      `the image declares ${header.width}×${header.height} = ${declared} pixels; the limit is ${maxPixels}`,
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
    // A plain JPEG's layout is known from the header read above: one decoder call instead of two.
    const plain = header.format === 'jpeg' ? plainJpegLayout(bytes) : undefined;
    if (plain !== undefined) {
      checkDecodedSize(header.width, header.height, plain);
      const native = mediaNative();
      image =
        native !== undefined
          ? decodeJpegNative(native, bytes, maxDecoded, timeoutSeconds)
          : await decodeUchar();
      if (image.width !== header.width || image.height !== header.height) {
        throw unsupported(
          `the jpeg header says ${header.width}×${header.height}, the decoder ${image.width}×${image.height}`,
        );
      }
    } else {
      const meta = await open().metadata();
      if (meta.format !== header.format) {
        throw unsupported(`the ${header.format} header does not match the decoder's ${meta.format}`);
      }
      if (meta.width * meta.height > maxPixels) {
        throw new DomainError(
          ErrorCode.PayloadTooLarge,
          `the image is ${meta.width}×${meta.height} pixels; the limit is ${maxPixels}`,
          { limit: maxPixels },
        );
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
    throw unsupported(`cannot decode the ${header.format} image: ${reason}`, err);
  }
  const { width, height, data } = image;
  if (data.length !== width * height * 3) {
    throw unsupported(`decoder returned ${data.length} bytes for ${width}×${height} RGB`);
  }
  return image;
}
