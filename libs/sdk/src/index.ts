// Public entry of @imagebind-llm/client: the client, input builders, error type and the
// contract types and enums a caller needs, so most code imports from this package alone.
import { commonV1, gatewayV1 } from '@imagebind-llm/proto';

export { ImageBindClient } from './image-bind-client';
export type { CallOptions } from './call-runner';
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_RETRY,
  DEFAULT_STREAM_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  type ImageBindClientOptions,
  type RetryOptions,
  type TlsOptions,
} from './client-options';
export type {
  BatchItemInput,
  BatchItemResult,
  BatchJobPage,
  EmbedManyResult,
  EmbedRequest,
  EmbedResult,
  GenerateRequest,
  InputEmbedding,
  ListBatchJobsRequest,
  SearchRequest,
  StreamBatchJobResultsOptions,
  SubmitBatchJobRequest,
} from './client-types';
export {
  GenerateStream,
  type FinishReasonName,
  type GenerateChunk,
  type GenerateResult,
} from './generate-stream';
export {
  ImageBindError,
  isImageBindError,
  type GrpcStatusName,
  type ImageBindErrorInit,
} from './image-bind-error';
export {
  audio,
  embedding,
  EMBEDDING_LENGTH,
  guessMediaType,
  MODALITY_BY_NAME,
  image,
  pointCloud,
  text,
  uri,
  video,
  type EmbeddingOptions,
  type MediaSource,
  type ModalityName,
} from './input-builders';
export { decodeFloat32Bytes, decodeFloat32Tensor, type Float32Tensor } from './tensor-decode';

/** The generated contract namespaces, for message types the SDK does not wrap. */
export { commonV1, gatewayV1 };

// Enums re-exported as both value and type, so `Modality.MODALITY_IMAGE` works without importing
// the generated namespaces.
export const Modality = commonV1.Modality;
export type Modality = commonV1.Modality;
export const BatchJobKind = gatewayV1.BatchJobKind;
export type BatchJobKind = gatewayV1.BatchJobKind;
export const BatchJobState = gatewayV1.BatchJobState;
export type BatchJobState = gatewayV1.BatchJobState;
export const DataType = commonV1.DataType;
export type DataType = commonV1.DataType;

export type MultimodalInput = gatewayV1.MultimodalInput;
export type CacheOptions = gatewayV1.CacheOptions;
export type SamplingParameters = gatewayV1.SamplingParameters;
export type GenerateUsage = gatewayV1.GenerateUsage;
export type SearchHit = gatewayV1.SearchHit;
export type ModelInfo = gatewayV1.ModelInfo;
export type BatchJob = gatewayV1.BatchJob;
export type BatchJobOptions = gatewayV1.BatchJobOptions;
export type BatchItemError = gatewayV1.BatchItemError;
