import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { SampleRange } from './clip-sampler';

/** Decoded audio: one float32 array per channel (planar), like torchaudio.load's `[channels, N]`. */
export interface DecodedAudio {
  readonly sampleRate: number;
  /** Frames (samples per channel). */
  readonly frames: number;
  /** `channels[c][i]` is channel c, frame i, scaled to [-1, 1) for integer PCM. */
  readonly channels: Float32Array[];
  /** What the file declared, for logs and errors. */
  readonly format: WavFormat;
}

export interface WavFormat {
  readonly encoding: 'pcm' | 'float';
  readonly bitsPerSample: 8 | 16 | 24 | 32 | 64;
  readonly channelCount: number;
  readonly sampleRate: number;
  /** True when the fmt chunk used WAVE_FORMAT_EXTENSIBLE (0xFFFE). */
  readonly extensible: boolean;
}

/** Limits applied while decoding; every one is checked before any sample is decoded. */
export interface WavLimits {
  /** Longest accepted audio, in seconds (default 600 = 10 minutes). */
  readonly maxDurationSeconds?: number;
  /** Most channels accepted (default 64). */
  readonly maxChannels?: number;
  /** Lowest accepted sample rate in Hz (default 1000). */
  readonly minSampleRate?: number;
  /** Highest accepted sample rate in Hz (default 384000). */
  readonly maxSampleRate?: number;
}

export interface WavDecodeOptions extends WavLimits {
  /**
   * Given the header's frame count and sample rate, the frame ranges to decode; every sample
   * outside them is left 0 (default: all frames). preprocessAudio decodes only the frames its
   * three clips read, about a third of a 17 s file.
   */
  readonly frameRanges?: (frames: number, sampleRate: number) => readonly SampleRange[];
}

export const DEFAULT_WAV_LIMITS: Required<WavLimits> = {
  maxDurationSeconds: 600,
  maxChannels: 64,
  minSampleRate: 1000,
  maxSampleRate: 384_000,
};

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** The tail shared by the KSDATAFORMAT_SUBTYPE_* GUIDs after their leading 16-bit format tag. */
const SUBTYPE_GUID_TAIL = [
  0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
];

function ascii(bytes: Uint8Array, at: number, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCharCode(bytes[at + i] ?? 0);
  return s;
}

function unsupported(message: string, details: Record<string, unknown> = {}): DomainError {
  return new DomainError(ErrorCode.UnsupportedMedia, message, details);
}

/** A short, printable description of what the bytes look like, for the non-WAV error. */
function sniffContainer(bytes: Uint8Array): string | undefined {
  const head4 = ascii(bytes, 0, 4);
  if (head4 === 'fLaC') return 'FLAC';
  if (head4 === 'OggS') return 'Ogg';
  if (head4 === 'RF64' || head4 === 'BW64') return 'RF64/BW64 (64-bit WAV)';
  if (head4 === 'RIFX') return 'big-endian RIFX WAV';
  if (head4 === 'FORM') return 'AIFF';
  if (ascii(bytes, 0, 3) === 'ID3' || (bytes[0] === 0xff && ((bytes[1] ?? 0) & 0xe0) === 0xe0))
    return 'MP3/AAC';
  if (ascii(bytes, 4, 4) === 'ftyp') return 'MP4/M4A';
  if (bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3)
    return 'Matroska/WebM';
  return undefined;
}

/**
 * Decodes a RIFF/WAVE file: integer PCM 8/16/24/32-bit, IEEE float 32/64-bit, plain or
 * WAVE_FORMAT_EXTENSIBLE, any channel count up to the limit. Samples are scaled as
 * `torchaudio.load` (sox_io backend, `normalize=True`) does (MODEL_SPEC §2.3.1): 8-bit is unsigned
 * `(x − 128)/128`, 16/24-bit divide by 2^15/2^23, 32-bit goes through sox's 25-bit rounding
 * `((x + 64) & ~127)/2^31` (values above 2^31 − 65 become 1). Float samples are kept as they are
 * (64-bit rounded to float32).
 *
 * Throws DomainError UNSUPPORTED_MEDIA for bytes that are not a WAV file or a WAV this decoder
 * cannot read, INVALID_INPUT for absurd header values, PAYLOAD_TOO_LARGE past the duration limit.
 */
export function decodeWav(bytes: Uint8Array, options: WavDecodeOptions = {}): DecodedAudio {
  const lim = { ...DEFAULT_WAV_LIMITS, ...options };
  if (bytes.length === 0) throw unsupported('audio: the file is empty (0 bytes)');
  if (bytes.length < 12 || ascii(bytes, 0, 4) !== 'RIFF' || ascii(bytes, 8, 4) !== 'WAVE') {
    if (bytes.length >= 4 && ascii(bytes, 0, 4) === 'RIFF' && bytes.length < 12)
      throw unsupported(
        `audio: truncated RIFF header (${bytes.length} bytes; a WAV header needs at least 44)`,
      );
    const kind = sniffContainer(bytes);
    throw unsupported(
      `audio: not a RIFF/WAVE file${kind === undefined ? '' : ` (looks like ${kind})`}; only WAV is decoded ` +
        'in-process, other containers need ffmpeg, which the ffmpeg adapter handles',
      { container: kind ?? 'unknown' },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  let format: WavFormat | undefined;
  let blockAlign = 0;
  let dataStart = -1;
  let dataLength = 0;
  let at = 12;
  while (at + 8 <= bytes.length) {
    const id = ascii(bytes, at, 4);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + size > bytes.length)
        throw unsupported(`audio: truncated or malformed WAV fmt chunk (${size} bytes declared)`);
      const parsed = parseFmt(view, body, size);
      format = parsed.format;
      blockAlign = parsed.blockAlign;
    } else if (id === 'data') {
      if (format === undefined) throw unsupported('audio: WAV data chunk comes before its fmt chunk');
      dataStart = body;
      // A writer that could not seek back leaves 0xFFFFFFFF here, or 0 in both the RIFF and the data
      // size: read to the end of the file.
      const available = bytes.length - body;
      const riffSize = view.getUint32(4, true);
      const unknown = size === 0xffffffff || (size === 0 && (riffSize === 0 || riffSize === 0xffffffff));
      dataLength = unknown ? available : size;
      if (dataLength > available) {
        throw unsupported(
          `audio: truncated WAV data (header declares ${size} bytes, only ${available} present)`,
          { declared: size, present: available },
        );
      }
      break;
    }
    at = body + size + (size & 1); // chunks are padded to an even size
  }
  if (format === undefined) throw unsupported('audio: truncated WAV header (no fmt chunk)');
  if (dataStart < 0) throw unsupported('audio: truncated WAV (no data chunk)');

  const { channelCount, sampleRate } = format;
  if (channelCount > lim.maxChannels) {
    throw new DomainError(
      ErrorCode.InvalidInput,
      `audio: ${channelCount} channels is more than the ${lim.maxChannels} accepted`,
      { channels: channelCount, limit: lim.maxChannels },
    );
  }
  if (!(sampleRate >= lim.minSampleRate && sampleRate <= lim.maxSampleRate)) {
    throw new DomainError(
      ErrorCode.InvalidInput,
      `audio: sample rate ${sampleRate} Hz is outside the accepted ${lim.minSampleRate}..${lim.maxSampleRate} Hz`,
      { sampleRate, min: lim.minSampleRate, max: lim.maxSampleRate },
    );
  }
  const frames = Math.floor(dataLength / blockAlign);
  if (frames === 0) throw new DomainError(ErrorCode.InvalidInput, 'audio: the WAV file has no samples');
  const seconds = frames / sampleRate;
  if (seconds > lim.maxDurationSeconds) {
    throw new DomainError(
      ErrorCode.PayloadTooLarge,
      `audio: ${seconds.toFixed(1)} s is longer than the ${lim.maxDurationSeconds} s limit`,
      { seconds, limit: lim.maxDurationSeconds },
    );
  }

  const channels = Array.from({ length: channelCount }, () => new Float32Array(frames));
  const ranges = (options.frameRanges?.(frames, sampleRate) ?? [[0, frames]]).map(([a, b]): SampleRange => [
    Math.max(0, Math.min(frames, Math.floor(a))),
    Math.max(0, Math.min(frames, Math.ceil(b))),
  ]);
  const samples = typedSamples(bytes, dataStart, frames * channelCount, format);
  if (samples !== undefined) {
    // 16-bit PCM and float32, the common cases: the same values through a typed view, without a
    // DataView call per sample. x / 32768 and x · 2^−15 are the same exact value.
    const scale = format.encoding === 'pcm' ? 1 / 32768 : 1;
    for (let c = 0; c < channelCount; c++) {
      const out = channels[c]!;
      for (const [a, b] of ranges)
        for (let i = a, j = a * channelCount + c; i < b; i++, j += channelCount) out[i] = samples[j]! * scale;
    }
    return { sampleRate, frames, channels, format };
  }
  const bytesPerSample = format.bitsPerSample / 8;
  const read = sampleReader(view, format);
  for (let c = 0; c < channelCount; c++) {
    const out = channels[c]!;
    for (const [a, b] of ranges) {
      let p = dataStart + a * blockAlign + c * bytesPerSample;
      for (let i = a; i < b; i++, p += blockAlign) out[i] = read(p);
    }
  }
  return { sampleRate, frames, channels, format };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The interleaved samples as an Int16Array (16-bit PCM) or Float32Array (float32), viewed in place
 * where the data is aligned and copied where it is not; undefined for the other encodings (and on
 * a big-endian host).
 */
function typedSamples(
  bytes: Uint8Array,
  dataStart: number,
  count: number,
  format: WavFormat,
): Int16Array | Float32Array | undefined {
  const pcm16 = format.encoding === 'pcm' && format.bitsPerSample === 16;
  const float32 = format.encoding === 'float' && format.bitsPerSample === 32;
  if (!LITTLE_ENDIAN || !(pcm16 || float32)) return undefined;
  const size = pcm16 ? 2 : 4;
  let buffer = bytes.buffer;
  let offset = bytes.byteOffset + dataStart;
  if (offset % size !== 0) {
    // A copy (Buffer#slice would be a view of the same, misaligned memory).
    const copy = new Uint8Array(count * size);
    copy.set(bytes.subarray(dataStart, dataStart + count * size));
    buffer = copy.buffer;
    offset = 0;
  }
  return pcm16 ? new Int16Array(buffer, offset, count) : new Float32Array(buffer, offset, count);
}

function parseFmt(view: DataView, body: number, size: number): { format: WavFormat; blockAlign: number } {
  let tag = view.getUint16(body, true);
  const channelCount = view.getUint16(body + 2, true);
  const sampleRate = view.getUint32(body + 4, true);
  const blockAlign = view.getUint16(body + 12, true);
  const bits = view.getUint16(body + 14, true);
  const extensible = tag === WAVE_FORMAT_EXTENSIBLE;
  if (extensible) {
    if (size < 40)
      throw unsupported(`audio: WAVE_FORMAT_EXTENSIBLE fmt chunk is truncated (${size} of 40 bytes)`);
    tag = view.getUint16(body + 24, true);
    for (let i = 0; i < SUBTYPE_GUID_TAIL.length; i++) {
      if (view.getUint8(body + 26 + i) !== SUBTYPE_GUID_TAIL[i])
        throw unsupported('audio: WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID');
    }
  }
  if (channelCount === 0)
    throw new DomainError(ErrorCode.InvalidInput, 'audio: the WAV header declares 0 channels');
  if (sampleRate === 0)
    throw new DomainError(ErrorCode.InvalidInput, 'audio: the WAV header declares a 0 Hz sample rate');
  let encoding: WavFormat['encoding'];
  if (tag === WAVE_FORMAT_PCM && (bits === 8 || bits === 16 || bits === 24 || bits === 32)) encoding = 'pcm';
  else if (tag === WAVE_FORMAT_IEEE_FLOAT && (bits === 32 || bits === 64)) encoding = 'float';
  else {
    throw unsupported(
      `audio: unsupported WAV encoding (format tag 0x${tag.toString(16)}, ${bits} bits); supported are PCM ` +
        '8/16/24/32-bit and IEEE float 32/64-bit; other codecs need the ffmpeg adapter',
      { formatTag: tag, bitsPerSample: bits },
    );
  }
  const bitsPerSample = bits;
  if (blockAlign !== channelCount * (bitsPerSample / 8)) {
    throw unsupported(
      `audio: inconsistent WAV header (block align ${blockAlign} for ${channelCount} × ${bitsPerSample}-bit samples)`,
    );
  }
  return { format: { encoding, bitsPerSample, channelCount, sampleRate, extensible }, blockAlign };
}

/** sox's SOX_SAMPLE_TO_FLOAT_32BIT: round to a multiple of 128, clip near full scale, divide by 2^31. */
function soxInt32ToFloat(x: number): number {
  if (x > 0x7fffffff - 64) return 1;
  return Math.fround((Math.floor((x + 64) / 128) * 128) / 2147483648);
}

function sampleReader(view: DataView, format: WavFormat): (at: number) => number {
  if (format.encoding === 'float') {
    return format.bitsPerSample === 32
      ? (at) => view.getFloat32(at, true)
      : (at) => Math.fround(view.getFloat64(at, true));
  }
  switch (format.bitsPerSample) {
    case 8:
      return (at) => (view.getUint8(at) - 128) / 128;
    case 16:
      return (at) => view.getInt16(at, true) / 32768;
    case 24:
      return (at) => {
        const v = view.getUint8(at) | (view.getUint8(at + 1) << 8) | (view.getInt8(at + 2) << 16);
        return v / 8388608;
      };
    case 32:
      return (at) => soxInt32ToFloat(view.getInt32(at, true));
    case 64:
      throw unsupported('audio: 64-bit integer PCM is not supported');
  }
}
