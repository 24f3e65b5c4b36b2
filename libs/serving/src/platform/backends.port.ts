import type { CallContext } from '@imagebind-llm/grpc-kit';
import type { bindV1, decoderV1, encoderV1, retrieverV1 } from '@imagebind-llm/proto';

/** The modalities the orchestration routes to encoders (MODEL_SPEC §1.1). */
export type RoutedModality = 'image' | 'video' | 'audio' | 'text' | 'point';

/** The downstream call context: deadline, request id, cancellation and logger of the client's call. */
export type HopContext = Pick<CallContext, 'deadline' | 'signal' | 'requestId' | 'logger'> &
  Partial<Pick<CallContext, 'method' | 'metadata' | 'peer' | 'trace'>>;

export interface EncoderBackend {
  encode(request: encoderV1.EncodeRequest, ctx: HopContext): Promise<encoderV1.EncodeResponse>;
}

export interface RetrieverBackend {
  search(request: retrieverV1.SearchRequest, ctx: HopContext): Promise<retrieverV1.SearchResponse>;
  getCollection(
    request: retrieverV1.GetCollectionRequest,
    ctx: HopContext,
  ): Promise<retrieverV1.GetCollectionResponse>;
}

export interface BindBackend {
  project(request: bindV1.ProjectRequest, ctx: HopContext): Promise<bindV1.ProjectResponse>;
}

export interface DecoderBackend {
  tokenize(request: decoderV1.TokenizeRequest, ctx: HopContext): Promise<decoderV1.TokenizeResponse>;
  generate(request: decoderV1.GenerateRequest, ctx: HopContext): AsyncIterable<decoderV1.GenerateResponse>;
  getModelStatus(ctx: HopContext): Promise<decoderV1.GetModelStatusResponse>;
}

/**
 * Everything the gateway calls (ARCHITECTURE §2), behind one port with two drivers: gRPC clients
 * to the services (distributed) or the same service implementations in this process (standalone).
 * The orchestration above it is identical in both modes, which is what makes standalone a faithful
 * stand-in for the distributed platform and the latency comparison of `bench/platform` fair.
 */
export interface PlatformBackends {
  readonly mode: 'standalone' | 'distributed';
  /** Undefined when no encoder serves the modality. */
  encoder(modality: RoutedModality): EncoderBackend | undefined;
  readonly retriever: RetrieverBackend;
  readonly bind: BindBackend;
  readonly decoder: DecoderBackend;
  close(): Promise<void>;
}
