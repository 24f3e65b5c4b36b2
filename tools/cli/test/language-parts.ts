// The language half of ImageBind-LLM for the CLI's parity tests, assembled from the pieces serving
// runs (no CLI-only pipeline): the llama-decoder component through libs/serving's loadDecoderModel
// and DecoderRuntime (visual-offset graph, tokenizer, KV admission), a GenerationEngine over its
// decoder session, the bind network through BindRuntime, and the repository's knn-cache vectors
// blended with the domain's cacheBlend, as the gateway does with exact top-k.
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { cacheBlend, type CacheBlendResult } from '@imagebind-llm/domain';
import { GenerationEngine, listComponents, resolveComponent } from '@imagebind-llm/inference';
import { BindRuntime, DecoderRuntime, loadDecoderModel } from '@imagebind-llm/serving';

export interface CacheSettings {
  readonly size: number;
  readonly temperature: number;
  readonly weight: number;
}

/** The knn-cache component's stored vectors, [rows, dimension] row-major. */
export interface KnnVectors {
  readonly vectors: Float32Array;
  readonly dimension: number;
}

/** The decoder of a repository: the serving runtime and the engine it generates with. */
export interface DecoderParts {
  /** Visual offsets (`layerOffsets`), the tokenizer and admission-controlled `generate`. */
  readonly runtime: DecoderRuntime;
  /** The engine `runtime.generate` runs on (the same object), for `stateLocation`. */
  readonly engine: GenerationEngine;
  close(): Promise<void>;
}

export interface LanguageParts extends DecoderParts {
  readonly bind: BindRuntime;
  readonly knn: KnnVectors;
  /** q → q′ through the visual cache (MODEL_SPEC §1.4). */
  blend(q: Float32Array, cache: CacheSettings): CacheBlendResult;
  /** One query row through the bind network: q′ [inDim] → v [dim]. */
  project(q: Float32Array): Promise<Float32Array>;
}

export interface PartsOptions {
  /** Sequences decoded together (the engine's slots and the runtime's admission). */
  readonly maxBatch: number;
  /** Execution-provider preference of every session; default the CPU. */
  readonly providers?: readonly string[];
  /** On a device, run decode steps through model.step.onnx (DECODER_STEP_GRAPH; default true). */
  readonly stepGraph?: boolean;
}

/** loadDecoderModel + a GenerationEngine over its decoder session behind a DecoderRuntime. */
export async function loadDecoderParts(repo: string, options: PartsOptions): Promise<DecoderParts> {
  const model = await loadDecoderModel(repo, {
    ...(options.providers === undefined ? {} : { providers: options.providers }),
    ...(options.stepGraph === undefined ? {} : { stepGraph: options.stepGraph }),
  });
  const engine = new GenerationEngine(model.decoder, model.shape, { maxBatch: options.maxBatch });
  // Room for every sequence a test starts at once: maxBatch full contexts, and as many waiting.
  const runtime = DecoderRuntime.create(
    model,
    { maxBatch: options.maxBatch, maxWaiting: 4 * options.maxBatch },
    engine,
  );
  return { runtime, engine, close: async () => runtime.close() };
}

/** The knn-cache component's `vectors` npy ([rows, dimension] float32). */
export function readKnnVectors(repo: string): KnnVectors {
  const npy = readNpy(resolveComponent(repo, 'knn-cache').file('vectors'));
  if (npy.shape.length !== 2) {
    throw new Error(`knn-cache vectors have shape [${npy.shape.join(', ')}]; expected [rows, dimension]`);
  }
  return { vectors: toFloat32(npy), dimension: npy.shape[1]! };
}

/** Decoder, bind network (one row per session call) and cache vectors of a built repository. */
export async function loadLanguageParts(repo: string, options: PartsOptions): Promise<LanguageParts> {
  if (!listComponents(repo).some((c) => c.component === 'knn-cache')) {
    throw new Error(`${repo} has no knn-cache component: build it with --knn`);
  }
  const knn = readKnnVectors(repo);
  const [decoder, bind] = await Promise.all([
    loadDecoderParts(repo, options),
    BindRuntime.load(repo, {
      batcher: { maxBatchSize: 1, maxQueueDelayMs: 0, maxQueueSize: 64, maxConcurrentBatches: 1 },
      ...(options.providers === undefined ? {} : { providers: options.providers }),
    }),
  ]);
  return {
    ...decoder,
    bind,
    knn,
    blend: (q, cache) => {
      if (q.length !== knn.dimension) {
        throw new Error(`the fused query has ${q.length} values; the cache holds ${knn.dimension}`);
      }
      return cacheBlend(q, knn.vectors, knn.dimension, cache);
    },
    project: async (q) => bind.project(q, 1),
    close: async () => {
      await Promise.all([decoder.close(), bind.close()]);
    },
  };
}
