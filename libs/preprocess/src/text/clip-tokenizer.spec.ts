import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseNpy } from '@imagebind-llm/checkpoint';
import { DomainError } from '@imagebind-llm/errors';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { BYTE_CHARS_IN_VOCAB_ORDER, bytesToUnicode } from './byte-unicode';
import { cleanClipText } from './clean';
import {
  CLIP_CONTEXT_LENGTH,
  CLIP_EOT_ID,
  CLIP_SOT_ID,
  CLIP_VOCAB_SIZE,
  clipVocabPath,
  defaultClipTokenizer,
  tokenizeClipText,
} from './clip-tokenizer';
import { htmlUnescape } from './html-unescape';

interface ClipCase {
  readonly text: string;
  readonly ids: number[];
  readonly n_nonzero: number;
  readonly cleaned: string;
  readonly bpe_tokens: string[];
  readonly truncated: boolean;
}

const golden = JSON.parse(readFileSync(goldenPath('expected', 'tokenizer', 'clip.json'), 'utf8')) as {
  cases: ClipCase[];
};

describe('CLIP BPE vocabulary', () => {
  it('ships the official file (MODEL_SPEC §2.4 sha256)', () => {
    const sha = createHash('sha256').update(readFileSync(clipVocabPath())).digest('hex');
    expect(sha).toBe('924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a');
  });

  it('has 49408 ids with the byte characters first and the specials last', () => {
    const tok = defaultClipTokenizer();
    expect(tok.vocabSize).toBe(CLIP_VOCAB_SIZE);
    expect(BYTE_CHARS_IN_VOCAB_ORDER[0]).toBe('!');
    expect(BYTE_CHARS_IN_VOCAB_ORDER[93]).toBe('~');
    expect(BYTE_CHARS_IN_VOCAB_ORDER[188]).toBe('\u0100'); // byte 0x00
    expect(bytesToUnicode(' ')).toBe('\u0120');
    expect(tok.encode('<|startoftext|>')).toEqual([CLIP_SOT_ID]);
    expect(tok.encode('<|endoftext|>')).toEqual([CLIP_EOT_ID]);
  });
});

describe('CLIP tokenizer parity with the official SimpleTokenizer', () => {
  it(`agrees on all ${golden.cases.length} golden vectors (ids, cleaning, BPE symbols, truncation)`, () => {
    const tok = defaultClipTokenizer();
    expect(golden.cases.length).toBe(25);
    for (const c of golden.cases) {
      const label = JSON.stringify(c.text.slice(0, 60));
      expect(cleanClipText(c.text), label).toBe(c.cleaned);
      const result = tok.tokenize(c.text);
      expect(Array.from(result.ids, Number), label).toEqual(c.ids);
      expect(result.length, label).toBe(c.n_nonzero);
      expect(result.truncated, label).toBe(c.truncated);
      if (!c.truncated) expect(tok.bpeTokens(c.text), label).toEqual(c.bpe_tokens);
    }
  });

  it('matches the manifest case preprocess/text/a_dog ([1, 77] int64)', () => {
    const expected = parseNpy(readFileSync(goldenPath('expected', 'preprocess', 'text_a_dog.npy')));
    expect(expected.dtype).toBe('int64');
    expect(expected.shape).toEqual([1, CLIP_CONTEXT_LENGTH]);
    const want = new BigInt64Array(expected.data.slice().buffer);
    const got = defaultClipTokenizer().tokenizeBatch(['A dog.']);
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(Array.from(tokenizeClipText('A dog.'))).toEqual(Array.from(want));
  });

  it('drops EOT when the text fills the context (B14)', () => {
    const ids = tokenizeClipText(Array.from({ length: 100 }, (_, i) => `w${i}`).join(' '));
    expect(ids.length).toBe(77);
    expect(ids[0]).toBe(BigInt(CLIP_SOT_ID));
    expect(Array.from(ids).includes(BigInt(CLIP_EOT_ID))).toBe(false);
    expect(ids.every((v) => v !== 0n)).toBe(true);
  });

  it('keeps EOT at the last slot when SOT + 75 tokens + EOT is exactly 77', () => {
    const tok = defaultClipTokenizer();
    const r = tok.tokenize(Array.from({ length: 75 }, () => 'a').join(' '));
    expect(r.truncated).toBe(false);
    expect(r.ids[76]).toBe(BigInt(CLIP_EOT_ID));
    const r2 = tok.tokenize(Array.from({ length: 76 }, () => 'a').join(' '));
    expect(r2.truncated).toBe(true);
    expect(r2.ids[76]).toBe(320n);
  });

  it('refuses absurdly long text with PAYLOAD_TOO_LARGE', () => {
    expect(() => tokenizeClipText('a'.repeat(20_000))).toThrow(DomainError);
    try {
      tokenizeClipText('a'.repeat(20_000));
    } catch (error) {
      expect((error as DomainError).code).toBe('PAYLOAD_TOO_LARGE');
    }
  });
});

describe('cleaning (ftfy subset, html.unescape twice, whitespace, lower-case)', () => {
  it.each([
    ['cafÃ©', 'café'],
    ['donâ€™t', "don't"],
    ['“quoted”', '"quoted"'],
    ['ﬁne ﬂow', 'fine flow'],
    ['ＡＢＣ１２３', 'abc123'],
    ['e\u0301', '\u00e9'],
    ['a\u00a0\u2003b\x1c c', 'a b c'],
    ['\ufeffbom\x00', 'bom'],
    ['\x1b[31mred\x1b[0m', 'red'],
    ['&amp;amp;amp;', '&'],
    ['<b>&amp;amp;amp;</b>', '<b>&amp;</b>'],
    ['&#39;&#x27;&#150;', "''\u2013"],
    ['&copy2023 &not &hellip', '©2023 ¬ &hellip'],
    ['Fuß“ straße', 'fuß" straße'],
  ])('%j → %j', (input, cleaned) => {
    expect(cleanClipText(input)).toBe(cleaned);
  });

  it('html.unescape edge cases follow Python', () => {
    expect(htmlUnescape('&#0;&#xD800;&#1114112;&#x1;')).toBe('\ufffd\ufffd\ufffd');
    expect(htmlUnescape('&unknown; & &;')).toBe('&unknown; & &;');
    expect(htmlUnescape('&ampx')).toBe('&x');
  });
});
