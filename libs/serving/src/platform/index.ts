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
  embedInputs,
  PROTO_MODALITY,
  ROUTE,
  toRequestIndices,
  type EmbeddedInput,
  type EmbeddedInputs,
  type PlatformInput,
} from './embed-inputs';
