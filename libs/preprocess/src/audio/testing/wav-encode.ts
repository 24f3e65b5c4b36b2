// Test support only (not built, not exported): writes the WAV variants the decoder's tests read.
/** Options for `encodeWav`. */
export interface WavEncodeOptions {
  readonly encoding?: 'pcm' | 'float';
  /** 8/16/24/32 for PCM, 32/64 for float (default 16-bit PCM). */
  readonly bitsPerSample?: 8 | 16 | 24 | 32 | 64;
  /** Write a WAVE_FORMAT_EXTENSIBLE fmt chunk (40 bytes) instead of the plain 16-byte one. */
  readonly extensible?: boolean;
}

/**
 * Writes planar float samples in [-1, 1] as a RIFF/WAVE file. Integer PCM is `round(x·2^(b−1))`
 * clipped to the type's range (8-bit stored unsigned, offset 128). Used by tests and fixtures; the
 * inverse of `decodeWav` up to quantisation.
 */
export function encodeWav(
  channels: readonly ArrayLike<number>[],
  sampleRate: number,
  options: WavEncodeOptions = {},
): Uint8Array {
  const encoding = options.encoding ?? 'pcm';
  const bits = options.bitsPerSample ?? (encoding === 'float' ? 32 : 16);
  const valid = encoding === 'pcm' ? bits !== 64 : bits === 32 || bits === 64;
  if (!valid) throw new RangeError(`encodeWav: ${bits}-bit ${encoding} is not a WAV sample format`);
  const channelCount = channels.length;
  const frames = channels[0]?.length ?? 0;
  if (channels.some((c) => c.length !== frames)) throw new RangeError('encodeWav: channels differ in length');
  const bytesPerSample = bits / 8;
  const blockAlign = channelCount * bytesPerSample;
  const dataBytes = frames * blockAlign;
  const fmtBytes = options.extensible === true ? 40 : 16;
  const total = 12 + 8 + fmtBytes + 8 + dataBytes + (dataBytes & 1);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  const text = (at: number, s: string): void => {
    for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
  };
  const tag = encoding === 'pcm' ? 1 : 3;
  text(0, 'RIFF');
  view.setUint32(4, total - 8, true);
  text(8, 'WAVE');
  text(12, 'fmt ');
  view.setUint32(16, fmtBytes, true);
  view.setUint16(20, options.extensible === true ? 0xfffe : tag, true);
  view.setUint16(22, channelCount, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * blockAlign, true);
  view.setUint16(32, blockAlign, true);
  view.setUint16(34, bits, true);
  if (options.extensible === true) {
    view.setUint16(36, 22, true); // cbSize
    view.setUint16(38, bits, true); // wValidBitsPerSample
    view.setUint32(40, 0, true); // dwChannelMask: unspecified
    // SubFormat GUID {0000000X-0000-0010-8000-00AA00389B71}
    view.setUint16(44, tag, true);
    out.set([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71], 46);
  }
  const dataAt = 12 + 8 + fmtBytes;
  text(dataAt, 'data');
  view.setUint32(dataAt + 4, dataBytes, true);
  const full = 2 ** (bits - 1);
  const quantise = (x: number): number => Math.max(-full, Math.min(full - 1, Math.round(x * full)));
  let p = dataAt + 8;
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < channelCount; c++, p += bytesPerSample) {
      const x = channels[c]![i]!;
      if (encoding === 'float') {
        if (bits === 32) view.setFloat32(p, x, true);
        else view.setFloat64(p, x, true);
        continue;
      }
      const q = quantise(x);
      if (bits === 8) view.setUint8(p, q + 128);
      else if (bits === 16) view.setInt16(p, q, true);
      else if (bits === 24) {
        view.setUint8(p, q & 0xff);
        view.setUint8(p + 1, (q >> 8) & 0xff);
        view.setInt8(p + 2, q >> 16);
      } else view.setInt32(p, q, true);
    }
  }
  return out;
}
