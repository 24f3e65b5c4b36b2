import { WireType } from '@bufbuild/protobuf/wire';
import { ProtobufDecodeError, ProtobufReader } from './protobuf-wire.reader';

/**
 * The parts of SentencePiece's `ModelProto` (sentencepiece_model.proto) that encoding and decoding
 * depend on. Training-only settings are skipped. Defaults are the proto2 defaults declared in that
 * schema, because a field equal to its default may be absent from the file.
 */

/** `ModelProto.SentencePiece.Type`. */
export const PieceType = {
  Normal: 1,
  Unknown: 2,
  Control: 3,
  UserDefined: 4,
  Unused: 5,
  Byte: 6,
} as const;
export type PieceType = (typeof PieceType)[keyof typeof PieceType];

/** `TrainerSpec.ModelType`. */
export const ModelType = {
  Unigram: 1,
  Bpe: 2,
  Word: 3,
  Char: 4,
} as const;
export type ModelType = (typeof ModelType)[keyof typeof ModelType];

export interface SentencePiece {
  readonly piece: string;
  /** float32 as stored; BPE merges the pair whose piece has the highest score. */
  readonly score: number;
  readonly type: PieceType;
}

export interface TrainerSpec {
  readonly modelType: number;
  readonly vocabSize: number;
  readonly byteFallback: boolean;
  readonly treatWhitespaceAsSuffix: boolean;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  /** −1 when the model has no padding piece (LLaMA). */
  readonly padId: number;
  /** What decoding prints for the unknown piece. */
  readonly unkSurface: string;
}

export interface NormalizerSpec {
  readonly name: string;
  /** Size of the compiled normalisation rules; 0 means the identity mapping. */
  readonly precompiledCharsmapBytes: number;
  readonly addDummyPrefix: boolean;
  readonly removeExtraWhitespaces: boolean;
  readonly escapeWhitespaces: boolean;
}

export interface SentencePieceModel {
  readonly pieces: readonly SentencePiece[];
  readonly trainerSpec: TrainerSpec;
  readonly normalizerSpec: NormalizerSpec;
}

/** A `tokenizer.model` that is not a usable SentencePiece model; the message says why and where. */
export class SentencePieceModelError extends Error {
  override readonly name = 'SentencePieceModelError';

  constructor(
    readonly source: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${source}: ${detail}`, options);
  }
}

export const DEFAULT_TRAINER_SPEC: TrainerSpec = {
  modelType: ModelType.Unigram,
  vocabSize: 8000,
  byteFallback: false,
  treatWhitespaceAsSuffix: false,
  unkId: 0,
  bosId: 1,
  eosId: 2,
  padId: -1,
  unkSurface: ' \u2047 ',
};

export const DEFAULT_NORMALIZER_SPEC: NormalizerSpec = {
  name: '',
  precompiledCharsmapBytes: 0,
  addDummyPrefix: true,
  removeExtraWhitespaces: true,
  escapeWhitespaces: true,
};

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const BYTE_PIECE = /^<0x[0-9A-F]{2}>$/;

/**
 * Parses and validates a serialized `ModelProto`. Besides wire-format errors it rejects what
 * SentencePiece itself refuses to load (empty or duplicate pieces, no unknown piece, byte pieces
 * without byte fallback), so a bad file fails here rather than as wrong token ids later.
 *
 * @param source names the file in error messages
 */
export function parseSentencePieceModel(bytes: Uint8Array, source = 'tokenizer.model'): SentencePieceModel {
  if (bytes.length === 0) {
    throw new SentencePieceModelError(source, 'file is empty');
  }
  let model: SentencePieceModel;
  try {
    model = readModelProto(new ProtobufReader(bytes));
  } catch (error) {
    if (error instanceof ProtobufDecodeError) {
      throw new SentencePieceModelError(source, `not a valid SentencePiece model: ${error.message}`, {
        cause: error,
      });
    }
    throw error;
  }
  validatePieces(model, source);
  return model;
}

function readModelProto(reader: ProtobufReader): SentencePieceModel {
  const pieces: SentencePiece[] = [];
  let trainerSpec: TrainerSpec | undefined;
  let normalizerSpec: NormalizerSpec | undefined;
  while (!reader.done) {
    const tag = reader.readTag();
    switch (tag.fieldNumber) {
      case 1:
        reader.expect(tag, WireType.LengthDelimited, 'ModelProto.pieces');
        pieces.push(readPiece(reader.readMessage(), pieces.length));
        break;
      case 2:
        reader.expect(tag, WireType.LengthDelimited, 'ModelProto.trainer_spec');
        // A repeated singular message merges into the earlier one (protobuf semantics).
        trainerSpec = readTrainerSpec(reader.readMessage(), trainerSpec ?? DEFAULT_TRAINER_SPEC);
        break;
      case 3:
        reader.expect(tag, WireType.LengthDelimited, 'ModelProto.normalizer_spec');
        normalizerSpec = readNormalizerSpec(reader.readMessage(), normalizerSpec ?? DEFAULT_NORMALIZER_SPEC);
        break;
      default:
        // self_test_data (4), denormalizer_spec (5) and future fields do not affect tokenization.
        reader.skip(tag);
    }
  }
  // SentencePiece always writes both specs after the pieces. A file cut at a field boundary is
  // still valid protobuf, and the proto defaults (e.g. remove_extra_whitespaces = true) would
  // then tokenize differently without any error, so a missing spec means a damaged file.
  if (trainerSpec === undefined || normalizerSpec === undefined) {
    const missing = trainerSpec === undefined ? 'trainer_spec' : 'normalizer_spec';
    throw new ProtobufDecodeError(
      `${missing} is missing after ${pieces.length} pieces (truncated file?)`,
      reader.offset,
    );
  }
  return { pieces, trainerSpec, normalizerSpec };
}

function readPiece(reader: ProtobufReader, index: number): SentencePiece {
  const start = reader.offset;
  let piece: string | undefined;
  let score = 0;
  let type: number = PieceType.Normal;
  while (!reader.done) {
    const tag = reader.readTag();
    switch (tag.fieldNumber) {
      case 1:
        reader.expect(tag, WireType.LengthDelimited, 'SentencePiece.piece');
        piece = reader.readString();
        break;
      case 2:
        reader.expect(tag, WireType.Bit32, 'SentencePiece.score');
        score = reader.readFloat();
        break;
      case 3:
        reader.expect(tag, WireType.Varint, 'SentencePiece.type');
        type = reader.readInt32();
        if (type < PieceType.Normal || type > PieceType.Byte) {
          throw new ProtobufDecodeError(`piece ${index} has unknown type ${type}`, tag.offset);
        }
        break;
      default:
        reader.skip(tag);
    }
  }
  if (piece === undefined || piece.length === 0) {
    throw new ProtobufDecodeError(`piece ${index} has no text`, start);
  }
  if (!Number.isFinite(score)) {
    throw new ProtobufDecodeError(`piece ${index} (${JSON.stringify(piece)}) has score ${score}`, start);
  }
  return { piece, score, type: type as PieceType };
}

function readTrainerSpec(reader: ProtobufReader, base: TrainerSpec): TrainerSpec {
  const spec: Mutable<TrainerSpec> = { ...base };
  while (!reader.done) {
    const tag = reader.readTag();
    // Field numbers from sentencepiece_model.proto; only the ones tokenization depends on.
    switch (tag.fieldNumber) {
      case 3:
        reader.expect(tag, WireType.Varint, 'TrainerSpec.model_type');
        spec.modelType = reader.readInt32();
        break;
      case 4:
        reader.expect(tag, WireType.Varint, 'TrainerSpec.vocab_size');
        spec.vocabSize = reader.readInt32();
        break;
      case 24:
        reader.expect(tag, WireType.Varint, 'TrainerSpec.treat_whitespace_as_suffix');
        spec.treatWhitespaceAsSuffix = reader.readBool();
        break;
      case 35:
        reader.expect(tag, WireType.Varint, 'TrainerSpec.byte_fallback');
        spec.byteFallback = reader.readBool();
        break;
      case 40:
        reader.expect(tag, WireType.Varint, 'TrainerSpec.unk_id');
        spec.unkId = reader.readInt32();
        break;
      case 41:
        reader.expect(tag, WireType.Varint, 'TrainerSpec.bos_id');
        spec.bosId = reader.readInt32();
        break;
      case 42:
        reader.expect(tag, WireType.Varint, 'TrainerSpec.eos_id');
        spec.eosId = reader.readInt32();
        break;
      case 43:
        reader.expect(tag, WireType.Varint, 'TrainerSpec.pad_id');
        spec.padId = reader.readInt32();
        break;
      case 44:
        reader.expect(tag, WireType.LengthDelimited, 'TrainerSpec.unk_surface');
        spec.unkSurface = reader.readString();
        break;
      default:
        reader.skip(tag);
    }
  }
  return spec;
}

function readNormalizerSpec(reader: ProtobufReader, base: NormalizerSpec): NormalizerSpec {
  const spec: Mutable<NormalizerSpec> = { ...base };
  while (!reader.done) {
    const tag = reader.readTag();
    switch (tag.fieldNumber) {
      case 1:
        reader.expect(tag, WireType.LengthDelimited, 'NormalizerSpec.name');
        spec.name = reader.readString();
        break;
      case 2:
        reader.expect(tag, WireType.LengthDelimited, 'NormalizerSpec.precompiled_charsmap');
        spec.precompiledCharsmapBytes = reader.readBytes().length;
        break;
      case 3:
        reader.expect(tag, WireType.Varint, 'NormalizerSpec.add_dummy_prefix');
        spec.addDummyPrefix = reader.readBool();
        break;
      case 4:
        reader.expect(tag, WireType.Varint, 'NormalizerSpec.remove_extra_whitespaces');
        spec.removeExtraWhitespaces = reader.readBool();
        break;
      case 5:
        reader.expect(tag, WireType.Varint, 'NormalizerSpec.escape_whitespaces');
        spec.escapeWhitespaces = reader.readBool();
        break;
      default:
        reader.skip(tag);
    }
  }
  return spec;
}

/** The checks SentencePiece's model loader makes (model_interface.cc), with clearer messages. */
function validatePieces(model: SentencePieceModel, source: string): void {
  const fail = (detail: string): never => {
    throw new SentencePieceModelError(source, detail);
  };
  if (model.pieces.length === 0) {
    fail('the model has no pieces');
  }
  const seen = new Map<string, number>();
  let unknownCount = 0;
  const byteFallback = model.trainerSpec.byteFallback;
  model.pieces.forEach(({ piece, type }, id) => {
    const earlier = seen.get(piece);
    if (earlier !== undefined) {
      fail(`piece ${JSON.stringify(piece)} is defined twice (ids ${earlier} and ${id})`);
    }
    seen.set(piece, id);
    if (type === PieceType.Unknown) {
      unknownCount++;
    }
    if (type === PieceType.Byte) {
      if (!byteFallback) {
        fail(`byte piece ${JSON.stringify(piece)} (id ${id}) found although byte_fallback is off`);
      }
      if (!BYTE_PIECE.test(piece)) {
        fail(`byte piece ${JSON.stringify(piece)} (id ${id}) is not of the form <0xXX>`);
      }
    }
  });
  if (unknownCount !== 1) {
    fail(`the model must define exactly one unknown piece, found ${unknownCount}`);
  }
}
