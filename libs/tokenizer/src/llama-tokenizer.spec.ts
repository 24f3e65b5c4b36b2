import { readFileSync } from 'node:fs';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { LlamaTokenizer } from './llama-tokenizer';

/** expected/tokenizer/llama.json: Python sentencepiece on the real LLaMA tokenizer.model. */
interface GoldenTokenizerFile {
  readonly n_words: number;
  readonly bos_id: number;
  readonly eos_id: number;
  readonly pad_id: number;
  readonly cases: readonly {
    readonly text: string;
    readonly ids: readonly number[];
    readonly ids_with_bos: readonly number[];
    readonly pieces: readonly string[];
    readonly decoded: string;
  }[];
}

/** The decode cases of manifest.json: the official prompt ids and the decoded greedy answers. */
interface ManifestDecodeCase {
  readonly id: string;
  readonly prompt: string;
  readonly prompt_ids: readonly number[];
  readonly generated_ids: readonly number[];
  readonly text: string;
}

const readJson = (...parts: string[]): unknown => JSON.parse(readFileSync(goldenPath(...parts), 'utf8'));

const golden = readJson('expected', 'tokenizer', 'llama.json') as GoldenTokenizerFile;
const manifestCases = (
  readJson('manifest.json') as { cases: readonly Partial<ManifestDecodeCase>[] }
).cases.filter((c): c is ManifestDecodeCase => Array.isArray(c.prompt_ids));
const tokenizer = LlamaTokenizer.fromFile(goldenPath('llama', 'tokenizer.model'));

/** Deterministic PRNG (mulberry32) so property tests are reproducible. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('LlamaTokenizer against Python sentencepiece (golden llama.json)', () => {
  it('has the golden file it is checked against', () => {
    expect(golden.cases).toHaveLength(40);
  });

  it('reports the vocabulary and special ids of the real model', () => {
    expect(tokenizer.vocabSize).toBe(golden.n_words);
    expect(tokenizer.bosId).toBe(golden.bos_id);
    expect(tokenizer.eosId).toBe(golden.eos_id);
    expect(tokenizer.padId).toBe(golden.pad_id);
    expect([tokenizer.bosId, tokenizer.eosId, tokenizer.unkId]).toEqual([1, 2, 0]);
    expect(tokenizer.pieceToId('<0x0A>')).toBe(13);
    expect(tokenizer.idToPiece(29871)).toBe('\u2581');
    expect(tokenizer.pieceToId('not a piece at all')).toBe(tokenizer.unkId);
    expect(tokenizer.isControl(1)).toBe(true);
    expect(tokenizer.isControl(13)).toBe(false);
    expect(tokenizer.byteValue(13)).toBe(0x0a);
    expect(tokenizer.byteValue(29871)).toBeUndefined();
  });

  for (const [index, c] of golden.cases.entries()) {
    it(`case ${index} ${JSON.stringify(c.text).slice(0, 50)}: ids, pieces and decode agree exactly`, () => {
      expect(tokenizer.encode(c.text)).toEqual(c.ids);
      expect(tokenizer.encode(c.text, { bos: true })).toEqual(c.ids_with_bos);
      expect(tokenizer.encode(c.text, { bos: true, eos: true })).toEqual([...c.ids_with_bos, 2]);
      expect(c.ids.map((id) => tokenizer.idToPiece(id))).toEqual(c.pieces);
      expect(tokenizer.decode(c.ids)).toBe(c.decoded);
      expect(tokenizer.decode(c.ids_with_bos)).toBe(c.decoded);
    });
  }
});

describe('LlamaTokenizer against the official pipeline (manifest decode cases)', () => {
  it('has prompt cases to check', () => {
    expect(manifestCases.length).toBeGreaterThanOrEqual(4);
  });

  for (const c of manifestCases) {
    it(`${c.id}: [BOS] + encode(prompt) is the official prompt, and the answer decodes to its text`, () => {
      expect(tokenizer.encode(c.prompt, { bos: true })).toEqual(c.prompt_ids);
      // The random-weight model produces byte pieces and odd scripts: a good decode test.
      expect(tokenizer.decode(c.generated_ids)).toBe(c.text);
    });
  }
});

describe('LlamaTokenizer edge cases', () => {
  it('encodes the empty string to nothing (no dummy prefix) and decodes nothing to ""', () => {
    expect(tokenizer.encode('')).toEqual([]);
    expect(tokenizer.encode('', { bos: true })).toEqual([1]);
    expect(tokenizer.decode([])).toBe('');
  });

  it('drops only the dummy-prefix space, after control ids but not after visible text', () => {
    const leading = tokenizer.pieceToId('\u2581leading');
    expect(tokenizer.decode([1, leading])).toBe('leading');
    expect(tokenizer.decode([1, 29871, leading])).toBe(' leading');
    expect(tokenizer.decode([13, leading])).toBe('\n leading');
    expect(tokenizer.decode([1, 2])).toBe('');
    // The unknown piece prints SentencePiece's unk surface.
    expect(tokenizer.decode([0])).toBe(' \u2047 ');
  });

  it('replaces each byte of an invalid UTF-8 byte sequence with U+FFFD, like sentencepiece', () => {
    const a = tokenizer.pieceToId('a');
    // E4 B8 is a cut-off 3-byte character: two U+FFFD (TextDecoder would give one).
    expect(tokenizer.decode([0xe4 + 3, 0xb8 + 3, a])).toBe('\uFFFD\uFFFDa');
    expect(tokenizer.decode([0xe4 + 3, 0xb8 + 3, 0xad + 3])).toBe('\u4e2d');
    expect(tokenizer.decode([0xff + 3])).toBe('\uFFFD');
  });

  it('rejects ids outside the vocabulary', () => {
    for (const id of [-1, 32000, 1.5, Number.NaN]) {
      expect(() => tokenizer.decode([15043, id])).toThrow(RangeError);
    }
    expect(() => tokenizer.idToPiece(32000)).toThrow('token id 32000 is outside the vocabulary [0, 32000)');
  });

  it('treats lone UTF-16 surrogates as U+FFFD instead of emitting broken bytes', () => {
    expect(tokenizer.encode('a\uD800b')).toEqual(tokenizer.encode('a\uFFFDb'));
    expect(tokenizer.encode('\uDC00')).toEqual(tokenizer.encode('\uFFFD'));
    expect(tokenizer.encode('\uD83D\uDE00')).toEqual(tokenizer.encode('😀'));
  });

  it('reads a literal ▁ in the text as a space when decoding, as sentencepiece does', () => {
    expect(tokenizer.decode(tokenizer.encode('a\u2581b'))).toBe('a b');
  });

  it('round-trips random text from many scripts (decode(encode(s)) === s)', () => {
    const alphabet = [
      ...'abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,;:!?\'"()[]{}<>\\/-_=+*&^%$#@~`|',
      ' ',
      '  ',
      '\n',
      '\t',
      '\r\n',
      '\u00a0',
      '\u200b',
      ...'éüßÅñçøœ',
      ...'中文日本語한국어',
      ...'Ελληνικάкириллица',
      '😀',
      '🚀',
      '👍🏽',
      '\u{10ffff}',
      '\u{e000}',
      '\u0000',
      '<s>',
      '</s>',
      '<unk>',
      '<0x41>',
    ];
    const next = random(20231126);
    for (let n = 0; n < 300; n++) {
      let text = '';
      const length = Math.floor(next() * 40);
      for (let i = 0; i < length; i++) {
        text += alphabet[Math.floor(next() * alphabet.length)] ?? '';
      }
      const ids = tokenizer.encode(text);
      expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 32000)).toBe(true);
      expect(tokenizer.decode(ids), JSON.stringify(text)).toBe(text);
    }
  });

  it('handles long and adversarial inputs (a sanity bound, not a timing test)', () => {
    const prose = 'The quick brown fox jumps over the lazy dog. 中文 😀\n'.repeat(2000);
    const ids = tokenizer.encode(prose);
    expect(ids.length).toBeGreaterThan(20_000);
    expect(ids.length).toBeLessThan(prose.length);
    expect(tokenizer.decode(ids)).toBe(prose);

    // One repeated character and a run of spaces build the longest merge chains.
    const same = 'a'.repeat(100_000);
    expect(tokenizer.decode(tokenizer.encode(same))).toBe(same);
    const spaces = ' '.repeat(50_000);
    expect(tokenizer.decode(tokenizer.encode(spaces))).toBe(spaces);

    // Unmergeable characters: every symbol falls back to 4 bytes.
    const emoji = '\u{1fae8}'.repeat(20_000);
    const emojiIds = tokenizer.encode(emoji);
    expect(emojiIds.length).toBe(1 + 4 * 20_000);
    expect(tokenizer.decode(emojiIds)).toBe(emoji);
  });
});
