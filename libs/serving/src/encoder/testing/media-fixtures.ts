import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { PNG_SIGNATURE, pngChunk } from '@imagebind-llm/testing';

const chunk = pngChunk;

/**
 * A PNG (8-bit RGB, no interlace) of a colour pattern that depends on `seed`, so every seed is a
 * different image with a different embedding.
 */
export function patternPng(seed: number, width = 96, height = 72): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const p = row + 1 + x * 3;
      raw[p] = (x * (seed + 3) + y * 7) & 0xff;
      raw[p + 1] = (y * (seed + 5) + x * seed) & 0xff;
      raw[p + 2] = ((x ^ y) * (seed + 1)) & 0xff;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, adaptive filtering, no interlace
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A mono 16-bit PCM WAV of two tones that depend on `seed`. */
export function toneWav(seed: number, seconds = 3, sampleRate = 16_000): Buffer {
  const frames = Math.round(seconds * sampleRate);
  const data = Buffer.alloc(frames * 2);
  for (let i = 0; i < frames; i++) {
    const t = i / sampleRate;
    const v =
      0.4 * Math.sin(2 * Math.PI * (220 + 110 * seed) * t) + 0.2 * Math.sin(2 * Math.PI * 3 * (seed + 1) * t);
    data.writeInt16LE(Math.round(v * 32767), i * 2);
  }
  const head = Buffer.alloc(44);
  head.write('RIFF', 0, 'latin1');
  head.writeUInt32LE(36 + data.length, 4);
  head.write('WAVEfmt ', 8, 'latin1');
  head.writeUInt32LE(16, 16);
  head.writeUInt16LE(1, 20); // PCM
  head.writeUInt16LE(1, 22); // mono
  head.writeUInt32LE(sampleRate, 24);
  head.writeUInt32LE(sampleRate * 2, 28);
  head.writeUInt16LE(2, 32);
  head.writeUInt16LE(16, 34);
  head.write('data', 36, 'latin1');
  head.writeUInt32LE(data.length, 40);
  return Buffer.concat([head, data]);
}

/** A short H.264 test-pattern MP4 made with ffmpeg (the video preprocessing needs ffmpeg anyway). */
export function testPatternMp4(dir: string, seconds = 3): Buffer {
  const out = join(dir, 'pattern.mp4');
  const r = spawnSync(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-nostdin',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc=size=200x160:rate=8:duration=${seconds}`,
      '-c:v',
      'libx264',
      '-pix_fmt',
      'yuv420p',
      out,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0)
    throw new Error(`ffmpeg could not make the test video: ${r.stderr || r.error?.message}`);
  return readFileSync(out);
}
