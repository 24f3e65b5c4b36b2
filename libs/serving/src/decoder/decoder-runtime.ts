import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  createOrtSession,
  decoderShapeOf,
  GenerationEngine,
  hostTensor,
  isStateful,
  resolveComponent,
  type DecoderShape,
  type GenerationRequest,
  type GenerationResult,
  type InferenceSessionPort,
  type ProviderName,
  type TransferReport,
} from '@imagebind-llm/inference';
import type { Logger } from '@imagebind-llm/observability';
import { LlamaTokenizer } from '@imagebind-llm/tokenizer';
import { KvAdmission, type KvReservation } from './kv-admission';

/** The component this runtime serves (ARCHITECTURE §4). */
export const DECODER_COMPONENT = 'llama-decoder';

/** What the runtime needs of a generation engine (GenerationEngine; fakes in tests). */
export type GenerationEnginePort = Pick<GenerationEngine, 'generate'>;

/** Identity of the loaded decoder, as GetModelStatus reports it. */
export interface DecoderModelInfo {
  readonly name: string;
  readonly version: string;
  /** sha256 of the adapter checkpoint the graphs were built from (model.json sources). */
  readonly sourceSha256: string;
  /** First execution provider in use, e.g. "cpu" or "cuda". */
  readonly executionProvider: string;
}

/** The loaded llama-decoder component: both sessions, the tokenizer and the dims from model.json. */
export interface DecoderModel {
  /** The LLaMA graph (prefill and decode steps). */
  readonly decoder: InferenceSessionPort;
  /** v → per-layer offsets c_l (MODEL_SPEC §7). */
  readonly visual: InferenceSessionPort;
  readonly tokenizer: LlamaTokenizer;
  readonly shape: DecoderShape;
  readonly bosId: number;
  readonly info: DecoderModelInfo;
}

export interface DecoderLoadOptions {
  /** Ordered execution-provider preference (filtered to what this machine can run). */
  readonly providers?: readonly string[];
  /** ONNX Runtime intra-op threads; 0 or unset lets it decide. */
  readonly intraOpThreads?: number;
  /** onnxruntime thread spin-waiting (see OrtSessionOptions.allowSpinning). */
  readonly allowSpinning?: boolean;
  /**
   * On a device, run decode steps through the repository's step graph (model.step.onnx), a second
   * session with its own copy of the weights there (default true; env DECODER_STEP_GRAPH).
   */
  readonly stepGraph?: boolean;
  readonly logger?: Logger;
}

export interface DecoderRuntimeOptions extends DecoderLoadOptions {
  /** Sequences decoded together in one step. */
  readonly maxBatch: number;
  /**
   * KV positions all sequences may hold together; 0 or unset means maxBatch × maxSeqLen, cut to
   * what `kvMemoryFraction` of the memory available at load can hold.
   */
  readonly kvBudgetPositions?: number;
  /**
   * With no explicit kvBudgetPositions: the share of the memory available once the weights are
   * loaded (cgroup limit included) that the KV cache may fill. Default 0.6; 0 turns the cut off.
   */
  readonly kvMemoryFraction?: number;
  /** Bytes available for the KV cut (tests); default process.availableMemory() at load. */
  readonly availableMemoryBytes?: number;
  /** Requests that may wait for room before new ones get RESOURCE_EXHAUSTED. */
  readonly maxWaiting: number;
  /**
   * Called once when a session fails: the runtime is then broken for good, and the process should
   * report not ready and exit so the orchestrator restarts it (ARCHITECTURE §8).
   */
  readonly onFatal?: (error: unknown) => void;
  /** Bytes across the session boundary after every run (metrics). */
  readonly onTransfer?: (report: TransferReport) => void;
}

export type DecoderState = 'loading' | 'ready' | 'failed';

export interface DecoderStatus {
  readonly state: DecoderState;
  /** Sequences admitted and running (or about to run their prefill). */
  readonly activeSequences: number;
  /** Requests waiting for KV room. */
  readonly waiting: number;
  readonly freeKvPositions: number;
  readonly kvBudgetPositions: number;
}

/** Retry hint before any sequence has finished: about one short generation. */
const INITIAL_SEQUENCE_MS = 1_000;

/** Bytes one KV position takes: keys + values of every layer and head, in the cache's element type. */
export function kvBytesPerPosition(shape: DecoderShape): number {
  return shape.nLayers * 2 * shape.nHeads * shape.headDim * (shape.kvDtype === 'float16' ? 2 : 4);
}

const DEFAULT_KV_MEMORY_FRACTION = 0.6;

/**
 * The admission budget in KV positions: the explicit one, or maxBatch full contexts cut to what
 * `kvMemoryFraction` of the available memory holds (the slot cache only commits pages as positions
 * are written, so the admission budget is what bounds its resident size). Fails when not even one
 * full context fits: the process would be killed mid-answer instead.
 */
export function kvBudgetOf(
  shape: DecoderShape,
  options: Pick<
    DecoderRuntimeOptions,
    'maxBatch' | 'kvBudgetPositions' | 'kvMemoryFraction' | 'availableMemoryBytes'
  >,
): number {
  if (options.kvBudgetPositions !== undefined && options.kvBudgetPositions !== 0)
    return options.kvBudgetPositions;
  const full = options.maxBatch * shape.maxSeqLen;
  const fraction = options.kvMemoryFraction ?? DEFAULT_KV_MEMORY_FRACTION;
  if (!(fraction >= 0 && fraction <= 1))
    throw new RangeError(`kvMemoryFraction must be in [0, 1], got ${fraction}`);
  if (fraction === 0) return full;
  const available = options.availableMemoryBytes ?? process.availableMemory();
  const fits = Math.floor((available * fraction) / kvBytesPerPosition(shape));
  if (fits >= full) return full;
  if (fits < shape.maxSeqLen) {
    throw new DomainError(
      ErrorCode.FailedPrecondition,
      `the KV cache of one ${shape.maxSeqLen}-position context needs ${(
        (shape.maxSeqLen * kvBytesPerPosition(shape)) /
        2 ** 30
      ).toFixed(
        2,
      )} GiB but ${fraction} of the ${(available / 2 ** 30).toFixed(2)} GiB available after loading ` +
        'holds less: give the process more memory, build the decoder with --kv-dtype float16, or set an explicit KV budget',
    );
  }
  return fits;
}

/**
 * Loads the llama-decoder component (decoder + visual graphs), the tokenizer and the model dims of
 * a model repository, logging the execution providers chosen.
 */
export async function loadDecoderModel(
  repo: string,
  options: DecoderLoadOptions = {},
): Promise<DecoderModel> {
  const component = resolveComponent(repo, DECODER_COMPONENT);
  const tokenizerComponent = resolveComponent(repo, 'tokenizer');
  const cfg = component.json.config;
  const shape = decoderShapeOf(component);
  let chosen: readonly ProviderName[] = ['cpu'];
  let skipped: readonly { name: string; reason: string }[] = [];
  let intraOpThreads = 0;
  const sessionOptions = {
    ...(options.providers === undefined ? {} : { providers: options.providers }),
    ...(options.intraOpThreads === undefined ? {} : { intraOpThreads: options.intraOpThreads }),
    ...(options.allowSpinning === undefined ? {} : { allowSpinning: options.allowSpinning }),
    onProviders: (c: readonly ProviderName[], s: readonly { name: string; reason: string }[], t: number) => {
      chosen = c;
      skipped = s;
      intraOpThreads = t;
    },
  };
  const [decoder, visual] = await Promise.all([
    // Decode steps run in a worker thread that also holds the slot KV cache, so the event loop
    // keeps serving streams, health and metrics while a step runs.
    createOrtSession(component.file('decoder'), {
      ...sessionOptions,
      thread: 'worker',
      // On a GPU provider the slot KV cache is allocated on the device by this small graph.
      ...(component.json.files['state'] === undefined ? {} : { stateAllocModel: component.file('state') }),
      // Elsewhere it stays in host memory, and the session runs the graph fed the cache windows.
      ...(component.json.files['hostDecoder'] === undefined
        ? {}
        : { hostStateModel: component.file('hostDecoder') }),
      // On a device its decode steps run the step graph (the attention fused, the cache written
      // in place), a second session with its own copy of the weights there.
      ...(component.json.files['stepDecoder'] === undefined || options.stepGraph === false
        ? {}
        : { stepStateModel: component.file('stepDecoder') }),
    }),
    createOrtSession(component.file('visual'), sessionOptions),
  ]);
  const tokenizer = LlamaTokenizer.fromFile(tokenizerComponent.file('model'));
  if (tokenizer.vocabSize !== shape.vocabSize) {
    await Promise.all([decoder.release(), visual.release()]);
    throw new DomainError(
      ErrorCode.FailedPrecondition,
      `the tokenizer has ${tokenizer.vocabSize} pieces but ${component.dir} was built for ${shape.vocabSize}; ` +
        'the repository mixes builds: rebuild it',
    );
  }
  options.logger?.info(
    { event: 'decoder.execution_providers', providers: chosen, skipped, intraOpThreads },
    `decoder sessions run on ${chosen.join(', ')} with ${intraOpThreads} intra-op threads`,
  );
  if (
    component.json.files['hostDecoder'] === undefined &&
    isStateful(decoder) &&
    decoder.stateLocation === 'host'
  ) {
    options.logger?.info(
      { event: 'decoder.no_host_graph', dir: component.dir },
      `${component.dir} predates the host decoder graph (model.host.onnx): each step copies the ` +
        'KV cache it reads once more; rebuild the repository with `ibllm models build` to drop that copy',
    );
  }
  const stepGraphError = isStateful(decoder) ? decoder.stepGraphError : undefined;
  if (stepGraphError !== undefined) {
    options.logger?.warn(
      { event: 'decoder.step_graph_unavailable', dir: component.dir, error: stepGraphError },
      `the step graph (model.step.onnx) did not load (${stepGraphError}): decode steps run model.onnx`,
    );
  }
  const sources = component.json.sources;
  const source = sources.find((s) => s.role === 'adapter') ?? sources[0];
  return {
    decoder,
    visual,
    tokenizer,
    shape,
    bosId: typeof cfg['bosId'] === 'number' ? cfg['bosId'] : tokenizer.bosId,
    info: {
      name: DECODER_COMPONENT,
      version: component.json.version,
      sourceSha256: source?.sha256 ?? '',
      executionProvider: chosen[0] ?? 'cpu',
    },
  };
}

/**
 * The decoder of one replica: a GenerationEngine (continuous batching: sequences join and leave
 * between steps) behind KV-memory admission control, plus the visual-offset session and the
 * tokenizer. Every sequence reserves its worst-case KV positions before it may run and gives them
 * back the moment it finishes or its signal aborts (the engine drops an aborted row at its next
 * step; the room is reusable at once).
 */
export class DecoderRuntime {
  private readonly admission: KvAdmission;
  private state: DecoderState = 'loading';
  private fatal: unknown;
  /** Running average of how long a sequence holds its reservation: the overload retry hint. */
  private sequenceMs = INITIAL_SEQUENCE_MS;
  private closed = false;
  /** Engine runs in flight, so close() can wait for them. */
  private readonly running = new Set<Promise<GenerationResult>>();

  private constructor(
    private readonly model: DecoderModel,
    private readonly engine: GenerationEnginePort,
    private readonly options: DecoderRuntimeOptions,
  ) {
    const { maxBatch } = options;
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    }
    const budget =
      options.kvBudgetPositions === undefined || options.kvBudgetPositions === 0
        ? maxBatch * model.shape.maxSeqLen
        : options.kvBudgetPositions;
    this.admission = new KvAdmission({
      budgetPositions: budget,
      maxSequences: maxBatch,
      maxWaiting: options.maxWaiting,
      retryAfterMs: () => Math.ceil(this.sequenceMs),
    });
  }

  /** Loads the model from a repository and builds the engine over its decoder session. */
  static async load(repo: string, options: DecoderRuntimeOptions): Promise<DecoderRuntime> {
    const model = await loadDecoderModel(repo, options);
    // The memory cut is about host memory: a cache held on the device is sized by its own budget.
    const onDevice = isStateful(model.decoder) && model.decoder.stateLocation === 'device';
    const runtime = DecoderRuntime.create(model, onDevice ? { ...options, kvMemoryFraction: 0 } : options);
    const s = runtime.status();
    options.logger?.info(
      {
        event: 'decoder.loaded',
        model: model.info,
        maxBatch: options.maxBatch,
        kvBudgetPositions: s.kvBudgetPositions,
        // keys + values, every layer and head, in the cache's element type
        kvBudgetBytes: s.kvBudgetPositions * kvBytesPerPosition(model.shape),
        kvBudgetCut: s.kvBudgetPositions < options.maxBatch * model.shape.maxSeqLen,
        kvDtype: model.shape.kvDtype ?? 'float32',
        stateLocation: isStateful(model.decoder) ? model.decoder.stateLocation : 'host',
        // a device session's decode steps run model.step.onnx (the attention fused, in place)
        decodeSteps: runtime.decodeSteps,
        maxWaiting: options.maxWaiting,
      },
      'decoder model loaded',
    );
    return runtime;
  }

  /** A runtime over an already loaded model; `engine` replaces the GenerationEngine (tests). */
  static create(
    model: DecoderModel,
    options: DecoderRuntimeOptions,
    engine?: GenerationEnginePort,
  ): DecoderRuntime {
    return new DecoderRuntime(
      model,
      engine ??
        new GenerationEngine(model.decoder, model.shape, {
          maxBatch: options.maxBatch,
          ...(options.onTransfer === undefined ? {} : { onTransfer: options.onTransfer }),
        }),
      options,
    );
  }

  get shape(): DecoderShape {
    return this.model.shape;
  }

  get tokenizer(): LlamaTokenizer {
    return this.model.tokenizer;
  }

  get info(): DecoderModelInfo {
    return this.model.info;
  }

  /** Where the decoder keeps its KV cache: on the accelerator ('device') or in host memory. */
  get kvCacheLocation(): 'host' | 'device' {
    return isStateful(this.model.decoder) ? this.model.decoder.stateLocation : 'host';
  }

  /**
   * What the decoder's decode steps run: `step` (model.step.onnx on a device: the attention fused,
   * the cache written in place) or `general` (the graph prefills run too).
   */
  get decodeSteps(): 'step' | 'general' {
    return isStateful(this.model.decoder) &&
      this.model.decoder.stepGraph === true &&
      this.model.decoder.stateLocation === 'device'
      ? 'step'
      : 'general';
  }

  /** Most positions a sequence can occupy: prompt + max_new_tokens (resumed tokens count in it), capped by the context. */
  kvPositionsFor(promptTokens: number, maxNewTokens: number): number {
    return Math.min(promptTokens + maxNewTokens, this.model.shape.maxSeqLen);
  }

  status(): DecoderStatus {
    const s = this.admission.status();
    return {
      state: this.state,
      activeSequences: s.active,
      waiting: s.waiting,
      freeKvPositions: s.freePositions,
      kvBudgetPositions: s.budgetPositions,
    };
  }

  /** Calls `listener` whenever sequences are admitted, queued or released. */
  watch(listener: (status: DecoderStatus) => void): () => void {
    return this.admission.watch(() => listener(this.status()));
  }

  /** v [dim] → c [nLayers · dim] through the visual session (MODEL_SPEC §7). */
  async layerOffsets(visualQuery: Float32Array): Promise<Float32Array> {
    this.ensureUsable();
    const { dim, nLayers } = this.model.shape;
    if (visualQuery.length !== dim) {
      throw DomainError.invalidInput(
        `visual_query has ${visualQuery.length} values; this decoder takes ${dim}`,
        'visual_query',
      );
    }
    try {
      const out = await this.model.visual.run({
        visual_query: hostTensor('float32', [1, dim], visualQuery),
      });
      const offsets = out['layer_offsets']?.data;
      if (!(offsets instanceof Float32Array) || offsets.length !== nLayers * dim) {
        throw new Error(`the visual graph returned no float32 layer_offsets of ${nLayers}×${dim} values`);
      }
      return offsets;
    } catch (error) {
      throw this.broken(error);
    }
  }

  /**
   * Runs one sequence: waits for KV room (admission control), then generates in the shared batch.
   * Resolves with finishReason 'cancelled' when `req.signal` aborts after admission; rejects with
   * the signal's reason when it aborts while waiting.
   */
  async generate(req: GenerationRequest): Promise<GenerationResult> {
    this.ensureUsable();
    // Refuse what the engine would refuse before it takes KV room (the engine checks the rest).
    if (req.promptIds.length === 0) {
      throw DomainError.invalidInput(
        'the prompt is empty: it needs at least the BOS token',
        'prompt_token_ids',
      );
    }
    if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1) {
      throw DomainError.invalidInput(
        `max_new_tokens must be a positive integer, got ${req.maxNewTokens}`,
        'stopping.max_new_tokens',
      );
    }
    const positions = this.kvPositionsFor(req.promptIds.length, req.maxNewTokens);
    const reservation = await this.admission.acquire(positions, req.signal);
    const admittedAt = performance.now();
    const onAbort = (): void => reservation.release();
    req.signal?.addEventListener('abort', onAbort, { once: true });
    // An abort between the grant and this line fired no event: free the room now.
    if (req.signal?.aborted === true) reservation.release();
    let run: Promise<GenerationResult> | undefined;
    try {
      // The session may have failed, or shutdown begun, while this request waited.
      this.ensureUsable();
      run = this.engine.generate(req);
      this.running.add(run);
      return await run;
    } catch (error) {
      throw this.broken(error);
    } finally {
      if (run !== undefined) this.running.delete(run);
      req.signal?.removeEventListener('abort', onAbort);
      this.settle(reservation, performance.now() - admittedAt);
    }
  }

  /** One short greedy generation from a zero visual vector, so the first request pays no set-up. */
  async warmup(): Promise<void> {
    const offsets = await this.layerOffsets(new Float32Array(this.model.shape.dim));
    await this.generate({
      promptIds: [this.model.bosId],
      layerOffsets: offsets,
      sampling: { temperature: 0, topP: 1, seed: 0n },
      maxNewTokens: 2,
      ignoreEos: true,
      logprobs: true,
    });
    if (this.state === 'loading') this.state = 'ready';
  }

  /**
   * Refuses waiting requests, waits for the sequences in flight (the server has drained or
   * aborted them by now), then releases the sessions: a session released under a running step
   * would fail it.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.admission.refuseWaiting(
      DomainError.unavailable('the decoder is shutting down; retry on another replica'),
    );
    await Promise.allSettled([...this.running]);
    await Promise.all([this.model.decoder.release(), this.model.visual.release()]);
  }

  private ensureUsable(): void {
    if (this.closed) throw DomainError.unavailable('the decoder is shutting down; retry on another replica');
    if (this.state === 'failed') {
      throw new DomainError(
        ErrorCode.ModelNotReady,
        'the decoder session failed and this replica is restarting; retry on another replica',
        { retryAfterMs: 1_000 },
        { cause: this.fatal },
      );
    }
  }

  private settle(reservation: KvReservation, heldMs: number): void {
    reservation.release();
    // EWMA over recent sequences (weight 0.2): a hint, not a promise.
    this.sequenceMs = 0.8 * this.sequenceMs + 0.2 * heldMs;
  }

  /**
   * Domain errors are the request's fault and pass through; anything else comes from a session
   * and is fatal for the replica.
   */
  private broken(error: unknown): unknown {
    if (error instanceof DomainError) return error;
    // After close() the sessions are gone on purpose; nothing to restart for.
    if (this.state !== 'failed' && !this.closed) {
      this.state = 'failed';
      this.fatal = error;
      this.options.logger?.error({ event: 'decoder.session_failed', err: error }, 'decoder session failed');
      this.options.onFatal?.(error);
    }
    return error;
  }
}
