import { DomainError } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';

import { decodeWav } from './wav-decode';
import { encodeWav } from './testing/wav-encode';

/** A short stereo test signal with both signs, full-scale negative and a non-trivial right channel. */
const LEFT = [0, 0.5, -0.5, 0.25, -1, 0.999, 1 / 3];
const RIGHT = LEFT.map((x) => 0 - x / 2);

function expectDomainError(fn: () => unknown, code: string, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(DomainError);
  expect((caught as DomainError).code).toBe(code);
  expect((caught as DomainError).message).toMatch(message);
}

describe('decodeWav: sample formats (scaled as torchaudio.load)', () => {
  it('16-bit PCM stereo divides by 32768', () => {
    const wav = encodeWav([LEFT, RIGHT], 22050);
    const audio = decodeWav(wav);
    expect(audio.sampleRate).toBe(22050);
    expect(audio.frames).toBe(LEFT.length);
    expect(audio.channels).toHaveLength(2);
    expect(audio.format).toMatchObject({
      encoding: 'pcm',
      bitsPerSample: 16,
      channelCount: 2,
      extensible: false,
    });
    const expected = (x: number): number => Math.max(-32768, Math.min(32767, Math.round(x * 32768))) / 32768;
    expect(Array.from(audio.channels[0]!)).toEqual(LEFT.map((x) => Math.fround(expected(x))));
    expect(Array.from(audio.channels[1]!)).toEqual(RIGHT.map((x) => Math.fround(expected(x))));
    // int16 −32768 is exactly −1, +32767 is just below 1.
    expect(audio.channels[0]![4]).toBe(-1);
  });

  it('8-bit PCM is unsigned with offset 128', () => {
    const wav = encodeWav([LEFT], 8000, { bitsPerSample: 8 });
    // Stored bytes: round(x·128) + 128, clipped to 0..255.
    const raw = Array.from(wav.subarray(44, 44 + LEFT.length));
    expect(raw).toEqual(LEFT.map((x) => Math.max(-128, Math.min(127, Math.round(x * 128))) + 128));
    const audio = decodeWav(wav);
    expect(Array.from(audio.channels[0]!)).toEqual(raw.map((b) => (b - 128) / 128));
  });

  it('24-bit PCM sign-extends and divides by 2^23', () => {
    const audio = decodeWav(encodeWav([LEFT, RIGHT], 48000, { bitsPerSample: 24 }));
    const q = (x: number): number =>
      Math.fround(Math.max(-(2 ** 23), Math.min(2 ** 23 - 1, Math.round(x * 2 ** 23))) / 2 ** 23);
    expect(Array.from(audio.channels[0]!)).toEqual(LEFT.map(q));
    expect(Array.from(audio.channels[1]!)).toEqual(RIGHT.map(q));
    expect(audio.channels[0]![4]).toBe(-1);
  });

  it('32-bit PCM goes through sox 25-bit rounding and clips near full scale', () => {
    const wav = encodeWav([[0, 0.5, -0.5, 1, -1, 0]], 16000, { bitsPerSample: 32 });
    const view = new DataView(wav.buffer);
    // Patch two raw samples to check the rounding rule ((x + 64) & ~127) / 2^31 directly.
    view.setInt32(44 + 5 * 4, 192, true); // → 256 / 2^31
    view.setInt32(44 + 0 * 4, 191, true); // → 128 / 2^31
    const audio = decodeWav(wav);
    expect(Array.from(audio.channels[0]!)).toEqual([128 / 2 ** 31, 0.5, -0.5, 1, -1, 256 / 2 ** 31]);
  });

  it('IEEE float 32 and 64 keep their values (64-bit rounded to float32)', () => {
    const f32 = decodeWav(encodeWav([LEFT, RIGHT], 44100, { encoding: 'float', bitsPerSample: 32 }));
    expect(Array.from(f32.channels[1]!)).toEqual(RIGHT.map(Math.fround));
    const f64 = decodeWav(encodeWav([LEFT], 44100, { encoding: 'float', bitsPerSample: 64 }));
    expect(f64.format).toMatchObject({ encoding: 'float', bitsPerSample: 64 });
    expect(Array.from(f64.channels[0]!)).toEqual(LEFT.map(Math.fround));
  });

  it('WAVE_FORMAT_EXTENSIBLE, PCM and float, many channels', () => {
    const six = Array.from({ length: 6 }, (_, c) => LEFT.map((x) => x * (c + 1) * 0.1));
    const pcm = decodeWav(encodeWav(six, 48000, { bitsPerSample: 24, extensible: true }));
    expect(pcm.format).toMatchObject({
      encoding: 'pcm',
      bitsPerSample: 24,
      channelCount: 6,
      extensible: true,
    });
    six.forEach((ch, c) => {
      ch.forEach((x, i) => expect(Math.abs(pcm.channels[c]![i]! - x)).toBeLessThanOrEqual(2 ** -23));
    });
    const flt = decodeWav(encodeWav([LEFT], 32000, { encoding: 'float', extensible: true }));
    expect(flt.format).toMatchObject({ encoding: 'float', extensible: true });
    expect(Array.from(flt.channels[0]!)).toEqual(LEFT.map(Math.fround));
  });

  it('skips unknown chunks (LIST) and odd-size padding before data', () => {
    const plain = encodeWav([LEFT], 16000);
    const list = new Uint8Array([0x4c, 0x49, 0x53, 0x54, 3, 0, 0, 0, 1, 2, 3, 0]); // 'LIST', 3 bytes + pad
    const wav = new Uint8Array(plain.length + list.length);
    wav.set(plain.subarray(0, 36));
    wav.set(list, 36);
    wav.set(plain.subarray(36), 36 + list.length);
    expect(Array.from(decodeWav(wav).channels[0]!)).toEqual(Array.from(decodeWav(plain).channels[0]!));
  });

  it('reads to the end of the file when the sizes were left unset (streaming writers)', () => {
    const wav = encodeWav([LEFT], 16000);
    const view = new DataView(wav.buffer);
    view.setUint32(40, 0xffffffff, true);
    expect(decodeWav(wav).frames).toBe(LEFT.length);
    view.setUint32(4, 0, true);
    view.setUint32(40, 0, true);
    expect(decodeWav(wav).frames).toBe(LEFT.length);
  });
});

describe('decodeWav: hostile input', () => {
  const good = encodeWav([LEFT, RIGHT], 22050);

  it('0-byte file', () => {
    expectDomainError(() => decodeWav(new Uint8Array(0)), 'UNSUPPORTED_MEDIA', /empty/);
  });

  it('non-WAV bytes name the container and point at ffmpeg', () => {
    const ogg = new TextEncoder().encode('OggS\0\x02 some vorbis data');
    expectDomainError(
      () => decodeWav(ogg),
      'UNSUPPORTED_MEDIA',
      /not a RIFF\/WAVE file \(looks like Ogg\).*ffmpeg/,
    );
    const mp3 = new Uint8Array([0x49, 0x44, 0x33, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expectDomainError(() => decodeWav(mp3), 'UNSUPPORTED_MEDIA', /MP3.*ffmpeg/);
    expectDomainError(
      () => decodeWav(new TextEncoder().encode('hello, world')),
      'UNSUPPORTED_MEDIA',
      /ffmpeg/,
    );
  });

  it('truncated headers', () => {
    expectDomainError(() => decodeWav(good.subarray(0, 8)), 'UNSUPPORTED_MEDIA', /truncated RIFF header/);
    expectDomainError(() => decodeWav(good.subarray(0, 12)), 'UNSUPPORTED_MEDIA', /no fmt chunk/);
    expectDomainError(() => decodeWav(good.subarray(0, 30)), 'UNSUPPORTED_MEDIA', /fmt chunk/);
    expectDomainError(() => decodeWav(good.subarray(0, 40)), 'UNSUPPORTED_MEDIA', /no data chunk/);
  });

  it('truncated data', () => {
    expectDomainError(
      () => decodeWav(good.subarray(0, good.length - 3)),
      'UNSUPPORTED_MEDIA',
      /truncated WAV data/,
    );
  });

  it('unsupported encodings', () => {
    const alaw = good.slice();
    new DataView(alaw.buffer).setUint16(20, 6, true); // WAVE_FORMAT_ALAW
    expectDomainError(() => decodeWav(alaw), 'UNSUPPORTED_MEDIA', /format tag 0x6/);
    const bits12 = good.slice();
    new DataView(bits12.buffer).setUint16(34, 12, true);
    expectDomainError(() => decodeWav(bits12), 'UNSUPPORTED_MEDIA', /12 bits/);
    const ext = encodeWav([LEFT], 16000, { extensible: true });
    ext[50] = 0x42; // corrupt the sub-format GUID
    expectDomainError(() => decodeWav(ext), 'UNSUPPORTED_MEDIA', /sub-format GUID/);
  });

  it('absurd sample rates and channel counts', () => {
    const at = (offset: number, value: number, width: 16 | 32): Uint8Array => {
      const b = good.slice();
      const v = new DataView(b.buffer);
      if (width === 16) v.setUint16(offset, value, true);
      else v.setUint32(offset, value, true);
      return b;
    };
    expectDomainError(() => decodeWav(at(24, 0, 32)), 'INVALID_INPUT', /0 Hz/);
    expectDomainError(() => decodeWav(at(24, 7, 32)), 'INVALID_INPUT', /sample rate 7 Hz/);
    expectDomainError(
      () => decodeWav(at(24, 4_000_000_000, 32)),
      'INVALID_INPUT',
      /sample rate 4000000000 Hz/,
    );
    expectDomainError(() => decodeWav(at(22, 0, 16)), 'INVALID_INPUT', /0 channels/);
    const many = Array.from({ length: 65 }, () => [0.1, 0.2]);
    expectDomainError(() => decodeWav(encodeWav(many, 16000)), 'INVALID_INPUT', /65 channels/);
    expect(decodeWav(encodeWav(many, 16000), { maxChannels: 65 }).channels).toHaveLength(65);
    // A header whose block align disagrees with channels × bytes per sample.
    expectDomainError(() => decodeWav(at(32, 3, 16)), 'UNSUPPORTED_MEDIA', /block align/);
  });

  it('duration limit (configurable)', () => {
    const twoSeconds = encodeWav([new Float32Array(16000 * 2)], 16000);
    expect(decodeWav(twoSeconds, { maxDurationSeconds: 2 }).frames).toBe(32000);
    expectDomainError(
      () => decodeWav(twoSeconds, { maxDurationSeconds: 1.5 }),
      'PAYLOAD_TOO_LARGE',
      /2\.0 s is longer than the 1\.5 s limit/,
    );
  });

  it('a WAV with no samples', () => {
    expectDomainError(() => decodeWav(encodeWav([[], []], 16000)), 'INVALID_INPUT', /no samples/);
  });
});

describe('decodeWav: frameRanges', () => {
  it('decodes only the frames asked for, leaving the rest 0, on the typed and the DataView paths', () => {
    const left = Array.from({ length: 1000 }, (_, i) => Math.sin(i / 7) * 0.8);
    const right = left.map((x) => -x / 3);
    for (const options of [{}, { bitsPerSample: 24 as const }, { encoding: 'float' as const }]) {
      const wav = encodeWav([left, right], 8000, options);
      const whole = decodeWav(wav);
      let asked: [number, number] | undefined;
      const part = decodeWav(wav, {
        frameRanges: (frames, rate) => {
          asked = [frames, rate];
          return [
            [-5, 10],
            [500, 620.5],
            [990, 2000],
          ];
        },
      });
      expect(asked).toEqual([1000, 8000]);
      for (let c = 0; c < 2; c++) {
        for (let i = 0; i < 1000; i++) {
          const inside = i < 10 || (i >= 500 && i < 621) || i >= 990;
          expect(part.channels[c]![i], `channel ${c} frame ${i}`).toBe(inside ? whole.channels[c]![i] : 0);
        }
      }
    }
  });
});
