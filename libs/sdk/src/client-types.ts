import type { commonV1, gatewayV1 } from '@imagebind-llm/proto';
import type { ImageBindError } from './image-bind-error';

type MultimodalInput = gatewayV1.MultimodalInput;

/** An instruction about weighted multimodal inputs (build inputs with `image()`, `audio()`, ...). */
export interface GenerateRequest {
  /** At least one input, mixed in the order given. */
  readonly inputs: readonly MultimodalInput[];
  /** The instruction (question) for the language model. */
  readonly instruction: string;
  /** Optional context for the prompt's "### Input:" section. */
  readonly input?: string;
  /** Visual cache settings; unset fields take the server defaults. */
  readonly cache?: gatewayV1.CacheOptions;
  /** Sampling settings; unset fields take the server defaults (temperature 0.1, top-p 0.75). */
  readonly sampling?: gatewayV1.SamplingParameters;
  /** Maximum new tokens, 1..512; the server default is 256. */
  readonly maxNewTokens?: number;
}

export interface EmbedRequest {
  /** At least one input. */
  readonly inputs: readonly MultimodalInput[];
  /** Also return the weighted fusion of all inputs. */
  readonly includeFused?: boolean;
  /** Also return the cache-blended query with these settings (implies `includeFused`). */
  readonly cache?: gatewayV1.CacheOptions;
  /**
   * Return each input's vector at unit length (divided by its norm) instead of as ImageBind emits
   * it (× the modality's logit scale). The fused and cached queries are never changed.
   */
  readonly normalize?: boolean;
}

/** The embedding of one input. */
export interface InputEmbedding {
  readonly modality: commonV1.Modality;
  /**
   * The ImageBind embedding (1024 values) as the model emits it: L2-normalised, then multiplied by
   * the modality's logit scale (MODEL_SPEC §3: text exp(learned) ≈ 14.3, audio 20, depth 5, thermal
   * 10, IMU 5; image, video and point clouds 1). Divide by its norm for a unit vector; compare two
   * inputs by cosine, not by the raw dot product.
   */
  readonly vector: Float32Array;
}

export interface EmbedResult {
  /** `embeddings[i]` belongs to `inputs[i]`. */
  readonly embeddings: InputEmbedding[];
  /** The fused query, when requested. */
  readonly fused?: Float32Array;
  /** The cache-blended query, when the cache ran. */
  readonly cached?: Float32Array;
}

/**
 * The outcome of one request of `embedMany`: what `embed` would have returned, or the
 * ImageBindError it would have thrown (branch on it exactly as for `embed`).
 */
export type EmbedManyResult =
  | { readonly ok: true; readonly result: EmbedResult }
  | { readonly ok: false; readonly error: ImageBindError };

export interface SearchRequest {
  /** The query inputs, fused as for generate. */
  readonly inputs: readonly MultimodalInput[];
  /** Number of hits, 1..1000; the server default is 10. */
  readonly k?: number;
  /** Collection to search; the visual cache collection when unset. */
  readonly collection?: string;
}

/** A new batch job: inline `items` or a `manifestUri`, not both. */
export interface SubmitBatchJobRequest {
  readonly kind: gatewayV1.BatchJobKind;
  readonly items?: readonly BatchItemInput[];
  /** A JSONL manifest of items the gateway fetches. */
  readonly manifestUri?: string;
  /** Settings shared by every item. */
  readonly options?: Partial<gatewayV1.BatchJobOptions>;
  /**
   * Idempotency key: resubmitting with it returns the existing job. One is generated when unset,
   * which is what makes submitting safe to retry on UNAVAILABLE.
   */
  readonly clientToken?: string;
}

export interface BatchItemInput {
  /** Your identifier for the item, unique in the job; defaults to its index. */
  readonly itemId?: string;
  readonly inputs: readonly MultimodalInput[];
  /** Per-item instruction for GENERATE jobs. */
  readonly instruction?: string;
  /** Per-item context for the prompt's "### Input:" section. */
  readonly input?: string;
}

export interface ListBatchJobsRequest {
  /** Jobs per page, 1..100; the server default is 20. */
  readonly pageSize?: number;
  /** `nextPageToken` of the previous page. */
  readonly pageToken?: string;
  /** Only jobs in these states. */
  readonly states?: readonly gatewayV1.BatchJobState[];
}

export interface BatchJobPage {
  /** Jobs, newest first. */
  readonly jobs: gatewayV1.BatchJob[];
  /** Token for the next page; undefined on the last page. */
  readonly nextPageToken: string | undefined;
}

export interface StreamBatchJobResultsOptions {
  /** First item index to stream; 0 (the default) starts at the beginning. */
  readonly startIndex?: number;
  /** Keep streaming as items finish, until the job is final. */
  readonly follow?: boolean;
}

/** The result of one batch item. */
export type BatchItemResult = {
  /** 0-based position of the item in the job. */
  readonly index: number;
  readonly itemId: string;
} & (
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'embedding'; readonly embedding: Float32Array }
  | { readonly kind: 'pointId'; readonly pointId: number }
  | { readonly kind: 'error'; readonly error: gatewayV1.BatchItemError }
  /** A result kind this SDK version does not know. */
  | { readonly kind: 'unknown' }
);
