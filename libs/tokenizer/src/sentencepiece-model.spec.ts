import { readFileSync } from 'node:fs';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { LlamaTokenizer } from './llama-tokenizer';
import {
  ModelType,
  parseSentencePieceModel,
  PieceType,
  SentencePieceModelError,
} from './sentencepiece-model.parser';

// A minimal protobuf writer, so these tests can build exactly the broken or unusual models they need.
const varint = (value: number | bigint): number[] => {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? low | 0x80 : low);
  } while (v > 0n);
  return out;
};
const tag = (field: number, wireType: number): number[] => varint((field << 3) | wireType);
const int = (field: number, value: number): number[] => [...tag(field, 0), ...varint(value)];
const len = (field: number, payload: readonly number[]): number[] => [
  ...tag(field, 2),
  ...varint(payload.length),
  ...payload,
];
const str = (field: number, text: string): number[] => len(field, [...Buffer.from(text, 'utf8')]);
const float = (field: number, value: number): number[] => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(value);
  return [...tag(field, 5), ...b];
};

interface PieceSpec {
  readonly piece: string;
  readonly score?: number;
  readonly type?: number;
}
const piece = ({ piece: text, score = 0, type }: PieceSpec): number[] =>
  len(1, [...str(1, text), ...float(2, score), ...(type === undefined ? [] : int(3, type))]);

interface ModelSpec {
  readonly pieces: readonly PieceSpec[];
  readonly trainer?: readonly number[] | null;
  readonly normalizer?: readonly number[];
}
const BPE_TRAINER = [...int(3, ModelType.Bpe), ...int(35, 1), ...int(43, -1)];
const IDENTITY = [...str(1, 'identity'), ...int(3, 1), ...int(4, 0)];
const model = ({ pieces, trainer = BPE_TRAINER, normalizer = IDENTITY }: ModelSpec): Uint8Array =>
  Uint8Array.from([
    ...pieces.flatMap(piece),
    ...(trainer === null ? [] : len(2, trainer)),
    ...len(3, normalizer),
  ]);

const SPECIALS: PieceSpec[] = [
  { piece: '<unk>', type: PieceType.Unknown },
  { piece: '<s>', type: PieceType.Control },
  { piece: '</s>', type: PieceType.Control },
];
const BYTES: PieceSpec[] = Array.from({ length: 256 }, (_, b) => ({
  piece: `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`,
  type: PieceType.Byte,
}));
const tiny = (normal: readonly PieceSpec[], extra: Partial<ModelSpec> = {}): Uint8Array =>
  model({ pieces: [...SPECIALS, ...BYTES, ...normal], ...extra });

const realModel = (): Uint8Array => readFileSync(goldenPath('llama', 'tokenizer.model'));

describe('parseSentencePieceModel on the real LLaMA tokenizer.model', () => {
  it('reads 32000 pieces with their types and the LLaMA trainer and normaliser settings', () => {
    const parsed = parseSentencePieceModel(realModel());
    expect(parsed.pieces).toHaveLength(32000);
    expect(parsed.pieces.slice(0, 4)).toEqual([
      { piece: '<unk>', score: 0, type: PieceType.Unknown },
      { piece: '<s>', score: 0, type: PieceType.Control },
      { piece: '</s>', score: 0, type: PieceType.Control },
      { piece: '<0x00>', score: 0, type: PieceType.Byte },
    ]);
    // MODEL_SPEC §5.9: byte pieces are ids 3..258, so "\n" is 13.
    expect(parsed.pieces[13]?.piece).toBe('<0x0A>');
    expect(parsed.pieces[258]?.piece).toBe('<0xFF>');
    expect(parsed.pieces.filter((p) => p.type === PieceType.Byte)).toHaveLength(256);
    expect(parsed.pieces[259]).toEqual({ piece: '\u2581\u2581', score: -1e9, type: PieceType.Normal });
    expect(parsed.pieces[260]).toEqual({ piece: '\u2581t', score: -1, type: PieceType.Normal });
    expect(parsed.trainerSpec).toMatchObject({
      modelType: ModelType.Bpe,
      vocabSize: 32000,
      byteFallback: true,
      unkId: 0,
      bosId: 1,
      eosId: 2,
      padId: -1,
      unkSurface: ' \u2047 ',
      treatWhitespaceAsSuffix: false,
    });
    expect(parsed.normalizerSpec).toEqual({
      name: 'identity',
      precompiledCharsmapBytes: 0,
      addDummyPrefix: true,
      removeExtraWhitespaces: false,
      escapeWhitespaces: true,
    });
  });
});

describe('corrupt or unusable tokenizer.model files', () => {
  const bytes = realModel();

  it('rejects an empty file and random bytes with the file name in the message', () => {
    expect(() => LlamaTokenizer.fromBuffer(new Uint8Array(0), 'x.model')).toThrow('x.model: file is empty');
    const noise = Uint8Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24);
    expect(() => LlamaTokenizer.fromBuffer(noise, 'noise.model')).toThrow(SentencePieceModelError);
    expect(() => LlamaTokenizer.fromBuffer(noise, 'noise.model')).toThrow(/^noise\.model: /);
  });

  it('rejects a file cut off anywhere, inside a field or between pieces', () => {
    // Cuts inside a piece, inside the trainer spec, inside the normaliser spec, and one byte short.
    for (const cut of [1, 2, 5, 1000, 250_000, bytes.length - 200, bytes.length - 30, bytes.length - 1]) {
      expect(() => LlamaTokenizer.fromBuffer(bytes.subarray(0, cut)), `cut at ${cut}`).toThrow(
        SentencePieceModelError,
      );
    }
    expect(() => LlamaTokenizer.fromBuffer(bytes.subarray(0, bytes.length - 1))).toThrow(/truncated file\?/);
  });

  it('rejects a file cut exactly after a piece (valid protobuf, but the specs are gone)', () => {
    // Piece messages are `0a <len> ...`: walk 1000 of them to find a clean boundary.
    let offset = 0;
    for (let i = 0; i < 1000; i++) {
      offset += 2 + (bytes[offset + 1] ?? 0);
    }
    expect(() => LlamaTokenizer.fromBuffer(bytes.subarray(0, offset), 'cut.model')).toThrow(
      /^cut\.model: not a valid SentencePiece model: trainer_spec is missing after 1000 pieces \(truncated file\?\)/,
    );
  });

  it('rejects a file that lost its normaliser spec (the defaults would tokenize differently)', () => {
    const withoutNormalizer = model({ pieces: [...SPECIALS, ...BYTES] }).subarray(
      0,
      -len(3, IDENTITY).length,
    );
    expect(() => LlamaTokenizer.fromBuffer(withoutNormalizer)).toThrow(
      /normalizer_spec is missing after 259 pieces/,
    );
  });

  it('rejects flipped bytes that break the structure, naming the offset', () => {
    const broken = Uint8Array.from(bytes);
    broken[1] = 0xff; // the first piece's length now claims far more bytes than the piece has
    expect(() => LlamaTokenizer.fromBuffer(broken)).toThrow(
      /not a valid SentencePiece model: .* \(at byte \d+\)/,
    );
  });

  it('rejects duplicate pieces, a missing or doubled unknown piece, and bad byte pieces', () => {
    expect(() => LlamaTokenizer.fromBuffer(tiny([{ piece: 'a' }, { piece: 'a' }]))).toThrow(
      'piece "a" is defined twice (ids 259 and 260)',
    );
    expect(() => LlamaTokenizer.fromBuffer(model({ pieces: [{ piece: 'a' }] }))).toThrow(
      'exactly one unknown piece, found 0',
    );
    expect(() => LlamaTokenizer.fromBuffer(tiny([{ piece: '<unk2>', type: PieceType.Unknown }]))).toThrow(
      'exactly one unknown piece, found 2',
    );
    expect(() => LlamaTokenizer.fromBuffer(tiny([], { trainer: [...int(3, ModelType.Bpe)] }))).toThrow(
      'byte piece "<0x00>" (id 3) found although byte_fallback is off',
    );
    expect(() => LlamaTokenizer.fromBuffer(tiny([{ piece: '<0xZZ>', type: PieceType.Byte }]))).toThrow(
      'is not of the form <0xXX>',
    );
    expect(() => LlamaTokenizer.fromBuffer(model({ pieces: [...SPECIALS, ...BYTES.slice(1)] }))).toThrow(
      'byte_fallback is on but the byte piece <0x00> is missing',
    );
    expect(() => LlamaTokenizer.fromBuffer(model({ pieces: [...SPECIALS, { piece: '' }] }))).toThrow(
      'piece 3 has no text',
    );
    expect(() =>
      LlamaTokenizer.fromBuffer(model({ pieces: [...SPECIALS, { piece: 'a', type: 9 }] })),
    ).toThrow('piece 3 has unknown type 9');
  });

  it('refuses models it would tokenize differently from SentencePiece', () => {
    const unigram = [...int(3, ModelType.Unigram), ...int(35, 1)];
    expect(() => LlamaTokenizer.fromBuffer(tiny([], { trainer: unigram }))).toThrow(
      'model_type is 1, but only BPE (2) models are supported',
    );
    const nfkc = [...str(1, 'nmt_nfkc'), ...len(2, [1, 2, 3])];
    expect(() => LlamaTokenizer.fromBuffer(tiny([], { normalizer: nfkc }))).toThrow(
      'normalizer "nmt_nfkc" has compiled rules',
    );
    const noBos = [...BPE_TRAINER, ...int(41, 7)];
    expect(() => LlamaTokenizer.fromBuffer(tiny([], { trainer: noBos }))).toThrow(
      'bos_id 7 is not a control piece',
    );
  });

  it('names the path when the file cannot be read', () => {
    expect(() => LlamaTokenizer.fromFile('/nonexistent/tokenizer.model')).toThrow(
      /^\/nonexistent\/tokenizer\.model: cannot read the tokenizer model: .*ENOENT/,
    );
  });
});

describe('SentencePiece BPE rules beyond what LLaMA exercises (synthetic models)', () => {
  const ids = (tok: LlamaTokenizer, text: string): string[] =>
    tok.encode(text).map((id) => tok.idToPiece(id));

  it('merges the highest-scoring pair first and breaks score ties leftmost', () => {
    const tok = LlamaTokenizer.fromBuffer(
      tiny([
        { piece: '\u2581', score: -10 },
        { piece: 'a', score: -10 },
        { piece: 'b', score: -10 },
        { piece: 'ab', score: -1 },
        { piece: 'ba', score: -2 },
        { piece: 'aa', score: -1 },
      ]),
    );
    // "▁aba": ab (−1) beats ba (−2) → ▁ ab a.
    expect(ids(tok, 'aba')).toEqual(['\u2581', 'ab', 'a']);
    // "▁aaa": aa at 1 and aa at 2 tie; the left one wins → ▁ aa a.
    expect(ids(tok, 'aaa')).toEqual(['\u2581', 'aa', 'a']);
    // "▁bab": ba (−2) and ab (−1) overlap; the higher score wins although ba is further left.
    expect(ids(tok, 'bab')).toEqual(['\u2581', 'b', 'ab']);
  });

  it('keeps user-defined pieces whole and never merges across them', () => {
    const tok = LlamaTokenizer.fromBuffer(
      tiny([
        { piece: '\u2581', score: -10 },
        { piece: 'x', score: -10 },
        { piece: '<sep>', type: PieceType.UserDefined },
        { piece: 'x<', score: 0 },
      ]),
    );
    expect(ids(tok, 'x<sep>x')).toEqual(['\u2581', 'x', '<sep>', 'x']);
  });

  it('splits a merged UNUSED piece back into the pieces it came from', () => {
    const tok = LlamaTokenizer.fromBuffer(
      tiny([
        { piece: '\u2581', score: -10 },
        { piece: 'a', score: -10 },
        { piece: 'b', score: -10 },
        { piece: 'ab', score: -1, type: PieceType.Unused },
      ]),
    );
    expect(ids(tok, 'ab')).toEqual(['\u2581', 'a', 'b']);
  });

  it('without byte fallback folds a run of unknown characters into one <unk>', () => {
    const tok = LlamaTokenizer.fromBuffer(
      model({
        pieces: [...SPECIALS, { piece: '\u2581', score: -1 }, { piece: 'a', score: -1 }],
        trainer: [...int(3, ModelType.Bpe), ...int(43, -1)],
      }),
    );
    expect(tok.encode('a\u4e2d\u6587a')).toEqual([3, 4, 0, 4]);
    expect(tok.decode([3, 4, 0, 4])).toBe('a \u2047 a');
  });

  it('applies remove_extra_whitespaces and add_dummy_prefix=false when a model asks for them', () => {
    const pieces = [
      { piece: '\u2581', score: -1 },
      { piece: 'a', score: -1 },
    ];
    const squeeze = LlamaTokenizer.fromBuffer(tiny(pieces, { normalizer: [...str(1, 'identity')] }));
    expect(ids(squeeze, '  a   a  ')).toEqual(['\u2581', 'a', '\u2581', 'a']);
    expect(squeeze.encode('   ')).toEqual([]);
    const noPrefix = LlamaTokenizer.fromBuffer(tiny(pieces, { normalizer: [...int(3, 0), ...int(4, 0)] }));
    expect(ids(noPrefix, 'a a')).toEqual(['a', '\u2581', 'a']);
  });
});
