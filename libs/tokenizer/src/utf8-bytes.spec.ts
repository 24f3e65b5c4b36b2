import { describe, expect, it } from 'vitest';
import { classifyUtf8, decodeByteRun } from './utf8-bytes';

const F = '\uFFFD';

describe('decodeByteRun (SentencePiece byte-piece decoding)', () => {
  it('decodes well-formed UTF-8 exactly as Node does', () => {
    const text = 'aé中😀\u0000\u007f\u0080\u07ff\u0800\uffff\u{10000}\u{10ffff}\ud7ff\ue000\ufffd';
    expect(decodeByteRun([...Buffer.from(text, 'utf8')])).toBe(text);
    expect(decodeByteRun([])).toBe('');
  });

  it('replaces exactly one byte per error and resumes at the next byte', () => {
    expect(decodeByteRun([0xe4, 0xb8])).toBe(F + F); // cut-off 3-byte character
    expect(decodeByteRun([0xe4, 0xb8, 0x61])).toBe(F + F + 'a');
    expect(decodeByteRun([0xc0, 0x80])).toBe(F + F); // overlong NUL
    expect(decodeByteRun([0xe0, 0x80, 0x80])).toBe(F + F + F); // overlong 3-byte
    expect(decodeByteRun([0xed, 0xa0, 0x80])).toBe(F + F + F); // surrogate U+D800
    expect(decodeByteRun([0xf4, 0x90, 0x80, 0x80])).toBe(F + F + F + F); // above U+10FFFF
    expect(decodeByteRun([0xf8, 0x88, 0x80, 0x80, 0x80])).toBe(F.repeat(5)); // 5-byte form
    expect(decodeByteRun([0x80, 0xe4, 0xb8, 0xad])).toBe(F + '\u4e2d'); // stray trail, then a character
    expect(decodeByteRun([0xe4, 0x41, 0xb8])).toBe(F + 'A' + F);
  });
});

describe('classifyUtf8 (streaming decisions)', () => {
  const classify = (bytes: number[], final = false): string =>
    classifyUtf8(bytes, 0, bytes.length, final).kind;

  it('waits for a prefix some continuation could complete', () => {
    expect(classify([0xe4])).toBe('incomplete');
    expect(classify([0xe4, 0xb8])).toBe('incomplete');
    expect(classify([0xf0, 0x9f, 0x98])).toBe('incomplete');
    expect(classify([0xed])).toBe('incomplete'); // ED 80..9F is still fine
    expect(classify([0xe0])).toBe('incomplete'); // E0 A0..BF is still fine
  });

  it('gives up at once on prefixes nothing can complete, and on cut-off ones when final', () => {
    expect(classify([0xc1])).toBe('invalid');
    expect(classify([0xe0, 0x9f])).toBe('invalid'); // every completion is overlong
    expect(classify([0xed, 0xa0])).toBe('invalid'); // every completion is a surrogate
    expect(classify([0xf4, 0x90])).toBe('invalid'); // every completion is above U+10FFFF
    expect(classify([0xf5])).toBe('invalid');
    expect(classify([0xe4, 0x41])).toBe('invalid');
    expect(classify([0xe4, 0xb8], true)).toBe('invalid');
    expect(classify([0xe4, 0xb8, 0xad])).toBe('char');
  });
});
