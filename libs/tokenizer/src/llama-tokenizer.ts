import { readFileSync } from 'node:fs';
import { segmentBpe, type MergeablePiece } from './bpe-segmenter';
import { IncrementalDetokenizer } from './incremental-detokenizer';
import {
  ModelType,
  parseSentencePieceModel,
  PieceType,
  SentencePieceModelError,
  type NormalizerSpec,
  type SentencePieceModel,
} from './sentencepiece-model.parser';
import { normalizeIdentity, SPACE_SYMBOL } from './sentencepiece-normalizer';
import { decodeByteRun } from './utf8-bytes';

export interface EncodeOptions {
  /** Prepend BOS (the official prompt does; MODEL_SPEC §5.7). Default false. */
  readonly bos?: boolean;
  /** Append EOS. Default false. */
  readonly eos?: boolean;
}

/**
 * How one non-byte piece decodes (used by `decode` and the streaming detokenizer, which must agree).
 * `consumedBosSpace` is true when the piece gave up its leading ▁ as the dummy prefix.
 */
export interface PieceSurface {
  readonly text: string;
  readonly consumedBosSpace: boolean;
}

/**
 * LLaMA-1's SentencePiece BPE tokenizer, read from `tokenizer.model` (MODEL_SPEC §5.9) and
 * reproducing Python `sentencepiece` token for token: identity normaliser, ▁ for spaces, dummy ▁
 * prefix, highest-score-first BPE merges, and UTF-8 byte fallback for anything not in the
 * vocabulary. Instances are immutable and safe to share between concurrent requests.
 */
export class LlamaTokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  /** −1: LLaMA has no padding piece (the generation buffer uses −1 as "empty"). */
  readonly padId: number;

  private readonly pieces: readonly string[];
  private readonly types: Uint8Array;
  private readonly idByPiece: Map<string, number>;
  private readonly mergeable: Map<string, MergeablePiece>;
  /** Token id of each byte's `<0xXX>` piece (byte fallback). */
  private readonly byteIds: Int32Array;
  /** The byte each `<0xXX>` id stands for, −1 for other ids. */
  private readonly byteOfId: Int16Array;
  /** User-defined pieces, longest first: they are matched whole and never merged. */
  private readonly userDefined: readonly string[];
  private readonly normalizer: NormalizerSpec;
  private readonly byteFallback: boolean;
  private readonly unkSurface: string;

  private constructor(model: SentencePieceModel, source: string) {
    const fail = (detail: string): never => {
      throw new SentencePieceModelError(source, detail);
    };
    const trainer = model.trainerSpec;
    if (trainer.modelType !== ModelType.Bpe) {
      fail(`model_type is ${trainer.modelType}, but only BPE (${ModelType.Bpe}) models are supported`);
    }
    const normalizer = model.normalizerSpec;
    if (normalizer.precompiledCharsmapBytes > 0) {
      fail(`normalizer "${normalizer.name}" has compiled rules; only the identity normaliser is supported`);
    }
    if (trainer.treatWhitespaceAsSuffix) {
      fail('treat_whitespace_as_suffix is not supported');
    }

    const count = model.pieces.length;
    this.vocabSize = count;
    this.pieces = model.pieces.map((p) => p.piece);
    this.types = Uint8Array.from(model.pieces, (p) => p.type);
    this.idByPiece = new Map();
    this.mergeable = new Map();
    const userDefined: string[] = [];
    model.pieces.forEach(({ piece, score, type }, id) => {
      this.idByPiece.set(piece, id);
      // bpe_model.cc only merges into normal, user-defined and unused pieces; control, unknown
      // and byte pieces are reserved (so the text "<s>" is never encoded as BOS).
      if (type === PieceType.Normal || type === PieceType.UserDefined || type === PieceType.Unused) {
        this.mergeable.set(piece, { score, unused: type === PieceType.Unused });
      }
      if (type === PieceType.UserDefined) {
        userDefined.push(piece);
      }
    });
    this.userDefined = userDefined.sort((a, b) => b.length - a.length);

    const unkId = model.pieces.findIndex((p) => p.type === PieceType.Unknown);
    this.unkId = unkId;
    const checkSpecial = (name: string, id: number): number =>
      Number.isInteger(id) && id >= 0 && id < count && this.types[id] === PieceType.Control
        ? id
        : fail(`${name}_id ${id} is not a control piece of this ${count}-piece model`);
    this.bosId = checkSpecial('bos', trainer.bosId);
    this.eosId = checkSpecial('eos', trainer.eosId);
    this.padId = trainer.padId < 0 ? -1 : checkSpecial('pad', trainer.padId);

    this.byteFallback = trainer.byteFallback;
    this.byteIds = new Int32Array(256).fill(unkId);
    this.byteOfId = new Int16Array(count).fill(-1);
    for (let byte = 0; byte < 256; byte++) {
      const piece = `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
      const id = this.idByPiece.get(piece);
      if (id !== undefined && this.types[id] === PieceType.Byte) {
        this.byteIds[byte] = id;
        this.byteOfId[id] = byte;
      } else if (this.byteFallback) {
        fail(`byte_fallback is on but the byte piece ${piece} is missing`);
      }
    }
    this.normalizer = normalizer;
    this.unkSurface = trainer.unkSurface;
  }

  /** Reads and validates a `tokenizer.model` file. Throws SentencePieceModelError when unusable. */
  static fromFile(path: string): LlamaTokenizer {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (error) {
      throw new SentencePieceModelError(path, `cannot read the tokenizer model: ${String(error)}`, {
        cause: error,
      });
    }
    return LlamaTokenizer.fromBuffer(bytes, path);
  }

  /** @param source names the model in error messages */
  static fromBuffer(bytes: Uint8Array, source = 'tokenizer.model'): LlamaTokenizer {
    return new LlamaTokenizer(parseSentencePieceModel(bytes, source), source);
  }

  /** Token ids of `text`, as `sp.encode(text)` (+ BOS/EOS when asked, as LLaMA's Tokenizer). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    if (options.bos === true) {
      ids.push(this.bosId);
    }
    const normalized = normalizeIdentity(text, this.normalizer);
    const { symbols, frozen } = this.initialSymbols(normalized);
    const pieces = segmentBpe(symbols, frozen, (piece) => this.mergeable.get(piece));
    let previousUnknown = false;
    for (const piece of pieces) {
      const id = this.idByPiece.get(piece) ?? this.unkId;
      const unknown = this.types[id] === PieceType.Unknown;
      if (unknown && this.byteFallback) {
        // MODEL_SPEC §5.9: a symbol outside the vocabulary becomes its UTF-8 bytes' <0xXX> ids.
        for (const byte of Buffer.from(piece, 'utf8')) {
          ids.push(this.byteIds[byte] ?? this.unkId);
        }
      } else if (!(unknown && previousUnknown)) {
        // Without byte fallback SentencePiece folds a run of unknown symbols into one <unk>.
        ids.push(id);
      }
      previousUnknown = unknown;
    }
    if (options.eos === true) {
      ids.push(this.eosId);
    }
    return ids;
  }

  /**
   * Text of `ids`, as `sp.decode(ids)`: pieces concatenated with ▁ as a space, byte pieces joined
   * into UTF-8 (each invalid byte → U+FFFD), the dummy-prefix space dropped, control ids silent.
   * Throws RangeError for an id outside the vocabulary (SentencePiece refuses those too).
   */
  decode(ids: readonly number[]): string {
    let text = '';
    let bytes: number[] = [];
    let atStart = true;
    let bosSpaceSeen = false;
    for (const id of ids) {
      this.checkId(id);
      const byte = this.byteOfId[id] ?? -1;
      if (byte >= 0) {
        bytes.push(byte);
        continue;
      }
      if (bytes.length > 0) {
        text += decodeByteRun(bytes);
        bytes = [];
      }
      // Only the first ▁-led piece loses its ▁, and only if nothing visible came before it.
      if (bosSpaceSeen || text.length > 0) {
        atStart = false;
      }
      const surface = this.pieceSurface(id, atStart);
      bosSpaceSeen = surface.consumedBosSpace;
      text += surface.text;
    }
    return text + decodeByteRun(bytes);
  }

  /** A streaming decoder for generated ids; see IncrementalDetokenizer. */
  createDetokenizer(): IncrementalDetokenizer {
    return new IncrementalDetokenizer(this);
  }

  /** The piece text of an id (▁ for spaces, `<0xXX>` for bytes). Throws RangeError when out of range. */
  idToPiece(id: number): string {
    this.checkId(id);
    return this.pieces[id] ?? '';
  }

  /** The id of a piece, or the unknown id when it is not in the vocabulary (as SentencePiece). */
  pieceToId(piece: string): number {
    return this.idByPiece.get(piece) ?? this.unkId;
  }

  isControl(id: number): boolean {
    return this.types[id] === PieceType.Control;
  }

  /** The byte a byte-fallback id stands for, or undefined for other ids. */
  byteValue(id: number): number | undefined {
    const byte = this.byteOfId[id] ?? -1;
    return byte >= 0 ? byte : undefined;
  }

  /**
   * The text of one non-byte piece. `atStart` says the dummy-prefix space may still be pending;
   * it is dropped only because LLaMA's normaliser adds that prefix (sentencepiece_processor.cc).
   */
  pieceSurface(id: number, atStart: boolean): PieceSurface {
    this.checkId(id);
    const type = this.types[id];
    if (type === PieceType.Control) {
      return { text: '', consumedBosSpace: false };
    }
    if (type === PieceType.Unknown) {
      return { text: this.unkSurface, consumedBosSpace: false };
    }
    let piece = this.pieces[id] ?? '';
    let consumed = false;
    if (
      atStart &&
      (this.normalizer.addDummyPrefix || this.normalizer.removeExtraWhitespaces) &&
      piece.startsWith(SPACE_SYMBOL)
    ) {
      piece = piece.slice(SPACE_SYMBOL.length);
      // With whitespace removal every leading space is dropped, so keep looking.
      consumed = !this.normalizer.removeExtraWhitespaces;
    }
    return { text: piece.replaceAll(SPACE_SYMBOL, ' '), consumedBosSpace: consumed };
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }

  /** One symbol per character, except user-defined pieces, which are taken whole (longest match). */
  private initialSymbols(normalized: string): { symbols: string[]; frozen: boolean[] } {
    const symbols: string[] = [];
    const frozen: boolean[] = [];
    let i = 0;
    while (i < normalized.length) {
      const match =
        this.userDefined.length > 0
          ? this.userDefined.find((piece) => normalized.startsWith(piece, i))
          : undefined;
      if (match !== undefined) {
        symbols.push(match);
        frozen.push(true);
        i += match.length;
        continue;
      }
      const codePoint = normalized.codePointAt(i) ?? 0;
      const width = codePoint > 0xffff ? 2 : 1;
      symbols.push(normalized.slice(i, i + width));
      frozen.push(false);
      i += width;
    }
    return { symbols, frozen };
  }
}
