export { LlamaTokenizer, type EncodeOptions, type PieceSurface } from './llama-tokenizer';
export { IncrementalDetokenizer, type DetokenizerVocabulary } from './incremental-detokenizer';
export { formatPrompt } from './prompt-template';
export {
  ModelType,
  parseSentencePieceModel,
  PieceType,
  SentencePieceModelError,
  type NormalizerSpec,
  type SentencePiece,
  type SentencePieceModel,
  type TrainerSpec,
} from './sentencepiece-model.parser';
export { ProtobufDecodeError } from './protobuf-wire.reader';
export { SPACE_SYMBOL } from './sentencepiece-normalizer';
