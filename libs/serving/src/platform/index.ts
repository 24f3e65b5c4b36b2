export type {
  BindBackend,
  DecoderBackend,
  EncoderBackend,
  HopContext,
  PlatformBackends,
  RetrieverBackend,
  RoutedModality,
} from './backends.port';
export {
  answer,
  blendThroughCache,
  cacheEnabled,
  type AnswerIntermediates,
  type AnswerOptions,
  type AnswerRequest,
  type CacheNeighbour,
} from './answer';
export {
  embedInputs,
  PROTO_MODALITY,
  ROUTE,
  toRequestIndices,
  type EmbeddedInput,
  type EmbeddedInputs,
  type PlatformInput,
} from './embed-inputs';
