import { readNpy } from '@imagebind-llm/checkpoint';
import { cacheBlend, CACHE_DEFAULTS, GENERATION_DEFAULTS, type Neighbour } from '@imagebind-llm/domain';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { buildPromptIds, LlamaTokenizer } from '@imagebind-llm/tokenizer';
import {
  GenerationEngine,
  type DecoderShape,
  type GenerationResult,
  type GeneratedToken,
} from '../generation/generation-engine';
import { decoderShapeOf } from '../generation/decoder-shape';
import { listComponents, resolveComponent } from '../model-repository';
import { createOrtSession, type OrtSessionOptions } from '../ort-session.driver';
import type { ProviderName } from '../execution-providers';
import { hostTensor, type InferenceSessionPort } from '../session.port';

export interface CacheSettings {
  readonly enabled: boolean;
  readonly size: number;
  readonly temperature: number;
  readonly weight: number;
}

export interface AnswerRequest {
  /** Fused query q (1024 values). */
  readonly fused: Float32Array;
  readonly instruction: string;
  readonly input?: string;
  readonly cache: CacheSettings;
  readonly temperature?: number;
  readonly topP?: number;
  readonly maxNewTokens?: number;
  readonly seed?: bigint;
  readonly signal?: AbortSignal;
  /** Streams text as tokens arrive. */
  readonly onText?: (delta: string, token: GeneratedToken) => void;
  readonly wantPrefillLogits?: boolean;
}

export interface AnswerResult {
  readonly text: string;
  readonly promptIds: number[];
  readonly generation: GenerationResult;
  readonly cached?: Float32Array;
  readonly neighbours?: Neighbour[];
  readonly visualQuery: Float32Array;
  readonly layerOffsets: Float32Array;
  readonly seed: bigint;
}

interface KnnCache {
  readonly vectors: Float32Array;
  readonly dimension: number;
}

/**
 * The language half of ImageBind-LLM on one machine: fused query → visual cache → bind network →
 * per-layer offsets → LLaMA generation, all from a model repository. Serving (distributed and
 * standalone) runs these steps through libs/serving's platform orchestration instead; this is the
 * language half of `ibllm generate` (its encoder half is that orchestration) and the parity tests'.
 */
export class LanguagePipeline {
  private constructor(
    private readonly bind: InferenceSessionPort,
    private readonly visual: InferenceSessionPort,
    readonly engine: GenerationEngine,
    readonly tokenizer: LlamaTokenizer,
    readonly shape: DecoderShape,
    private readonly knn: KnnCache | undefined,
    private readonly sessions: InferenceSessionPort[],
    private readonly bindInDim: number,
    /** The execution provider each session runs on first: bind, visual, decoder. */
    readonly providers: Readonly<Record<'bind' | 'visual' | 'decoder', ProviderName>>,
  ) {}

  static async load(
    repo: string,
    options: OrtSessionOptions & { maxBatch?: number } = {},
  ): Promise<LanguagePipeline> {
    const bindC = resolveComponent(repo, 'bind');
    const decC = resolveComponent(repo, 'llama-decoder');
    const tokC = resolveComponent(repo, 'tokenizer');
    const shape = decoderShapeOf(decC);
    const providers = { bind: 'cpu', visual: 'cpu', decoder: 'cpu' } as Record<
      'bind' | 'visual' | 'decoder',
      ProviderName
    >;
    const noting = (role: keyof typeof providers): OrtSessionOptions => ({
      ...options,
      onProviders: (chosen, skipped) => {
        providers[role] = chosen[0] ?? 'cpu';
        options.onProviders?.(chosen, skipped);
      },
    });
    const [bind, visual, decoder] = await Promise.all([
      createOrtSession(bindC.file('model'), noting('bind')),
      createOrtSession(decC.file('visual'), noting('visual')),
      // The decoder runs in a worker thread that also holds the slot KV cache (on the device for a
      // GPU provider, allocated by the component's state graph).
      createOrtSession(decC.file('decoder'), {
        ...noting('decoder'),
        thread: 'worker',
        ...(decC.json.files['state'] === undefined ? {} : { stateAllocModel: decC.file('state') }),
      }),
    ]);
    const tokenizer = LlamaTokenizer.fromFile(tokC.file('model'));
    let knn: KnnCache | undefined;
    if (listComponents(repo).some((c) => c.component === 'knn-cache')) {
      const knnC = resolveComponent(repo, 'knn-cache');
      const npy = readNpy(knnC.file('vectors'));
      knn = {
        vectors: new Float32Array(npy.data.buffer, npy.data.byteOffset, npy.data.byteLength / 4),
        dimension: npy.shape[1]!,
      };
    }
    const engine = new GenerationEngine(decoder, shape, { maxBatch: options.maxBatch ?? 16 });
    const bindIn = (bindC.json.config as Record<string, number>)['inDim']!;
    return new LanguagePipeline(
      bind,
      visual,
      engine,
      tokenizer,
      shape,
      knn,
      [bind, visual, decoder],
      bindIn,
      providers,
    );
  }

  get hasCache(): boolean {
    return this.knn !== undefined;
  }

  /** q → q′ with the visual cache (MODEL_SPEC §1.4). */
  blend(q: Float32Array, cache: CacheSettings): { blended: Float32Array; neighbours: Neighbour[] } {
    if (this.knn === undefined) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        'the model repository has no knn-cache component; build it with --knn or turn the cache off',
      );
    }
    if (q.length !== this.knn.dimension) {
      throw DomainError.invalidInput(
        `the fused query has ${q.length} values; the cache expects ${this.knn.dimension}`,
        'embedding',
      );
    }
    return cacheBlend(q, this.knn.vectors, this.knn.dimension, cache);
  }

  /** Bind network: q′ [1024] → v [dim]. */
  async project(q: Float32Array): Promise<Float32Array> {
    if (q.length !== this.bindInDim) {
      throw DomainError.invalidInput(
        `the fused query has ${q.length} values; the bind network takes ${this.bindInDim}`,
        'embedding',
      );
    }
    const out = await this.bind.run({ queries: hostTensor('float32', [1, q.length], q) });
    return out['visual_query']!.data as Float32Array;
  }

  /** v → c [layers · dim] (MODEL_SPEC §7). */
  async layerOffsets(v: Float32Array): Promise<Float32Array> {
    const out = await this.visual.run({ visual_query: hostTensor('float32', [1, v.length], v) });
    return out['layer_offsets']!.data as Float32Array;
  }

  async answer(req: AnswerRequest): Promise<AnswerResult> {
    let q = req.fused;
    let neighbours: Neighbour[] | undefined;
    let cached: Float32Array | undefined;
    if (req.cache.enabled) {
      const r = this.blend(q, req.cache);
      q = r.blended;
      cached = r.blended;
      neighbours = r.neighbours;
    }
    const visualQuery = await this.project(q);
    const layerOffsets = await this.layerOffsets(visualQuery);
    const maxNewTokens = req.maxNewTokens ?? GENERATION_DEFAULTS.maxNewTokens;
    const promptIds = buildPromptIds(this.tokenizer, req.instruction, req.input, {
      maxSeqLen: this.shape.maxSeqLen,
      maxNewTokens,
    });
    const seed = req.seed ?? BigInt(Math.floor(Math.random() * 2 ** 52));
    const detok = this.tokenizer.createDetokenizer();
    const generation = await this.engine.generate({
      promptIds,
      layerOffsets,
      sampling: {
        temperature: req.temperature ?? GENERATION_DEFAULTS.temperature,
        topP: req.topP ?? GENERATION_DEFAULTS.topP,
        seed,
      },
      maxNewTokens,
      ...(req.signal === undefined ? {} : { signal: req.signal }),
      ...(req.wantPrefillLogits === true ? { wantPrefillLogits: true } : {}),
      onToken: (t) => {
        if (t.id === this.shape.eosId) return;
        const delta = detok.push(t.id);
        req.onText?.(delta, t);
      },
    });
    const answerIds = generation.tokenIds.filter(
      (_, i, all) => !(i === all.length - 1 && all[i] === this.shape.eosId),
    );
    return {
      text: this.tokenizer.decode(answerIds),
      promptIds,
      generation,
      ...(cached === undefined ? {} : { cached }),
      ...(neighbours === undefined ? {} : { neighbours }),
      visualQuery,
      layerOffsets,
      seed,
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.sessions.map(async (s) => s.release()));
  }
}

export const DEFAULT_CACHE: CacheSettings = { enabled: true, ...CACHE_DEFAULTS };
