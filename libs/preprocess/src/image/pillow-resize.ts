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

function clampByte(acc: number): number {
  // acc is an exact integer (|acc| < 2^31); floor division is an arithmetic shift.
  const v = Math.floor(acc / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over rows `rowStart .. rowEnd − 1` of `src`. */
function horizontalPass(
  src: PixelImage,
  coeffs: AxisCoefficients,
  rowStart: number,
  rowEnd: number,
): PixelImage {
  const c = src.channels;
  const outW = coeffs.start.length;
  const outH = rowEnd - rowStart;
  const out = new Uint8Array(outW * outH * c);
  const { taps, start, length, weights } = coeffs;
  const data = src.data;
  for (let y = 0; y < outH; y++) {
    const rowBase = (rowStart + y) * src.width * c;
    const outBase = y * outW * c;
    for (let x = 0; x < outW; x++) {
      const xmin = start[x] ?? 0;
      const n = length[x] ?? 0;
      const kBase = x * taps;
      for (let ch = 0; ch < c; ch++) {
        let acc = HALF;
        let p = rowBase + xmin * c + ch;
        for (let j = 0; j < n; j++) {
          acc += (data[p] ?? 0) * (weights[kBase + j] ?? 0);
          p += c;
        }
        out[outBase + x * c + ch] = clampByte(acc);
      }
    }
  }
  return { width: outW, height: outH, channels: c, data: out };
}

/** Vertical pass; `coeffs.start` is relative to the first row of `src`. */
function verticalPass(src: PixelImage, coeffs: AxisCoefficients, rowOffset: number): PixelImage {
  const c = src.channels;
  const outW = src.width;
  const outH = coeffs.start.length;
  const stride = outW * c;
  const out = new Uint8Array(outW * outH * c);
  const { taps, start, length, weights } = coeffs;
  const data = src.data;
  for (let y = 0; y < outH; y++) {
    const ymin = (start[y] ?? 0) - rowOffset;
    const n = length[y] ?? 0;
    const kBase = y * taps;
    const outBase = y * stride;
    for (let i = 0; i < stride; i++) {
      let acc = HALF;
      let p = ymin * stride + i;
      for (let j = 0; j < n; j++) {
        acc += (data[p] ?? 0) * (weights[kBase + j] ?? 0);
        p += stride;
      }
      out[outBase + i] = clampByte(acc);
    }
  }
  return { width: outW, height: outH, channels: c, data: out };
}

function copyRegion(src: PixelImage, region: Region): PixelImage {
  const c = src.channels;
  const out = new Uint8Array(region.width * region.height * c);
  const rowBytes = region.width * c;
  for (let y = 0; y < region.height; y++) {
    const from = ((region.top + y) * src.width + region.left) * c;
    out.set(src.data.subarray(from, from + rowBytes), y * rowBytes);
  }
  return { width: region.width, height: region.height, channels: c, data: out };
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

  const needHorizontal = outWidth !== img.width;
  const needVertical = outHeight !== img.height;

  // Rows of the input that the vertical pass reads (all region rows when there is no vertical pass).
  let vertical: AxisCoefficients | undefined;
  let rowStart = top;
  let rowEnd = top + height;
  if (needVertical) {
    vertical = axisCoefficients(img.height, outHeight, top, height);
    rowStart = vertical.start[0] ?? 0;
    rowEnd = (vertical.start[height - 1] ?? 0) + (vertical.length[height - 1] ?? 0);
  }

  const columns = needHorizontal
    ? horizontalPass(img, axisCoefficients(img.width, outWidth, left, width), rowStart, rowEnd)
    : copyRegion(img, { left, top: rowStart, width, height: rowEnd - rowStart });

  return vertical === undefined ? columns : verticalPass(columns, vertical, rowStart);
}
