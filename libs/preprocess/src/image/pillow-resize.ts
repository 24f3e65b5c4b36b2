import { mediaNative } from '../native/media-native';
import { newTensor, type TensorAllocator } from '../reusable-buffers';

/**
 * Pillow's 8-bit antialiased bicubic resampler (MODEL_SPEC §2.1 step 2), reimplemented on
 * interleaved uint8 pixels. It is a separable convolution: the horizontal pass runs first and its
 * output is rounded and clamped to uint8, then the vertical pass. When downscaling, the filter's
 * support widens by the scale factor (antialiasing). Weights are normalised in double precision and
 * then quantised to 22 fractional bits; each output is `(2^21 + Σ k·p) >> 22`, clamped to 0..255.
 *
 * The floating-point steps follow the order Pillow evaluates them in, so that the quantised
 * coefficients are the same bit for bit.
 */

/** Fractional bits of the fixed-point coefficients (32 − 8 − 2). */
export const PRECISION_BITS = 22;

const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

/** Support of the bicubic filter at scale 1. */
const BICUBIC_SUPPORT = 2;

/** Interleaved 8-bit pixels, row-major: `data[(y * width + x) * channels + c]`. */
export interface PixelImage {
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  readonly data: Uint8Array;
}

/** A rectangle in output coordinates. */
export interface Region {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

/** Bicubic kernel with a = −0.5, in Horner form. */
export function bicubicKernel(x: number): number {
  const a = -0.5;
  const t = x < 0 ? -x : x;
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/**
 * Fixed-point coefficients for output indices `first .. first + count − 1` of a resize from
 * `inSize` to `outSize` along one axis. Output index `first + i` reads input samples
 * `start[i] .. start[i] + length[i] − 1` with weights `weights[i * taps + j]`.
 */
export interface AxisCoefficients {
  readonly taps: number;
  readonly start: Int32Array;
  readonly length: Int32Array;
  readonly weights: Int32Array;
}

/** Quantises one normalised weight the way Pillow does (round half away from zero, truncate). */
function quantise(w: number): number {
  return w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
}

export function axisCoefficients(
  inSize: number,
  outSize: number,
  first = 0,
  count = outSize - first,
): AxisCoefficients {
  if (!Number.isInteger(inSize) || !Number.isInteger(outSize) || inSize < 1 || outSize < 1) {
    throw new RangeError(`resize sizes must be positive integers (got ${inSize} → ${outSize})`);
  }
  if (
    !Number.isInteger(first) ||
    !Number.isInteger(count) ||
    first < 0 ||
    count < 0 ||
    first + count > outSize
  ) {
    throw new RangeError(`output range ${first}+${count} is outside 0..${outSize}`);
  }
  const scale = inSize / outSize;
  const filterScale = scale < 1 ? 1 : scale;
  const support = BICUBIC_SUPPORT * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const inverse = 1 / filterScale;
  const start = new Int32Array(count);
  const length = new Int32Array(count);
  const weights = new Int32Array(count * taps);
  const raw = new Float64Array(taps);
  for (let i = 0; i < count; i++) {
    const center = (first + i + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    const n = xmax - xmin;
    let total = 0;
    for (let j = 0; j < n; j++) {
      const w = bicubicKernel((j + xmin - center + 0.5) * inverse);
      raw[j] = w;
      total += w;
    }
    for (let j = 0; j < n; j++) {
      const w = raw[j] ?? 0;
      weights[i * taps + j] = quantise(total !== 0 ? w / total : w);
    }
    start[i] = xmin;
    length[i] = n;
  }
  return { taps, start, length, weights };
}

/** Most coefficient tables kept for reuse (a worker sees a handful of image sizes at a time). */
const COEFFICIENT_CACHE_SIZE = 32;
const coefficientCache = new Map<string, AxisCoefficients>();

/**
 * `axisCoefficients`, memoised: a service resizes many images of the same few sizes, and the
 * tables are never written after they are made (the resize passes only read them).
 */
function cachedCoefficients(inSize: number, outSize: number, first: number, count: number): AxisCoefficients {
  const key = `${inSize} ${outSize} ${first} ${count}`;
  let coeffs = coefficientCache.get(key);
  if (coeffs === undefined) {
    coeffs = axisCoefficients(inSize, outSize, first, count);
    if (coefficientCache.size >= COEFFICIENT_CACHE_SIZE) coefficientCache.clear();
    coefficientCache.set(key, coeffs);
  }
  return coeffs;
}

/** Scale of the 22-bit fixed point result: `acc >= ACC_256` means the value is 256 or more. */
const ACC_256 = 256 * ONE;

/*
 * The hot loops below read typed arrays at indices that are in bounds by construction (the
 * coefficient windows lie inside the input, see axisCoefficients), so `as number` only drops the
 * `undefined` that noUncheckedIndexedAccess adds. The accumulators are exact integers: with
 * Pillow's int32 bound (|Σ k·p| < 2^31) they stay small integers in V8, and should they ever not,
 * a double still holds them exactly, and the clamp compares before shifting, so the result is
 * `clamp(floor(acc / 2^22), 0, 255)` in every case.
 */

/** Rows `rowStart .. rowEnd − 1` of an interleaved 8-bit image whose rows are `stride` bytes apart. */
interface SourceRows {
  readonly data: Uint8Array;
  readonly stride: number;
  /** Byte offset of column 0 within each row. */
  readonly offset: number;
  /** The image row that `data`'s row 0 holds. */
  readonly firstRow: number;
}

/** Horizontal pass over image rows `rowStart .. rowEnd − 1`; returns `coeffs`' columns of them. */
function horizontalPass(
  src: PixelImage,
  coeffs: AxisCoefficients,
  rowStart: number,
  rowEnd: number,
): Uint8Array {
  const c = src.channels;
  const { taps, start, length, weights } = coeffs;
  const outW = start.length;
  const out = new Uint8Array(outW * (rowEnd - rowStart) * c);
  const data = src.data;
  const srcStride = src.width * c;
  let o = 0;
  if (c === 3) {
    for (let y = rowStart; y < rowEnd; y++) {
      const rowBase = y * srcStride;
      for (let x = 0; x < outW; x++) {
        let p = rowBase + (start[x] as number) * 3;
        const end = p + (length[x] as number) * 3;
        let k = x * taps;
        let r = HALF;
        let g = HALF;
        let b = HALF;
        for (; p < end; p += 3) {
          const w = weights[k++] as number;
          r += (data[p] as number) * w;
          g += (data[p + 1] as number) * w;
          b += (data[p + 2] as number) * w;
        }
        out[o] = r <= 0 ? 0 : r >= ACC_256 ? 255 : r >> PRECISION_BITS;
        out[o + 1] = g <= 0 ? 0 : g >= ACC_256 ? 255 : g >> PRECISION_BITS;
        out[o + 2] = b <= 0 ? 0 : b >= ACC_256 ? 255 : b >> PRECISION_BITS;
        o += 3;
      }
    }
    return out;
  }
  for (let y = rowStart; y < rowEnd; y++) {
    const rowBase = y * srcStride;
    for (let x = 0; x < outW; x++) {
      const first = rowBase + (start[x] as number) * c;
      const end = first + (length[x] as number) * c;
      const kBase = x * taps;
      for (let ch = 0; ch < c; ch++) {
        let acc = HALF;
        let k = kBase;
        for (let p = first + ch; p < end; p += c) acc += (data[p] as number) * (weights[k++] as number);
        out[o++] = acc <= 0 ? 0 : acc >= ACC_256 ? 255 : acc >> PRECISION_BITS;
      }
    }
  }
  return out;
}

/** Vertical pass to interleaved bytes, `width` pixels a row; `coeffs.start` counts image rows. */
function verticalPass(
  src: SourceRows,
  channels: number,
  width: number,
  coeffs: AxisCoefficients,
): Uint8Array {
  const { taps, start, length, weights } = coeffs;
  const outH = start.length;
  const rowBytes = width * channels;
  const out = new Uint8Array(rowBytes * outH);
  const { data, stride } = src;
  let o = 0;
  for (let y = 0; y < outH; y++) {
    const base = ((start[y] as number) - src.firstRow) * stride + src.offset;
    const end = base + (length[y] as number) * stride;
    const kBase = y * taps;
    for (let i = 0; i < rowBytes; i++) {
      let acc = HALF;
      let k = kBase;
      for (let p = base + i; p < end; p += stride) acc += (data[p] as number) * (weights[k++] as number);
      out[o++] = acc <= 0 ? 0 : acc >= ACC_256 ? 255 : acc >> PRECISION_BITS;
    }
  }
  return out;
}

/**
 * Vertical pass straight to planes: output sample v of channel ch becomes `tables[ch][v]` at
 * `planes[ch · width · outH + y · width + x]`.
 */
function verticalPassToPlanes(
  src: SourceRows,
  channels: number,
  width: number,
  coeffs: AxisCoefficients,
  tables: readonly Float32Array[],
): Float32Array {
  const { taps, start, length, weights } = coeffs;
  const outH = start.length;
  const plane = width * outH;
  const out = new Float32Array(plane * channels);
  const { data, stride } = src;
  if (channels === 3) {
    const [t0, t1, t2] = tables as readonly [Float32Array, Float32Array, Float32Array];
    let o = 0;
    for (let y = 0; y < outH; y++) {
      const base = ((start[y] as number) - src.firstRow) * stride + src.offset;
      const end = base + (length[y] as number) * stride;
      const kBase = y * taps;
      for (let x = 0; x < width; x++) {
        let r = HALF;
        let g = HALF;
        let b = HALF;
        let k = kBase;
        for (let p = base + x * 3; p < end; p += stride) {
          const w = weights[k++] as number;
          r += (data[p] as number) * w;
          g += (data[p + 1] as number) * w;
          b += (data[p + 2] as number) * w;
        }
        out[o] = t0[r <= 0 ? 0 : r >= ACC_256 ? 255 : r >> PRECISION_BITS] as number;
        out[o + plane] = t1[g <= 0 ? 0 : g >= ACC_256 ? 255 : g >> PRECISION_BITS] as number;
        out[o + 2 * plane] = t2[b <= 0 ? 0 : b >= ACC_256 ? 255 : b >> PRECISION_BITS] as number;
        o++;
      }
    }
    return out;
  }
  for (let y = 0; y < outH; y++) {
    const base = ((start[y] as number) - src.firstRow) * stride + src.offset;
    const end = base + (length[y] as number) * stride;
    const kBase = y * taps;
    for (let x = 0; x < width; x++) {
      for (let ch = 0; ch < channels; ch++) {
        let acc = HALF;
        let k = kBase;
        for (let p = base + x * channels + ch; p < end; p += stride) {
          acc += (data[p] as number) * (weights[k++] as number);
        }
        const v = acc <= 0 ? 0 : acc >= ACC_256 ? 255 : acc >> PRECISION_BITS;
        out[ch * plane + y * width + x] = (tables[ch] as Float32Array)[v] as number;
      }
    }
  }
  return out;
}

/** Image rows `top .. top + height − 1` of `src`, `width` pixels each, as planes through `tables`. */
function rowsToPlanes(
  src: SourceRows,
  channels: number,
  width: number,
  top: number,
  height: number,
  tables: readonly Float32Array[],
): Float32Array {
  const plane = width * height;
  const out = new Float32Array(plane * channels);
  const { data, stride } = src;
  for (let ch = 0; ch < channels; ch++) {
    const table = tables[ch] as Float32Array;
    let o = ch * plane;
    for (let y = 0; y < height; y++) {
      const base = (top + y - src.firstRow) * stride + src.offset;
      const end = base + width * channels;
      for (let p = base + ch; p < end; p += channels) {
        out[o++] = table[data[p] as number] as number;
      }
    }
  }
  return out;
}

function copyRegion(src: PixelImage, region: Region): Uint8Array {
  const c = src.channels;
  const out = new Uint8Array(region.width * region.height * c);
  const rowBytes = region.width * c;
  for (let y = 0; y < region.height; y++) {
    const from = ((region.top + y) * src.width + region.left) * c;
    out.set(src.data.subarray(from, from + rowBytes), y * rowBytes);
  }
  return out;
}

function checkImage(img: PixelImage): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`image size must be positive integers (got ${width}×${height})`);
  }
  if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`bad channel count ${channels}`);
  if (data.length !== width * height * channels) {
    throw new RangeError(`pixel buffer holds ${data.length} bytes, expected ${width}×${height}×${channels}`);
  }
}

/** What both entry points share: the checked arguments and the horizontal pass's output. */
interface ResizePlan {
  /** The vertical pass's coefficients (rows relative to the image), or none when the height is kept. */
  readonly vertical: AxisCoefficients | undefined;
  /** The rows the vertical pass reads, already horizontally resampled (or the input itself). */
  readonly rows: SourceRows;
}

function checkResize(img: PixelImage, outWidth: number, outHeight: number, region: Region): void {
  checkImage(img);
  if (!Number.isInteger(outWidth) || !Number.isInteger(outHeight) || outWidth < 1 || outHeight < 1) {
    throw new RangeError(`output size must be positive integers (got ${outWidth}×${outHeight})`);
  }
  const { left, top, width, height } = region;
  if (
    ![left, top, width, height].every((v) => Number.isInteger(v) && v >= 0) ||
    width < 1 ||
    height < 1 ||
    left + width > outWidth ||
    top + height > outHeight
  ) {
    throw new RangeError(`region ${width}×${height}+${left}+${top} is outside ${outWidth}×${outHeight}`);
  }
}

function plan(img: PixelImage, outWidth: number, outHeight: number, region: Region): ResizePlan {
  checkResize(img, outWidth, outHeight, region);
  const { left, top, width, height } = region;
  // Rows of the input that the vertical pass reads (all region rows when there is no vertical pass).
  let vertical: AxisCoefficients | undefined;
  let rowStart = top;
  let rowEnd = top + height;
  if (outHeight !== img.height) {
    vertical = cachedCoefficients(img.height, outHeight, top, height);
    rowStart = vertical.start[0] as number;
    rowEnd = (vertical.start[height - 1] as number) + (vertical.length[height - 1] as number);
  }
  const c = img.channels;
  const rows: SourceRows =
    outWidth !== img.width
      ? {
          data: horizontalPass(img, cachedCoefficients(img.width, outWidth, left, width), rowStart, rowEnd),
          stride: width * c,
          offset: 0,
          firstRow: rowStart,
        }
      : { data: img.data, stride: img.width * c, offset: left * c, firstRow: 0 };
  return { vertical, rows };
}

/**
 * Resizes `img` to `outWidth × outHeight` with Pillow's bicubic filter and returns only `region`
 * of the result (default: all of it). Every output pixel depends only on its own coefficients, so
 * the region equals the same crop of the full resize, while the work and memory stay bounded by
 * the region (a long thin image is never materialised at full output size).
 */
export function pillowResizeBicubic(
  img: PixelImage,
  outWidth: number,
  outHeight: number,
  region: Region = { left: 0, top: 0, width: outWidth, height: outHeight },
): PixelImage {
  const { vertical, rows } = plan(img, outWidth, outHeight, region);
  const { width, height } = region;
  const c = img.channels;
  let data: Uint8Array;
  if (vertical !== undefined) data = verticalPass(rows, c, width, vertical);
  else if (rows.data !== img.data) data = rows.data;
  else data = copyRegion(img, region);
  return { width, height, channels: c, data };
}

/** Three 256-entry tables as one 768-entry array (made once per table set). */
const packed = new WeakMap<readonly Float32Array[], Float32Array>();
function packedTables(tables: readonly Float32Array[]): Float32Array {
  let one = packed.get(tables);
  if (one === undefined) {
    one = new Float32Array(768);
    tables.forEach((t, c) => one!.set(t, c * 256));
    packed.set(tables, one);
  }
  return one;
}

/**
 * `pillowResizeBicubic` followed by a per-channel byte → float32 mapping, laid out as planes
 * (CHW): sample value v of channel ch becomes `tables[ch][v]`. The mapping is applied as the
 * vertical pass produces each sample, so the resized bytes are never stored.
 */
export function pillowResizeBicubicToPlanes(
  img: PixelImage,
  outWidth: number,
  outHeight: number,
  region: Region,
  tables: readonly Float32Array[],
  allocate: TensorAllocator = newTensor,
): Float32Array {
  if (tables.length !== img.channels || tables.some((t) => t.length !== 256)) {
    throw new RangeError(`need ${img.channels} tables of 256 entries (got ${tables.length})`);
  }
  const native = mediaNative();
  if (native !== undefined && img.channels === 3 && outWidth !== img.width && outHeight !== img.height) {
    // The same two passes in C (native/image.c), on the same coefficient tables.
    checkResize(img, outWidth, outHeight, region);
    const h = cachedCoefficients(img.width, outWidth, region.left, region.width);
    const v = cachedCoefficients(img.height, outHeight, region.top, region.height);
    const last = region.height - 1;
    // Every element is written by the native loops: no zero fill (memset was ~4 % of an image's
    // time), and a buffer of its own, so the pool moves it to the caller.
    const out = allocate(region.width * region.height * 3);
    native.resizeBicubicToPlanes(
      img.data,
      img.width,
      img.height,
      h.start,
      h.length,
      h.weights,
      h.taps,
      v.start,
      v.length,
      v.weights,
      v.taps,
      v.start[0] as number,
      (v.start[last] as number) + (v.length[last] as number),
      packedTables(tables),
      out,
    );
    return out;
  }
  const { vertical, rows } = plan(img, outWidth, outHeight, region);
  const { width, height } = region;
  if (vertical !== undefined) return verticalPassToPlanes(rows, img.channels, width, vertical, tables);
  return rowsToPlanes(rows, img.channels, width, region.top, height, tables);
}
