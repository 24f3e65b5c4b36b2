import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bufferSource, openFileSource } from './byte-source';
import { crc32 } from './crc32';
import { writeZipFixture } from './testing-fixtures';
import { ZIP_DEFLATED, ZIP_STORED, ZipReader } from './zip-reader';

const dir = mkdtempSync(join(tmpdir(), 'ckpt-zip-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('ZipReader', () => {
  it('computes the standard CRC-32', () => {
    expect(crc32(text('123456789'))).toBe(0xcbf43926);
    expect(crc32(text('6789'), crc32(text('12345')))).toBe(0xcbf43926);
  });

  for (const forceZip64 of [false, true]) {
    it(`reads stored and deflated entries and ranges (zip64=${forceZip64})`, async () => {
      const path = join(dir, `a${forceZip64}.zip`);
      const long = text('abcdefghij'.repeat(100));
      await writeZipFixture(
        path,
        [
          { name: 'x/stored', data: text('hello world') },
          { name: 'x/deflated', data: long, deflate: true },
        ],
        { forceZip64 },
      );
      const zip = await ZipReader.open(await openFileSource(path));
      try {
        expect([...zip.entries.keys()]).toEqual(['x/stored', 'x/deflated']);
        expect(zip.entry('x/stored')?.method).toBe(ZIP_STORED);
        expect(zip.entry('x/deflated')?.method).toBe(ZIP_DEFLATED);
        expect(zip.entry('x/deflated')!.compressedSize).toBeLessThan(long.length);
        expect(new TextDecoder().decode(await zip.readEntry('x/stored'))).toBe('hello world');
        expect(await zip.readEntry('x/deflated')).toEqual(long);
        expect(new TextDecoder().decode(await zip.readRange('x/stored', 6, 5))).toBe('world');
        expect(new TextDecoder().decode(await zip.readRange('x/deflated', 13, 4))).toBe('defg');
        await expect(zip.readRange('x/stored', 8, 4)).rejects.toThrow(
          /has 11 bytes; bytes 8\.\.12 were requested/,
        );
        await expect(zip.readEntry('nope')).rejects.toThrow(/zip entry nope does not exist/);
      } finally {
        await zip.close();
      }
    });
  }

  it('rejects a central directory that points past the end of the file', async () => {
    const path = join(dir, 'b.zip');
    await writeZipFixture(path, [{ name: 'f', data: text('data') }]);
    const { readFileSync } = await import('node:fs');
    const bytes = new Uint8Array(readFileSync(path));
    // EOCD is the last 22 bytes; its central-directory offset field is at +16.
    new DataView(bytes.buffer).setUint32(bytes.length - 22 + 16, 1_000_000, true);
    await expect(ZipReader.open(bufferSource('b.zip', bytes))).rejects.toThrow(
      /^b\.zip: zip central directory \(bytes 1000000\.\.\d+\) lies beyond the end of the file/,
    );
  });
});
