import { describe, expect, it } from 'vitest';
import { FALLBACK_CONFIG, readConfig } from './config';
import {
  base64Length,
  checkFile,
  checkRequestSize,
  checkText,
  extensionOf,
  mediaTypeOf,
  recordingFormat,
} from './inputs';

const config = readConfig({
  limits: {
    max_input_bytes: 2 * 1024 * 1024,
    max_body_bytes: 4 * 1024 * 1024,
    max_inputs: 3,
    max_tokens: 512,
  },
  formats: {
    image: ['image/jpeg', 'image/png'],
    video: ['video/mp4'],
    audio: ['wav', 'mp3', 'webm'],
    point_cloud: ['npy', 'ply', 'xyz', 'txt'],
  },
});

describe('checking chosen files', () => {
  it('accepts a JPEG image and keeps its media type', () => {
    expect(checkFile('image', { name: 'girl.jpg', type: 'image/jpeg', size: 12895 }, config)).toEqual({
      ok: true,
      mediaType: 'image/jpeg',
      format: '',
    });
  });

  it('explains a text file chosen as an image, listing what is accepted', () => {
    const r = checkFile('image', { name: 'girl.txt', type: 'text/plain', size: 10 }, config);
    expect(r).toEqual({ ok: false, message: 'girl.txt is not an image (accepted: image/jpeg, image/png)' });
  });

  it('guesses the type from the extension when the browser gives none', () => {
    expect(mediaTypeOf({ name: 'clip.MP4', type: '', size: 1 })).toBe('video/mp4');
    expect(checkFile('video', { name: 'clip.mp4', type: '', size: 5 }, config)).toMatchObject({ ok: true });
    expect(checkFile('video', { name: 'clip', type: '', size: 5 }, config)).toMatchObject({ ok: false });
  });

  it('judges audio and point clouds by extension and returns the API format', () => {
    expect(checkFile('audio', { name: 'Song.WAV', type: 'audio/x-wav', size: 100 }, config)).toEqual({
      ok: true,
      mediaType: '',
      format: 'wav',
    });
    expect(checkFile('audio', { name: 'song.aiff', type: 'audio/aiff', size: 100 }, config)).toEqual({
      ok: false,
      message: 'song.aiff is not a supported audio file (accepted: .wav, .mp3, .webm)',
    });
    expect(checkFile('point_cloud', { name: 'plane.ply', type: '', size: 100 }, config)).toMatchObject({
      ok: true,
      format: 'ply',
    });
    expect(checkFile('point_cloud', { name: 'plane.stl', type: '', size: 100 }, config)).toMatchObject({
      ok: false,
    });
  });

  it('refuses files over the per-input limit and empty files, saying how big', () => {
    const big = checkFile('audio', { name: 'long.wav', type: 'audio/wav', size: 3 * 1024 * 1024 }, config);
    expect(big).toEqual({ ok: false, message: 'long.wav is too large: 3 MB, the limit is 2 MB per input' });
    expect(checkFile('image', { name: 'e.png', type: 'image/png', size: 0 }, config)).toEqual({
      ok: false,
      message: 'e.png is empty',
    });
  });

  it('reads extensions', () => {
    expect(extensionOf('a.b.PLY')).toBe('ply');
    expect(extensionOf('.hidden')).toBe('');
    expect(extensionOf('noext')).toBe('');
    expect(extensionOf('dot.')).toBe('');
  });
});

describe('request-level checks', () => {
  it('counts inputs and the base64 size of the body', () => {
    expect(base64Length(0)).toBe(0);
    expect(base64Length(1)).toBe(4);
    expect(base64Length(3)).toBe(4);
    expect(base64Length(4)).toBe(8);
    expect(checkRequestSize([{ bytes: 1000, textLength: 0 }], config)).toBeUndefined();
    expect(
      checkRequestSize(
        Array.from({ length: 4 }, () => ({ bytes: 1, textLength: 0 })),
        config,
      ),
    ).toMatch(/4 inputs are more than the 3/);
    const tooBig = checkRequestSize(
      [
        { bytes: 2 * 1024 * 1024, textLength: 0 },
        { bytes: 2 * 1024 * 1024, textLength: 0 },
      ],
      config,
    );
    expect(tooBig).toMatch(/over the server's limit of 4 MB/);
  });

  it('wants text to embed', () => {
    expect(checkText('  ')).toBeDefined();
    expect(checkText('a dog')).toBeUndefined();
  });

  it('names the API format of a microphone recording', () => {
    expect(recordingFormat('audio/webm;codecs=opus')).toBe('webm');
    expect(recordingFormat('audio/ogg; codecs=opus')).toBe('ogg');
    expect(recordingFormat('audio/mp4')).toBe('m4a');
    expect(recordingFormat('')).toBe('webm');
  });
});

describe('reading the playground config', () => {
  it('keeps the fallback for anything missing or malformed', () => {
    expect(readConfig(undefined)).toEqual(FALLBACK_CONFIG);
    expect(
      readConfig({ limits: { max_inputs: -1 }, formats: { image: [] }, defaults: { top_p: 7 } }),
    ).toEqual(FALLBACK_CONFIG);
  });

  it('reads the documented shape', () => {
    const c = readConfig({
      model: 'imagebind-llm',
      limits: { max_input_bytes: 1000, max_body_bytes: 5000, max_inputs: 4, max_tokens: 512 },
      formats: { image: ['Image/PNG'], video: ['video/mp4'], audio: ['.WAV'], point_cloud: ['ply'] },
      defaults: {
        max_tokens: 128,
        temperature: 0.1,
        top_p: 0.75,
        cache: { enabled: false, size: 10, temperature: 20, weight: 0.5 },
      },
    });
    expect(c.limits).toEqual({ maxInputBytes: 1000, maxBodyBytes: 5000, maxInputs: 4, maxTokens: 512 });
    expect(c.formats.image).toEqual(['image/png']);
    expect(c.formats.audio).toEqual(['wav']);
    expect(c.defaults).toEqual({
      maxTokens: 128,
      temperature: 0.1,
      topP: 0.75,
      cache: { enabled: false, size: 10, temperature: 20, weight: 0.5 },
    });
  });
});
