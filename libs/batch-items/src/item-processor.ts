import { createHash } from 'node:crypto';
import { isImageBindError, type ImageBindClient } from '@imagebind-llm/client';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { callServerStream, callUnary, float32Tensor } from '@imagebind-llm/grpc-kit';
import { isTransientSourceError, readSource, type MediaSourcePolicy } from '@imagebind-llm/media-source';
import { gatewayV1, type retrieverV1 } from '@imagebind-llm/proto';
import { EmbedCoalescer, type EmbedCoalescingOptions } from './embed-coalescer';
import { sdkCall } from './sdk-call';

/** What the gateway stored per item (services/gateway/src/batch/batch-jobs.service.ts). */
interface StoredItem {
  readonly itemId: string;
  readonly item: unknown;
}

/** One item as the queue hands it over. */
export interface ItemContext {
  readonly jobId: string;
  readonly index: number;
  readonly kind: string;
  readonly item: unknown;
  readonly options: unknown;
  readonly signal: AbortSignal;
  /** W3C trace context of the item's span (libs/queue); the calls below carry it. */
  readonly trace?: Readonly<Record<string, string>>;
}

/** The stored result of an item; the gateway turns it into StreamBatchJobResultsResponse. */
export interface ItemResult {
  readonly itemId: string;
  readonly text?: string;
  /** float32 little-endian bytes, stored as they are (libs/queue packs binary fields). */
  readonly embedding?: Buffer;
  readonly pointId?: number;
}

/** Deadline, cancellation and trace context of one call an item makes. */
export interface ApiCall {
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  readonly trace?: Readonly<Record<string, string>>;
}

/** What a GENERATE item asks for; the job's shared options already folded in. */
export interface GenerateItem {
  readonly inputs: gatewayV1.MultimodalInput[];
  readonly instruction: string;
  readonly input: string;
  readonly cache?: gatewayV1.CacheOptions;
  readonly sampling?: gatewayV1.SamplingParameters;
  readonly maxNewTokens?: number;
}

/**
 * The platform's public API as batch items use it. Two drivers: the SDK over gRPC (the
 * batch-worker service, which goes through the gateway's API keys and rate limits like any
 * client) and the gateway's own orchestration in process (the standalone gateway's worker).
 */
export interface PlatformApi {
  /** The fused embedding of `inputs` (for one input, that input's embedding). */
  embed(inputs: gatewayV1.MultimodalInput[], call: ApiCall): Promise<Float32Array>;
  /** The whole generated text. */
  generate(request: GenerateItem, call: ApiCall): Promise<string>;
}

/**
 * The SDK driver of {@link PlatformApi}: calls the gateway over gRPC with the client's API key.
 * Embeds of items running at the same time share EmbedMany calls ({@link EmbedCoalescer}); each
 * item still gets exactly what its own Embed call would have given it.
 */
export function sdkPlatformApi(
  client: ImageBindClient,
  coalescing: EmbedCoalescingOptions = {},
): PlatformApi {
  const embeds = new EmbedCoalescer(client, coalescing);
  return {
    embed: async (inputs, call) => {
      const r = await embeds.embed({ inputs, includeFused: true }, call);
      return r.fused ?? r.embeddings[0]!.vector;
    },
    generate: async (request, call) => client.generate(request, sdkCall(call)).text(),
  };
}

/** gRPC codes worth another attempt: the item may well succeed later or on another replica. */
const TRANSIENT_GRPC = new Set(['UNAVAILABLE', 'RESOURCE_EXHAUSTED', 'DEADLINE_EXCEEDED', 'ABORTED']);

export function isTransient(error: unknown): boolean {
  if (isImageBindError(error)) return TRANSIENT_GRPC.has(error.code);
  if (isTransientSourceError(error)) return true;
  return (
    error instanceof DomainError &&
    (error.code === ErrorCode.DependencyUnavailable ||
      error.code === ErrorCode.Overloaded ||
      error.code === ErrorCode.ModelNotReady)
  );
}

/**
 * What to record for an error the gateway answered (the SDK's ImageBindError): its own code and
 * message, so a user reads RESOURCE_EXHAUSTED rather than INTERNAL. Retriever calls already fail
 * with DomainErrors. Anything else (a bug) stays INTERNAL; its details go to the log.
 */
export function describeError(error: unknown): { code: string; message: string } | undefined {
  return isImageBindError(error) ? { code: error.code, message: error.message } : undefined;
}

/** A stable 52-bit point id for an item, so re-running a job upserts the same points. */
export function pointIdOf(jobCollection: string, itemId: string): number {
  const digest = createHash('sha256').update(`${jobCollection}\0${itemId}`).digest();
  return Number(digest.readBigUInt64BE() & ((1n << 52n) - 1n));
}

/**
 * Runs one batch item against the online platform (issue #6): URIs are resolved here under the
 * worker's media policy (files under its root, allow-listed https, the object store) and sent
 * inline, then the gateway's public API does the work exactly as for an online request, so its
 * batchers see the items the worker keeps in flight. index-build embeds and upserts into the
 * retriever; index-import asks the retriever to import a faiss file.
 */
export class ItemProcessor {
  constructor(
    private readonly gateway: PlatformApi,
    private readonly retriever: retrieverV1.RetrieverServiceClient | undefined,
    private readonly media: MediaSourcePolicy,
    private readonly itemTimeoutMs: number,
  ) {}

  async process(ctx: ItemContext): Promise<ItemResult> {
    const stored = ctx.item as StoredItem;
    const item = gatewayV1.BatchItem.fromJSON(stored.item);
    const options = gatewayV1.BatchJobOptions.fromJSON(ctx.options ?? {});
    const call: ApiCall = {
      signal: ctx.signal,
      timeoutMs: this.itemTimeoutMs,
      ...(ctx.trace === undefined ? {} : { trace: ctx.trace }),
    };
    switch (ctx.kind) {
      case 'generate': {
        const inputs = await this.resolve(item.inputs, ctx.signal);
        const text = await this.gateway.generate(
          {
            inputs,
            instruction: item.instruction !== '' ? item.instruction : options.instruction,
            input: item.input,
            ...(options.cache === undefined ? {} : { cache: options.cache }),
            ...(options.sampling === undefined ? {} : { sampling: options.sampling }),
            ...(options.stopping?.maxNewTokens === undefined
              ? {}
              : { maxNewTokens: options.stopping.maxNewTokens }),
          },
          call,
        );
        return { itemId: stored.itemId, text };
      }
      case 'embed': {
        const inputs = await this.resolve(item.inputs, ctx.signal);
        const vector = await this.gateway.embed(inputs, call);
        return { itemId: stored.itemId, embedding: float32Bytes(vector) };
      }
      case 'index-build': {
        const retriever = this.needRetriever();
        const inputs = await this.resolve(item.inputs, ctx.signal);
        const vector = await this.gateway.embed(inputs, call);
        const collection = options.collection;
        const pointId = pointIdOf(collection, stored.itemId);
        const source = item.inputs[0]?.source;
        await callUnary(
          retriever.upsert.bind(retriever),
          {
            collection,
            points: [
              {
                id: pointId,
                vector: Array.from(vector),
                payload: {
                  item_id: stored.itemId,
                  job_id: ctx.jobId,
                  ...(source?.$case === 'uri' ? { uri: source.value } : {}),
                },
              },
            ],
          },
          call,
        );
        return { itemId: stored.itemId, pointId };
      }
      case 'index-import': {
        const retriever = this.needRetriever();
        const source = item.inputs[0]?.source;
        if (source?.$case !== 'uri')
          throw DomainError.invalidInput('an index-import item is one uri', 'inputs');
        let imported = 0;
        for await (const p of callServerStream(
          retriever.importIndex.bind(retriever),
          { collection: options.collection, sourcePath: source.value.replace(/^file:/, ''), replace: false },
          call,
        )) {
          imported = Number(p.imported);
        }
        return { itemId: stored.itemId, pointId: imported };
      }
      default:
        throw DomainError.invalidInput(`unknown job kind "${ctx.kind}"`, 'kind');
    }
  }

  private needRetriever(): retrieverV1.RetrieverServiceClient {
    if (this.retriever === undefined) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        'this worker has no retriever (set RETRIEVER_TARGET) for index-build and index-import jobs',
      );
    }
    return this.retriever;
  }

  /** URIs become inline content, read under the worker's policy (ISSUE #6: roots, allow-lists). */
  private async resolve(
    inputs: readonly gatewayV1.MultimodalInput[],
    signal: AbortSignal,
  ): Promise<gatewayV1.MultimodalInput[]> {
    return Promise.all(
      inputs.map(async (input, i) => {
        if (input.source?.$case !== 'uri') return input;
        const bytes = await readSource(input.source.value, this.media, `inputs[${i}].uri`, signal);
        return { ...input, source: { $case: 'content', value: Buffer.from(bytes) } };
      }),
    );
  }
}

function float32Bytes(v: Float32Array): Buffer {
  return Buffer.from(float32Tensor(v, [v.length]).data);
}
