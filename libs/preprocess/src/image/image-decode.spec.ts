import { describe, expect, it } from 'vitest';

import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

import { DomainError } from '@imagebind-llm/errors';
import { goldenPath, PNG_SIGNATURE, pngChunk } from '@imagebind-llm/testing';
import sharp from 'sharp';

import { decodeImageRgb, sniffImageFormat } from './image-decode';

function u32(v: number): Uint8Array {
  return Uint8Array.of((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

const chunk = pngChunk;
const SIGNATURE = PNG_SIGNATURE;

/** A minimal PNG: `colourType` 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA; rows unfiltered. */
function png(
  width: number,
  height: number,
  colourType: number,
  bitDepth: number,
  rows: Uint8Array,
  extra: Uint8Array[] = [],
): Uint8Array {
  const ihdr = Buffer.concat([u32(width), u32(height), Uint8Array.of(bitDepth, colourType, 0, 0, 0)]);
  const rowBytes = rows.length / height;
  const raw = new Uint8Array(height * (rowBytes + 1));
  for (let y = 0; y < height; y++)
    raw.set(rows.subarray(y * rowBytes, (y + 1) * rowBytes), y * (rowBytes + 1) + 1);
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', ihdr),
    ...extra,
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

async function expectDomainError(p: Promise<unknown>, code: string): Promise<DomainError> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DomainError);
  expect((err as DomainError).code).toBe(code);
  return err as DomainError;
}

const girl = (): Uint8Array => readFileSync(goldenPath('inputs', 'girl.jpg'));

describe('sniffImageFormat', () => {
  it('knows only JPEG, PNG, GIF and WebP', async () => {
    const rgb = { raw: { width: 5, height: 3, channels: 3 as const } };
    const pixels = new Uint8Array(45).fill(90);
    expect(sniffImageFormat(girl())).toBe('jpeg');
    expect(sniffImageFormat(png(1, 1, 2, 8, Uint8Array.of(1, 2, 3)))).toBe('png');
    expect(sniffImageFormat(await sharp(pixels, rgb).gif().toBuffer())).toBe('gif');
    expect(sniffImageFormat(await sharp(pixels, rgb).webp().toBuffer())).toBe('webp');
    expect(sniffImageFormat(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'))).toBeUndefined();
    expect(sniffImageFormat(Buffer.from('BM\0\0\0\0'))).toBeUndefined();
    expect(sniffImageFormat(new Uint8Array(0))).toBeUndefined();
  });
});

describe('decodeImageRgb', () => {
  it('decodes the golden JPEG to 374×249 RGB', async () => {
    const img = await decodeImageRgb(girl());
    expect([img.width, img.height, img.channels, img.data.length]).toEqual([374, 249, 3, 374 * 249 * 3]);
  });

  it('drops alpha without compositing (RGBA and grey+alpha)', async () => {
    const rgba = await decodeImageRgb(png(2, 1, 6, 8, Uint8Array.of(10, 20, 30, 0, 200, 100, 50, 128)));
    expect(Array.from(rgba.data)).toEqual([10, 20, 30, 200, 100, 50]);
    const la = await decodeImageRgb(png(2, 1, 4, 8, Uint8Array.of(77, 0, 250, 9)));
    expect(Array.from(la.data)).toEqual([77, 77, 77, 250, 250, 250]);
  });

  it('replicates grey and maps palettes', async () => {
    const grey = await decodeImageRgb(png(3, 1, 0, 8, Uint8Array.of(0, 128, 255)));
    expect(Array.from(grey.data)).toEqual([0, 0, 0, 128, 128, 128, 255, 255, 255]);
    const palette = chunk('PLTE', Uint8Array.of(1, 2, 3, 250, 251, 252));
    const indexed = await decodeImageRgb(png(3, 1, 3, 8, Uint8Array.of(1, 0, 1), [palette]));
    expect(Array.from(indexed.data)).toEqual([250, 251, 252, 1, 2, 3, 250, 251, 252]);
  });

  it('reads 16-bit PNGs as Pillow: high byte for RGB, clipped for plain grey', async () => {
    const rgb16 = await decodeImageRgb(png(1, 1, 2, 16, Uint8Array.of(0x12, 0x34, 0xab, 0xcd, 0x00, 0xff)));
    expect(Array.from(rgb16.data)).toEqual([0x12, 0xab, 0x00]);
    const grey16 = await decodeImageRgb(png(2, 1, 0, 16, Uint8Array.of(0x03, 0xe8, 0x00, 0x64)));
    expect(Array.from(grey16.data)).toEqual([255, 255, 255, 100, 100, 100]);
  });

  it('applies no EXIF orientation and no ICC profile', async () => {
    const pixels = new Uint8Array(4 * 2 * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37) % 256;
    const rotated = await sharp(pixels, { raw: { width: 4, height: 2, channels: 3 } })
      .withMetadata({ orientation: 6 })
      .png()
      .toBuffer();
    expect((await sharp(rotated).metadata()).orientation).toBe(6);
    const img = await decodeImageRgb(rotated);
    expect([img.width, img.height]).toEqual([4, 2]);
    expect(Array.from(img.data)).toEqual(Array.from(pixels));

    // The same stored pixels with a Display-P3 profile: the decode must not transform them.
    const profile = await sharp(pixels, { raw: { width: 4, height: 2, channels: 3 } })
      .withIccProfile('p3')
      .png()
      .toBuffer();
    expect((await sharp(profile).metadata()).hasProfile).toBe(true);
    const stored = await sharp(profile, { ignoreIcc: true }).raw().toBuffer();
    const transformed = await sharp(profile).toColourspace('srgb').raw().toBuffer();
    expect(Buffer.compare(stored, transformed)).not.toBe(0); // the profile would change pixels
    expect(Array.from((await decodeImageRgb(profile)).data)).toEqual(Array.from(stored));
  });

  it('decodes lossless WebP exactly, GIF (first frame) and CMYK JPEG to RGB', async () => {
    const pixels = Uint8Array.of(255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 99, 199);
    const raw = { raw: { width: 2, height: 2, channels: 3 as const } };
    const webp = await decodeImageRgb(await sharp(pixels, raw).webp({ lossless: true }).toBuffer());
    expect(Array.from(webp.data)).toEqual(Array.from(pixels));
    const gif = await decodeImageRgb(await sharp(pixels, raw).gif().toBuffer());
    expect([gif.width, gif.height, gif.data.length]).toEqual([2, 2, 12]);
    expect(Array.from(gif.data.subarray(0, 3))).toEqual([255, 0, 0]);
    const cmykJpeg = await sharp(new Uint8Array(8 * 8 * 3).fill(200), {
      raw: { width: 8, height: 8, channels: 3 },
    })
      .toColourspace('cmyk')
      .jpeg({ quality: 100 })
      .toBuffer();
    expect((await sharp(cmykJpeg).metadata()).space).toBe('cmyk');
    const cmyk = await decodeImageRgb(cmykJpeg);
    expect([cmyk.width, cmyk.height, cmyk.data.length]).toEqual([8, 8, 192]);
  });

  it("decodes plain JPEGs (RGB and grey, baseline and progressive) to the decoder's own samples", async () => {
    const pixels = new Uint8Array(13 * 7 * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 53) % 256;
    const raw = { raw: { width: 13, height: 7, channels: 3 as const } };
    for (const [grey, progressive] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ] as const) {
      const shaped = sharp(pixels, raw);
      const jpeg = await (grey ? shaped.toColourspace('b-w') : shaped).jpeg({ progressive }).toBuffer();
      const meta = await sharp(jpeg).metadata();
      expect([meta.channels, meta.depth, meta.isProgressive]).toEqual([grey ? 1 : 3, 'uchar', progressive]);
      // What the decoder itself makes of the file (libvips hands grey out as 3 equal channels).
      const samples = await sharp(jpeg, { ignoreIcc: true, autoOrient: false }).raw().toBuffer();
      const img = await decodeImageRgb(jpeg);
      expect([img.width, img.height]).toEqual([13, 7]);
      expect(Buffer.from(img.data).equals(samples)).toBe(true);
    }
  });

  it('decodes a 1×1 image', async () => {
    const img = await decodeImageRgb(png(1, 1, 2, 8, Uint8Array.of(1, 2, 3)));
    expect(Array.from(img.data)).toEqual([1, 2, 3]);
  });
});

describe('decodeImageRgb on hostile input', () => {
  it('refuses an empty buffer', async () => {
    await expectDomainError(decodeImageRgb(new Uint8Array(0)), 'INVALID_INPUT');
  });

  it('refuses unknown formats (text, SVG, BMP, random bytes)', async () => {
    for (const bytes of [
      Buffer.from('just some text'),
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'),
      Buffer.from('BM6\0\0\0\0\0\0\0'),
      Uint8Array.of(0xff, 0xd8),
    ]) {
      await expectDomainError(decodeImageRgb(bytes), 'UNSUPPORTED_MEDIA');
    }
  });

  it('refuses truncated and corrupt JPEG and PNG', async () => {
    const jpeg = girl();
    for (const cut of [3, 20, 200, 2000, jpeg.length - 100]) {
      await expectDomainError(decodeImageRgb(jpeg.subarray(0, cut)), 'UNSUPPORTED_MEDIA');
    }
    const good = png(16, 16, 2, 8, new Uint8Array(16 * 16 * 3).fill(5));
    for (const cut of [10, 30, good.length - 20]) {
      await expectDomainError(decodeImageRgb(good.subarray(0, cut)), 'UNSUPPORTED_MEDIA');
    }
    const corrupt = Uint8Array.from(good);
    corrupt[45] = (corrupt[45]! + 1) & 0xff; // inside IDAT: the chunk CRC no longer matches
    await expectDomainError(decodeImageRgb(corrupt), 'UNSUPPORTED_MEDIA');
    const garbage = Uint8Array.from(jpeg.subarray(0, 64));
    for (let i = 4; i < garbage.length; i++) garbage[i] = (i * 131) & 0xff;
    await expectDomainError(decodeImageRgb(garbage), 'UNSUPPORTED_MEDIA');
  });

  it('refuses a PNG declaring 60000×60000 before decoding it', async () => {
    // The IDAT is garbage: had the decoder run, the error would be UNSUPPORTED_MEDIA instead.
    const bomb = Buffer.concat([
      SIGNATURE,
      chunk('IHDR', Buffer.concat([u32(60000), u32(60000), Uint8Array.of(8, 2, 0, 0, 0)])),
      chunk('IDAT', Uint8Array.of(1, 2, 3, 4)),
      chunk('IEND', new Uint8Array(0)),
    ]);
    // No timing bound: the error code already proves nothing was decoded or allocated.
    const err = await expectDomainError(decodeImageRgb(bomb), 'PAYLOAD_TOO_LARGE');
    expect(err.message).toContain('png image is larger than the limit of 40000000 pixels');
  });

  it('refuses JPEG, GIF and WebP bombs from their headers', async () => {
    const sof = Uint8Array.of(0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08, 0xfd, 0xe8, 0xfd, 0xe8, 0x03);
    const jpegErr = await expectDomainError(decodeImageRgb(sof), 'PAYLOAD_TOO_LARGE');
    expect(jpegErr.message).toContain('65000×65000');
    // Whole files whose headers are then enlarged: what reaches the decoder is well formed up to
    // the pixel data, so only the size check can refuse it as too large.
    const rgb = { raw: { width: 5, height: 3, channels: 3 as const } };
    const pixels = new Uint8Array(45).fill(90);
    const gif = Buffer.from(await sharp(pixels, rgb).gif().toBuffer());
    const descriptor = gif.indexOf(0x2c, 13); // the first frame's image descriptor
    for (const at of [6, 8, descriptor + 5, descriptor + 7]) gif.writeUInt16LE(65535, at); // screen, frame
    await expectDomainError(decodeImageRgb(gif), 'PAYLOAD_TOO_LARGE');
    const webp = Buffer.from(await sharp(pixels, rgb).webp().toBuffer());
    expect(webp.toString('latin1', 12, 16)).toBe('VP8 ');
    webp.writeUInt16LE(16383, 26); // the VP8 key frame's width and height, 14 bits each
    webp.writeUInt16LE(16383, 28);
    await expectDomainError(decodeImageRgb(webp), 'PAYLOAD_TOO_LARGE');
  });

  it('applies configurable pixel and byte limits', async () => {
    await expectDomainError(decodeImageRgb(girl(), { maxPixels: 374 * 249 - 1 }), 'PAYLOAD_TOO_LARGE');
    await expect(decodeImageRgb(girl(), { maxPixels: 374 * 249 })).resolves.toBeDefined();
    await expectDomainError(decodeImageRgb(girl(), { maxBytes: 1000 }), 'PAYLOAD_TOO_LARGE');
    await expectDomainError(decodeImageRgb(girl(), { maxPixels: 0.5 }), 'INVALID_INPUT');
    const small = png(16, 16, 2, 8, new Uint8Array(16 * 16 * 3).fill(5));
    await expectDomainError(decodeImageRgb(small, { maxPixels: 16 * 16 - 1 }), 'PAYLOAD_TOO_LARGE');
    await expect(decodeImageRgb(small, { maxPixels: 16 * 16 })).resolves.toBeDefined();
  });

  it('refuses a JPEG over the decoded-bytes limit from its header (3 bytes a pixel, grey 1 + 3)', async () => {
    const rgbBytes = 374 * 249 * 3;
    const err = await expectDomainError(
      decodeImageRgb(girl(), { maxDecodedBytes: rgbBytes - 1 }),
      'PAYLOAD_TOO_LARGE',
    );
    expect(err.message).toContain('374×249 with 3 8-bit channels');
    await expect(decodeImageRgb(girl(), { maxDecodedBytes: rgbBytes })).resolves.toBeDefined();
    const grey = await sharp(girl()).toColourspace('b-w').jpeg().toBuffer();
    await expectDomainError(
      decodeImageRgb(grey, { maxDecodedBytes: 374 * 249 * 4 - 1 }),
      'PAYLOAD_TOO_LARGE',
    );
    await expect(decodeImageRgb(grey, { maxDecodedBytes: 374 * 249 * 4 })).resolves.toBeDefined();
  });

  it('refuses a declared size of zero', async () => {
    await expectDomainError(decodeImageRgb(png(0, 5, 2, 8, new Uint8Array(0))), 'UNSUPPORTED_MEDIA');
  });
});
