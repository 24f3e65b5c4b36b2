export {
  EncoderRuntime,
  clipMean,
  type EncodeOptions,
  type EncodedItem,
  type EncoderItem,
  type EncoderLoadOptions,
  type EncoderModelInfo,
  type EncoderModelParts,
  type EncoderRuntimeOptions,
  type PreprocessedTensor,
} from './encoder-runtime';
export {
  DEFAULT_ENCODER_LIMITS,
  EncoderServiceImpl,
  type EncoderLimits,
  type EncoderServiceOptions,
} from './encoder.service-impl';
export {
  RowBatchedModel,
  type BatcherSettings,
  type RowBatchedModelOptions,
  type RowOutputs,
  type RowRunOptions,
  type RowSlice,
} from './row-batched-model';
export { BoundedConcurrency } from './bounded-concurrency';
export { ModelSlot, type ModelSlotState } from './model-slot';
export {
  BatchingMetrics,
  requestOutcome,
  type QueueDepthSource,
  type RequestOutcome,
} from './batching-metrics';
export { inputFileName } from './media-hint';
export { ENCODER_MAX_DELAY_MS, encoderEnvSchema, type EncoderEnvDefaults } from './host/encoder-env.schema';
export { runEncoderService, type EncoderServiceDefinition } from './host/run-encoder-service';
