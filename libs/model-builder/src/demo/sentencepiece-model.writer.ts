import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

/**
 * A LLaMA-style SentencePiece BPE `tokenizer.model` (a serialized `ModelProto` of
 * sentencepiece_model.proto), written field by field with @bufbuild/protobuf's BinaryWriter. The
 * layout follows the LLaMA tokenizer (MODEL_SPEC §5.9): `<unk>` = 0, `<s>` = 1, `</s>` = 2, the
 * byte-fallback pieces `<0x00>`..`<0xFF>` = 3..258, then merged pieces with decreasing scores and
 * the single characters last; BPE with byte fallback, identity normaliser, dummy prefix, whitespace
 * escaped to ▁.
 *
 * The merges are learnt here, by a few rounds of plain BPE over a small built-in English text, so
 * every merged piece is reachable by the encoder and common English words take few tokens. The
 * vocabulary is tiny and the model is for demos and tests, not for real LLaMA weights.
 */

/** U+2581, what SentencePiece writes for a space. */
const SPACE = '\u2581';
const SPECIAL_PIECES = 3;
const BYTE_PIECES = 256;
/** `<unk>`, `<s>`, `</s>` and the 256 byte pieces. */
export const SENTENCEPIECE_RESERVED_PIECES = SPECIAL_PIECES + BYTE_PIECES;

/** `ModelProto.SentencePiece.Type` values written here. */
const TYPE_NORMAL = 1;
const TYPE_UNKNOWN = 2;
const TYPE_CONTROL = 3;
const TYPE_BYTE = 6;
/** `TrainerSpec.ModelType.BPE`. */
const MODEL_TYPE_BPE = 2;

export interface SentencePieceModelOptions {
  /** Total number of pieces, reserved ones included (at least 259 + 1). */
  readonly vocabSize: number;
  /** Text the merges are learnt from (a built-in English text by default). */
  readonly corpus?: string;
}

export interface SentencePieceModelSummary {
  readonly vocabSize: number;
  /** Pieces learnt from the corpus. */
  readonly merges: number;
  /** Two- and three-letter pieces added when the corpus gave too few merges. */
  readonly fillers: number;
  /** Single characters (▁ and printable ASCII). */
  readonly characters: number;
}

interface Piece {
  readonly piece: string;
  readonly score: number;
  readonly type: number;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

/** Written for this generator: everyday English about pictures, sounds and answers. */
const DEFAULT_CORPUS = `
Below is an instruction that describes a task. Write a response that appropriately completes the request.
Below is an instruction that describes a task, paired with an input that provides further context.
### Instruction: Describe the image in detail. ### Input: ### Response:
The picture shows a young girl sitting on the grass in a park. She is playing a guitar and smiling.
There is a dog next to her, and the sun is shining through the trees behind them.
In the background you can hear birds singing and the sound of people talking and laughing.
The music is soft and calm, with a slow melody played on the piano and a gentle rhythm.
A man is walking along the beach with his child. The waves are rolling onto the sand and the sky is blue.
This is a photo of a small airplane flying over the mountains on a clear day.
The cat is sleeping on the sofa near the window, and the room is quiet and warm.
What is the person in the video doing? The person is cooking dinner in the kitchen for the family.
Where was this picture taken? It was taken in the city at night, when the streets were full of lights.
Generate caption of this image. A group of friends are standing together and looking at the camera.
The car is red and it is parked in front of an old house with a green door and white windows.
Can you tell me what you hear in this audio? I can hear rain falling on the roof and thunder far away.
The children are running and jumping in the garden while their mother is reading a book.
These animals live in the forest and they eat leaves, fruit and other plants that grow there.
The weather is cold today, so we should wear a coat and a hat when we go out for a walk.
Please explain the answer in one sentence and then give more details about each of the objects.
It looks like a beautiful morning: the water is still, the boats are white, and the hills are green.
I think that the most important thing is to listen to the question and to answer it clearly.
They went to the market to buy bread, cheese, apples, and flowers for the party on Sunday.
The 3D object is a chair with four legs, a round seat and a high back made of wood.
`;

/** Characters that get a piece of their own: ▁, then printable ASCII. */
function characterSet(corpus: string): string[] {
  const counts = new Map<string, number>();
  for (const ch of corpus.replace(/\s+/g, SPACE)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  const all = new Set<string>([SPACE]);
  for (let c = 0x21; c <= 0x7e; c++) all.add(String.fromCharCode(c));
  // Most frequent first (kept when the vocabulary is too small for all), then code point order.
  return [...all].sort((a, b) => {
    const d = (counts.get(b) ?? 0) - (counts.get(a) ?? 0);
    return d !== 0 ? d : a < b ? -1 : a > b ? 1 : 0;
  });
}

/**
 * Plain BPE training: words are `▁word` (the dummy prefix and escaped spaces put ▁ before every
 * word); the most frequent adjacent pair is merged, ties broken by the pair's text, until `budget`
 * new pieces exist or nothing is left to merge.
 */
function learnMerges(corpus: string, budget: number, taken: ReadonlySet<string>): string[] {
  const wordCounts = new Map<string, number>();
  for (const w of corpus.split(/\s+/)) {
    if (w !== '') wordCounts.set(SPACE + w, (wordCounts.get(SPACE + w) ?? 0) + 1);
  }
  const words = [...wordCounts].map(([w, count]) => ({ symbols: [...w], count }));
  const merges: string[] = [];
  const seen = new Set(taken);
  while (merges.length < budget) {
    const pairs = new Map<string, { a: string; b: string; count: number }>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const a = symbols[i]!;
        const b = symbols[i + 1]!;
        const key = `${a}\u0000${b}`;
        const p = pairs.get(key);
        if (p === undefined) pairs.set(key, { a, b, count });
        else p.count += count;
      }
    }
    let best: { key: string; a: string; b: string; count: number } | undefined;
    for (const [key, p] of pairs) {
      if (best === undefined || p.count > best.count || (p.count === best.count && key < best.key)) {
        best = { key, ...p };
      }
    }
    if (best === undefined) break;
    const merged = best.a + best.b;
    if (!seen.has(merged)) {
      seen.add(merged);
      merges.push(merged);
    }
    for (const word of words) {
      const out: string[] = [];
      const s = word.symbols;
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === best.a && s[i + 1] === best.b) {
          out.push(merged);
          i++;
        } else {
          out.push(s[i]!);
        }
      }
      word.symbols = out;
    }
  }
  return merges;
}

/** Extra pieces when the corpus runs out: two-letter, then three-letter lowercase strings. */
function* fillerPieces(): Generator<string> {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (const a of letters) for (const b of letters) yield a + b;
  for (const a of letters) for (const b of letters) for (const c of letters) yield a + b + c;
}

function byteName(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** The pieces of the model, in id order. */
function vocabulary(options: SentencePieceModelOptions): {
  pieces: Piece[];
  summary: SentencePieceModelSummary;
} {
  const { vocabSize } = options;
  if (!Number.isSafeInteger(vocabSize) || vocabSize <= SENTENCEPIECE_RESERVED_PIECES) {
    throw new Error(
      `vocabSize must be an integer above ${SENTENCEPIECE_RESERVED_PIECES} (3 control pieces + 256 bytes), got ${vocabSize}`,
    );
  }
  const corpus = options.corpus ?? DEFAULT_CORPUS;
  const pieces: Piece[] = [
    { piece: '<unk>', score: 0, type: TYPE_UNKNOWN },
    { piece: '<s>', score: 0, type: TYPE_CONTROL },
    { piece: '</s>', score: 0, type: TYPE_CONTROL },
  ];
  for (let b = 0; b < BYTE_PIECES; b++) pieces.push({ piece: byteName(b), score: 0, type: TYPE_BYTE });

  const room = vocabSize - SENTENCEPIECE_RESERVED_PIECES;
  const characters = characterSet(corpus).slice(0, room);
  const taken = new Set(characters);
  const merges = learnMerges(corpus, room - characters.length, taken);
  for (const m of merges) taken.add(m);
  const fillers: string[] = [];
  if (merges.length + characters.length < room) {
    for (const f of fillerPieces()) {
      if (merges.length + fillers.length + characters.length >= room) break;
      if (!taken.has(f)) {
        taken.add(f);
        fillers.push(f);
      }
    }
  }
  if (merges.length + fillers.length + characters.length < room) {
    throw new Error(`vocabSize ${vocabSize} is larger than this generator can fill`);
  }
  // Scores as in LLaMA's model: 0, −1, −2, … down the merged pieces, single characters last.
  let score = 0;
  for (const piece of [...merges, ...fillers, ...characters]) {
    pieces.push({ piece, score, type: TYPE_NORMAL });
    score -= 1;
  }
  return {
    pieces,
    summary: {
      vocabSize: pieces.length,
      merges: merges.length,
      fillers: fillers.length,
      characters: characters.length,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// ModelProto

/** The serialized `ModelProto` (see {@link writeSentencePieceModel}). */
export function encodeSentencePieceModel(options: SentencePieceModelOptions): {
  bytes: Uint8Array;
  summary: SentencePieceModelSummary;
} {
  const { pieces, summary } = vocabulary(options);
  const w = new BinaryWriter();
  const LEN = WireType.LengthDelimited;
  const VARINT = WireType.Varint;
  // ModelProto.pieces (1): SentencePiece { piece = 1; score = 2; type = 3 }.
  for (const p of pieces) {
    w.tag(1, LEN).fork();
    w.tag(1, LEN).string(p.piece);
    w.tag(2, WireType.Bit32).float(p.score);
    w.tag(3, VARINT).int32(p.type);
    w.join();
  }
  // ModelProto.trainer_spec (2), field numbers from sentencepiece_model.proto.
  w.tag(2, LEN).fork();
  w.tag(2, LEN).string('tokenizer'); // model_prefix
  w.tag(3, VARINT).int32(MODEL_TYPE_BPE); // model_type
  w.tag(4, VARINT).int32(summary.vocabSize); // vocab_size
  w.tag(10, WireType.Bit32).float(0.99995); // character_coverage
  w.tag(25, VARINT).bool(true); // split_digits
  w.tag(35, VARINT).bool(true); // byte_fallback
  w.tag(40, VARINT).int32(0); // unk_id
  w.tag(41, VARINT).int32(1); // bos_id
  w.tag(42, VARINT).int32(2); // eos_id
  w.tag(43, VARINT).int32(-1); // pad_id: none
  w.tag(44, LEN).string(' \u2047 '); // unk_surface
  w.join();
  // ModelProto.normalizer_spec (3): identity rules, no precompiled charsmap.
  w.tag(3, LEN).fork();
  w.tag(1, LEN).string('identity'); // name
  w.tag(3, VARINT).bool(true); // add_dummy_prefix
  w.tag(4, VARINT).bool(false); // remove_extra_whitespaces
  w.tag(5, VARINT).bool(true); // escape_whitespaces
  w.join();
  return { bytes: w.finish(), summary };
}

/**
 * Writes a LLaMA-style SentencePiece BPE `tokenizer.model` of exactly `vocabSize` pieces at `path`
 * (written under a temporary name, then renamed).
 */
export function writeSentencePieceModel(
  path: string,
  options: SentencePieceModelOptions,
): SentencePieceModelSummary {
  const { bytes, summary } = encodeSentencePieceModel(options);
  mkdirSync(dirname(path), { recursive: true });
  const partial = `${path}.partial`;
  writeFileSync(partial, bytes);
  renameSync(partial, path);
  return summary;
}
