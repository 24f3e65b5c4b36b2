import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { LlamaTokenizer } from './llama-tokenizer';

const tokenizer = LlamaTokenizer.fromFile(goldenPath('llama', 'tokenizer.model'));
const byteId = (byte: number): number => byte + 3; // MODEL_SPEC §5.9: <0x00>..<0xFF> are ids 3..258

/** Streams `ids` one at a time; returns every delta and the final flush. */
function stream(ids: readonly number[]): { deltas: string[]; tail: string } {
  const detokenizer = tokenizer.createDetokenizer();
  const deltas = ids.map((id) => detokenizer.push(id));
  return { deltas, tail: detokenizer.finish() };
}

function expectStreamMatchesDecode(ids: readonly number[]): void {
  const { deltas, tail } = stream(ids);
  expect(deltas.join('') + tail, JSON.stringify(ids)).toBe(tokenizer.decode(ids));
}

describe('IncrementalDetokenizer', () => {
  it('emits a byte-fallback emoji only when its last byte arrives', () => {
    const ids = tokenizer.encode('emoji 😀🚀');
    const { deltas, tail } = stream(ids);
    // ▁em o ji ▁ then 4 bytes per emoji.
    expect(ids.slice(4).map((id) => tokenizer.byteValue(id))).toEqual([
      0xf0, 0x9f, 0x98, 0x80, 0xf0, 0x9f, 0x9a, 0x80,
    ]);
    expect(deltas).toEqual(['em', 'o', 'ji', ' ', '', '', '', '😀', '', '', '', '🚀']);
    expect(tail).toBe('');
  });

  it('matches decode on multi-byte text: emoji with modifiers, CJK, accents, full-width forms', () => {
    for (const text of [
      '👍🏽 ok',
      '中文测试：你好，世界！',
      '日本語のテキスト',
      'Ünïcödé ßtraße',
      'ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ',
      ' leading space',
      '\n\nleading newlines',
      '\u{1fae8}\u{10ffff}',
    ]) {
      const ids = tokenizer.encode(text);
      const { deltas, tail } = stream(ids);
      expect(deltas.join('') + tail).toBe(text);
      expect(tokenizer.decode(ids)).toBe(text);
    }
  });

  it('turns a cut-off character into one U+FFFD per byte once the run ends, like decode', () => {
    const a = tokenizer.pieceToId('a');
    const { deltas, tail } = stream([byteId(0xe4), byteId(0xb8), a]);
    expect(deltas).toEqual(['', '', '\uFFFD\uFFFDa']);
    expect(tail).toBe('');
    // Ending the stream mid-character flushes the same way.
    const cut = stream([byteId(0xe4), byteId(0xb8)]);
    expect(cut.deltas).toEqual(['', '']);
    expect(cut.tail).toBe('\uFFFD\uFFFD');
    expect(tokenizer.decode([byteId(0xe4), byteId(0xb8)])).toBe('\uFFFD\uFFFD');
  });

  it('does not hold back bytes that no continuation can make valid', () => {
    // C0 only starts overlong forms; a lone trail byte starts nothing; ED A0 begins a surrogate.
    expect(stream([byteId(0xc0)]).deltas).toEqual(['\uFFFD']);
    expect(stream([byteId(0x80), byteId(0x41)]).deltas).toEqual(['\uFFFD', 'A']);
    expect(stream([byteId(0xed), byteId(0xa0)]).deltas).toEqual(['', '\uFFFD\uFFFD']);
    expect(stream([byteId(0xf4), byteId(0x90)]).deltas).toEqual(['', '\uFFFD\uFFFD']);
    expect(stream([byteId(0xe4), byteId(0x41)]).deltas).toEqual(['', '\uFFFDA']);
  });

  it('drops the dummy-prefix space exactly once, after control ids, as decode does', () => {
    const hello = tokenizer.pieceToId('\u2581Hello');
    expect(stream([1, hello, hello]).deltas).toEqual(['', 'Hello', ' Hello']);
    expect(stream([29871, hello]).deltas).toEqual(['', ' Hello']);
    expect(stream([byteId(0x0a), hello]).deltas).toEqual(['\n', ' Hello']);
  });

  it('agrees with decode on thousands of random id sequences (bytes, controls, ▁ pieces)', () => {
    let seed = 42;
    const next = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 4294967296;
    };
    const interesting = [0, 1, 2, 259, 29871, 13, 15043, 30275];
    for (let n = 0; n < 3000; n++) {
      const ids: number[] = [];
      const length = Math.floor(next() * 24);
      for (let i = 0; i < length; i++) {
        const r = next();
        ids.push(
          r < 0.55
            ? byteId(0x80 + Math.floor(next() * 0x80)) // mostly high bytes: lead and trail bytes
            : r < 0.7
              ? byteId(Math.floor(next() * 0x80))
              : r < 0.85
                ? (interesting[Math.floor(next() * interesting.length)] ?? 0)
                : Math.floor(next() * 32000),
        );
      }
      expectStreamMatchesDecode(ids);
    }
  });

  it('rejects an out-of-range id without losing the bytes it holds', () => {
    const detokenizer = tokenizer.createDetokenizer();
    expect(detokenizer.push(byteId(0xe4))).toBe('');
    expect(() => detokenizer.push(32000)).toThrow(RangeError);
    expect(() => detokenizer.push(-1)).toThrow(RangeError);
    expect(detokenizer.pushAll([byteId(0xb8), byteId(0xad)])).toBe('\u4e2d');
    expect(detokenizer.finish()).toBe('');
  });
});
