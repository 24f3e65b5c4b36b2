import { availableParallelism } from 'node:os';
import { DomainError, ErrorCode, isDomainError } from '@imagebind-llm/errors';
import {
  createOrtSession,
  ENCODER_COMPONENTS,
  encoderFeedsFromPreprocessed,
  encoderFeedsFromPreprocessedOn,
  PreprocessPool,
  pointGroupingOf,
  preprocessEncoderInput,
  resolveComponent,
  type BatchEvent,
  type BatcherClock,
  type BatcherStats,
  type EncoderInputOptions,
  type HostTensor,
  type InferenceSessionPort,
  type InputModality,
  type ModalityInput,
  type OrtSessionOptions,
  type PreprocessedEncoderInput,
  type PreprocessPoolOptions,
  type PreprocessRunner,
  type TensorSpec,
} from '@imagebind-llm/inference';
import { BoundedConcurrency } from './bounded-concurrency';
import { RowBatchedModel, type BatcherSettings, type RowOutputs, type RowSlice } from './row-batched-model';

/** Graph outputs every ImageBind encoder has (libs/model-builder encoder-ops). */
export const EMBEDDING_OUTPUT = 'embedding';
export const UNNORMALIZED_OUTPUT = 'head_prenorm';

/** Modalities whose preprocessed tensor is one buffer the runner made (a cloud's may view its file). */
const TENSOR_MODALITIES: ReadonlySet<InputModality> = new Set(['image', 'audio', 'video']);

/** A preprocessed tensor in the layout `preprocessEncoderInput` reports. */
export interface PreprocessedTensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

/** One item to encode: file bytes (with a file name for formats known by extension), text, or a tensor. */
export type EncoderItem =
  | { readonly bytes: Uint8Array; readonly fileName?: string }
  | { readonly text: string }
  | { readonly preprocessed: PreprocessedTensor };

export interface EncodedItem {
  /** After ImageBind's postprocessor and, for clips, their mean: [out_embed_dim]. */
  readonly embedding: Float32Array;
  /** The head output before the postprocessor (clip mean where there are clips). */
  readonly unnormalized: Float32Array;
  /**
   * What the encoder saw, in the layout a client may send back as `preprocessed`; absent when the
   * caller asked not to keep it (EncodeOptions.keepPreprocessed).
   */
  readonly preprocessed?: PreprocessedTensor;
}

/** What one modality's model is, for GetModelStatus and metrics. */
export interface EncoderModelInfo {
  readonly modality: InputModality;
  /** Repository component, e.g. `imagebind-vision`. */
  readonly component: string;
  readonly version: string;
  /** `component:modality`: the `model` label of the inference metrics. */
  readonly label: string;
  /** sha256 of the checkpoint the component was built from (model.json). */
  readonly sourceSha256: string;
  /** Most preferred execution provider the session was created with. */
  readonly executionProvider: string;
}

/** One modality's model as the runtime needs it: made by `load`, or by tests around a fake session. */
export interface EncoderModelParts {
  readonly info: EncoderModelInfo;
  readonly session: InferenceSessionPort;
  /** The graph's inputs from model.json; requests are checked against them before they queue. */
  readonly inputs: readonly TensorSpec[];
}

export interface EncoderRuntimeOptions {
  readonly batcher: BatcherSettings;
  /** Inputs decoded and preprocessed at once (default: the CPU count). */
  readonly preprocessConcurrency?: number;
  /** Called after every executed batch (metrics). */
  readonly onBatch?: (model: EncoderModelInfo, event: BatchEvent) => void;
  /** Called whenever a request has entered or left a queue (queue-depth gauge). */
  readonly onQueueChange?: () => void;
  /** Batcher clock; tests pass a manual one. */
  readonly clock?: BatcherClock;
  /**
   * Decoding and preprocessing of raw inputs; default MODEL_SPEC §2 (`preprocessEncoderInput`).
   * `options` carries what the model's graph fixes (the point grouping).
   */
  readonly preprocess?: (
    input: ModalityInput,
    options: EncoderInputOptions,
  ) => Promise<PreprocessedEncoderInput>;
  /**
   * Where the CPU work of preprocessing runs (decoding, resizing, fbank, FPS and kNN, also of
   * client-sent point clouds): pool settings (workers, queue, limits) for a PreprocessPool the
   * runtime starts on first use and closes with it (default: one worker per CPU), or a runner
   * the caller owns.
   */
  readonly preprocessing?: PreprocessPoolOptions | PreprocessRunner;
}

export interface EncoderLoadOptions extends EncoderRuntimeOptions {
  /** Ordered execution-provider preference, e.g. ['cuda', 'cpu']. */
  readonly providers?: readonly string[];
  /** ONNX Runtime intra-op threads (0: its default). */
  readonly intraOpThreads?: number;
  /** onnxruntime thread spin-waiting (see OrtSessionOptions.allowSpinning). */
  readonly allowSpinning?: boolean;
  /** Session factory; default onnxruntime-node. */
  readonly createSession?: (path: string, options: OrtSessionOptions) => Promise<InferenceSessionPort>;
}

export interface EncodeOptions {
  readonly signal?: AbortSignal;
  /** Epoch ms (Infinity or absent: none). */
  readonly deadline?: number;
  /**
   * Return each item's `preprocessed` tensor (default true). With false, the tensors the
   * preprocessing pool made go back to it once their rows have run (PreprocessRunner.recycle), and
   * the items come without `preprocessed`.
   */
  readonly keepPreprocessed?: boolean;
}

interface LoadedModel {
  readonly info: EncoderModelInfo;
  readonly session: InferenceSessionPort;
  readonly inputs: readonly TensorSpec[];
  /** The graph has a clips axis (dims[1] symbolic): rows are clips, and the runtime takes their mean. */
  readonly clips: boolean;
  /** What preprocessing takes from the graph: for points, num_group and group_size of `neighborhood`. */
  readonly inputOptions: EncoderInputOptions;
  readonly batched: RowBatchedModel;
}

interface PreparedItem {
  readonly slice: RowSlice;
  readonly preprocessed: PreprocessedTensor;
  /** The preprocessing runner made `preprocessed` (and nothing else holds it): it may be recycled. */
  readonly fromRunner: boolean;
}

/**
 * The ImageBind encoders of one replica, dynamically batched (ARCHITECTURE §3, §6): per modality a
 * session behind a RowBatchedModel. Each request is preprocessed first (bounded, in parallel),
 * then its rows join whatever else is queued; a video's or audio file's clips are separate rows,
 * so one session call sees up to `maxBatchSize` clips from many requests, and each request's clip
 * mean is taken afterwards as the graph would (MODEL_SPEC §3.6).
 */
export class EncoderRuntime {
  private readonly models = new Map<InputModality, LoadedModel>();
  private readonly admission: BoundedConcurrency;
  /** Preprocessing is `preprocessEncoderInput` on the runner (no custom `preprocess`). */
  private readonly defaultPreprocess: boolean;
  private readonly preprocess: (
    input: ModalityInput,
    options: EncoderInputOptions,
    signal: AbortSignal,
  ) => Promise<PreprocessedEncoderInput>;
  private readonly preprocessing: PreprocessPoolOptions | PreprocessRunner;
  /** The runner, once a task needed it; owned (closed with the runtime) when made here. */
  private runnerInUse: { readonly runner: PreprocessRunner; readonly owned: boolean } | undefined;
  /** Most rows one request may need: all of them must fit the queue at once. */
  private readonly maxRequestRows: number;
  private closed = false;

  constructor(parts: readonly EncoderModelParts[], options: EncoderRuntimeOptions) {
    if (parts.length === 0) throw new RangeError('an encoder runtime needs at least one model');
    for (const part of parts) {
      if (this.models.has(part.info.modality)) throw new RangeError(`${part.info.modality} is listed twice`);
      const clips = hasClipAxis(part.inputs);
      this.models.set(part.info.modality, {
        ...part,
        clips,
        // The checkpoint decides the grouping (MODEL_SPEC §3.7); the graph's inputs record it.
        inputOptions:
          part.info.modality === 'point' ? { point: pointGroupingOf(part.inputs, part.info.label) } : {},
        batched: new RowBatchedModel({
          name: part.info.label,
          session: part.session,
          outputs: [EMBEDDING_OUTPUT, UNNORMALIZED_OUTPUT],
          clipAxis: clips,
          batcher: options.batcher,
          ...(options.clock === undefined ? {} : { clock: options.clock }),
          ...(options.onQueueChange === undefined ? {} : { onQueueChange: options.onQueueChange }),
          ...(options.onBatch === undefined
            ? {}
            : { onBatch: (event: BatchEvent) => options.onBatch?.(part.info, event) }),
        }),
      });
    }
    this.preprocessing = options.preprocessing ?? {};
    const custom = options.preprocess;
    this.defaultPreprocess = custom === undefined;
    this.preprocess =
      custom === undefined
        ? async (input, inputOptions, signal) =>
            preprocessEncoderInput(input, inputOptions, this.runner(), signal)
        : async (input, inputOptions) => custom(input, inputOptions);
    this.maxRequestRows = options.batcher.maxQueueSize;
    // As many may wait as the batcher queue holds rows: past that the batcher would refuse them anyway.
    this.admission = new BoundedConcurrency(
      'preprocessing',
      options.preprocessConcurrency ?? availableParallelism(),
      options.batcher.maxQueueSize,
      Math.max(1, Math.ceil(options.batcher.maxQueueDelayMs)),
    );
  }

  /** Loads one session per modality from a model repository (ARCHITECTURE §4). */
  static async load(
    repo: string,
    modalities: readonly InputModality[],
    options: EncoderLoadOptions,
  ): Promise<EncoderRuntime> {
    const create = options.createSession ?? createOrtSession;
    const loads = await Promise.allSettled(
      modalities.map(async (modality): Promise<EncoderModelParts> => {
        const { component, role } = ENCODER_COMPONENTS[modality];
        const resolved = resolveComponent(repo, component);
        const graph = resolved.json.graphs?.[role];
        if (graph === undefined) {
          throw new DomainError(
            ErrorCode.FailedPrecondition,
            `${resolved.dir}/model.json describes no "${role}" graph; rebuild the repository with \`ibllm models build\``,
          );
        }
        let executionProvider = 'cpu';
        const session = await create(resolved.file(role), {
          ...(options.providers === undefined ? {} : { providers: options.providers }),
          ...(options.intraOpThreads === undefined ? {} : { intraOpThreads: options.intraOpThreads }),
          ...(options.allowSpinning === undefined ? {} : { allowSpinning: options.allowSpinning }),
          onProviders: (chosen) => {
            executionProvider = chosen[0] ?? 'cpu';
          },
        });
        const source =
          resolved.json.sources.find((s) => !s.role.endsWith('config')) ?? resolved.json.sources[0];
        return {
          info: {
            modality,
            component,
            version: resolved.json.version,
            label: `${component}:${modality}`,
            sourceSha256: source?.sha256 ?? '',
            executionProvider,
          },
          session,
          inputs: graph.inputs,
        };
      }),
    );
    const failed = loads.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      await Promise.allSettled(
        loads.map(async (r) => (r.status === 'fulfilled' ? r.value.session.release() : undefined)),
      );
      throw failed.reason;
    }
    return new EncoderRuntime(
      loads.map((r) => (r as PromiseFulfilledResult<EncoderModelParts>).value),
      options,
    );
  }

  get modalities(): InputModality[] {
    return [...this.models.keys()];
  }

  modelInfo(): EncoderModelInfo[] {
    return [...this.models.values()].map((m) => m.info);
  }

  /**
   * Encodes the items of one request, all of `modality`, in order. Refuses at once with OVERLOADED
   * when the modality's queue is full; item errors name the item (`inputs[i]`).
   */
  async encode(
    modality: InputModality,
    items: readonly EncoderItem[],
    options: EncodeOptions = {},
  ): Promise<EncodedItem[]> {
    const model = this.models.get(modality);
    if (model === undefined) {
      throw DomainError.invalidInput(
        `this replica encodes ${this.modalities.join(', ')}, not ${modality}`,
        'modality',
      );
    }
    if (this.closed) throw DomainError.unavailable('the encoder is shutting down; retry on another replica');
    if (items.length === 0) throw DomainError.invalidInput('at least one input is required', 'inputs');
    model.batched.admit();
    const request = new AbortController();
    const forward = (): void => request.abort(options.signal?.reason);
    if (options.signal?.aborted === true) forward();
    else options.signal?.addEventListener('abort', forward, { once: true });
    try {
      const prepared = await Promise.all(
        items.map(async (item, index) =>
          this.admission
            .run(async () => this.prepare(model, item, index, request.signal), request.signal)
            .catch((error: unknown) => {
              // One bad item fails the request: stop preprocessing the others.
              request.abort(error);
              throw error;
            }),
        ),
      );
      const rows = prepared.reduce((n, p) => n + p.slice.rows, 0);
      if (rows > this.maxRequestRows) {
        // It could never be queued whole; OVERLOADED would invite retries that cannot succeed.
        throw new DomainError(
          ErrorCode.PayloadTooLarge,
          `inputs: this request needs ${rows} ${model.clips ? 'clips' : 'rows'} but the ${model.info.label} queue ` +
            `holds ${this.maxRequestRows}; split it into smaller requests`,
          { field: 'inputs', limit: this.maxRequestRows },
        );
      }
      const outputs = await model.batched.run(
        prepared.map((p) => p.slice),
        {
          signal: request.signal,
          ...(options.deadline === undefined ? {} : { deadline: options.deadline }),
        },
      );
      const keep = options.keepPreprocessed ?? true;
      const encoded = prepared.map((p, i) => this.reduce(model, outputs[i]!, p, keep));
      if (!keep) {
        // Every row has run (the session is done with the feeds): the pool writes later inputs'
        // tensors into these buffers instead of sending new memory to this thread.
        for (const p of prepared) if (p.fromRunner) this.runnerInUse?.runner.recycle(p.preprocessed.data);
      }
      return encoded;
    } finally {
      options.signal?.removeEventListener('abort', forward);
    }
  }

  /**
   * One session call per modality with zeros in the graph's input layout, one row, outside the
   * queue: the first real batch should not pay for allocation and kernel selection.
   */
  async warmup(): Promise<void> {
    for (const model of this.models.values()) {
      const feeds: Record<string, HostTensor> = {};
      for (const spec of model.inputs) {
        const perRow = spec.dims.slice(model.clips ? 2 : 1).map((d) => (typeof d === 'number' ? d : 1));
        const dims = [1, ...perRow];
        const n = perRow.reduce((a, b) => a * b, 1);
        feeds[spec.name] =
          spec.dtype === 'int64'
            ? { dtype: 'int64', dims, data: new BigInt64Array(n) }
            : { dtype: 'float32', dims, data: new Float32Array(n) };
      }
      const out = await model.batched.runUnbatched({ rows: 1, feeds });
      if (out[EMBEDDING_OUTPUT]?.length === 0) {
        throw new DomainError(ErrorCode.Internal, `${model.info.label}: warm-up returned an empty embedding`);
      }
    }
  }

  stats(): { model: EncoderModelInfo; stats: BatcherStats }[] {
    return [...this.models.values()].map((m) => ({ model: m.info, stats: m.batched.stats() }));
  }

  /**
   * Stops accepting requests; with `drain` (the default) queued rows still run. Then releases the
   * sessions.
   */
  async close(options: { readonly drain: boolean } = { drain: true }): Promise<void> {
    this.closed = true;
    const models = [...this.models.values()];
    await Promise.all(models.map(async (m) => m.batched.close(options)));
    await Promise.allSettled(models.map(async (m) => m.session.release()));
    if (this.runnerInUse?.owned === true) await this.runnerInUse.runner.close();
  }

  /** The preprocessing pool's state (PreprocessPool.stats()), when it has started and is a pool. */
  preprocessingStats(): ReturnType<PreprocessPool['stats']> | undefined {
    const runner = this.runnerInUse?.runner;
    return runner instanceof PreprocessPool ? runner.stats() : undefined;
  }

  /** The preprocessing runner; the pool starts on first use, so a runtime that never decodes starts none. */
  private runner(): PreprocessRunner {
    if (this.runnerInUse === undefined) {
      const given = this.preprocessing;
      this.runnerInUse =
        'run' in given ? { runner: given, owned: false } : { runner: new PreprocessPool(given), owned: true };
    }
    return this.runnerInUse.runner;
  }

  /** Preprocesses one item (or reads its tensor) and checks it against the graph's inputs. */
  private async prepare(
    model: LoadedModel,
    item: EncoderItem,
    index: number,
    signal: AbortSignal,
  ): Promise<PreparedItem> {
    const modality = model.info.modality;
    const source = 'preprocessed' in item ? 'preprocessed' : 'text' in item ? 'text' : 'content';
    const field = `inputs[${index}].${source}`;
    try {
      let ready: PreprocessedEncoderInput;
      if ('preprocessed' in item) {
        // A client's cloud still needs FPS and kNN: that runs on the preprocessing runner too.
        ready =
          modality === 'point'
            ? await encoderFeedsFromPreprocessedOn(
                modality,
                item.preprocessed,
                model.inputOptions,
                this.runner(),
                signal,
              )
            : encoderFeedsFromPreprocessed(modality, item.preprocessed, model.inputOptions);
        checkAgainstGraph(model, ready, field, ErrorCode.InvalidInput);
      } else {
        ready = await this.preprocess(
          {
            modality,
            weight: 1,
            ...('text' in item ? { text: item.text } : { bytes: item.bytes }),
            ...('fileName' in item && item.fileName !== undefined ? { fileName: item.fileName } : {}),
          },
          model.inputOptions,
          signal,
        );
        // Our own preprocessing disagreeing with the graph means the repository was built for
        // another input layout: the operator has to fix that, not the client.
        checkAgainstGraph(model, ready, field, ErrorCode.FailedPrecondition);
      }
      const fromRunner =
        this.defaultPreprocess && !('preprocessed' in item) && TENSOR_MODALITIES.has(modality);
      return { slice: toRows(model, ready), preprocessed: ready.preprocessed, fromRunner };
    } catch (error) {
      throw isDomainError(error) ? atItem(error, `inputs[${index}]`, field) : error;
    }
  }

  private reduce(model: LoadedModel, out: RowOutputs, item: PreparedItem, keep: boolean): EncodedItem {
    const embedding = out[EMBEDDING_OUTPUT]!;
    const unnormalized = out[UNNORMALIZED_OUTPUT]!;
    const preprocessed = keep ? { preprocessed: item.preprocessed } : {};
    if (!model.clips || item.slice.rows === 1) return { embedding, unnormalized, ...preprocessed };
    return {
      embedding: clipMean(embedding, item.slice.rows),
      unnormalized: clipMean(unnormalized, item.slice.rows),
      ...preprocessed,
    };
  }
}

/**
 * Mean over clips of per-clip rows [S, E] → [E] (MODEL_SPEC §3.6: after the postprocessor, no
 * re-normalisation). Summed in float32 in clip order and then divided, as the graph's ReduceMean
 * does on CPU, so batched and one-at-a-time embeddings agree to float32 rounding.
 */
export function clipMean(rows: Float32Array, clips: number): Float32Array {
  const width = rows.length / clips;
  const out = new Float32Array(width);
  for (let c = 0; c < width; c++) {
    let sum = 0;
    for (let s = 0; s < clips; s++) sum = Math.fround(sum + rows[s * width + c]!);
    out[c] = sum / clips;
  }
  return out;
}

function hasClipAxis(inputs: readonly TensorSpec[]): boolean {
  return (
    inputs.length > 0 && inputs.every((spec) => spec.dims.length >= 3 && typeof spec.dims[1] === 'string')
  );
}

/** Batch-of-one feeds → rows: one row, or one row per clip for a clips graph. */
function toRows(model: LoadedModel, ready: PreprocessedEncoderInput): RowSlice {
  if (!model.clips) return { rows: 1, feeds: ready.feeds };
  let rows = 0;
  const feeds: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(ready.feeds)) {
    rows = t.dims[1]!;
    feeds[name] = { dtype: t.dtype, dims: t.dims.slice(1), data: t.data };
  }
  return { rows, feeds };
}

/**
 * Every graph input is fed, with its dtype and the numeric dims of model.json after the batch dim
 * (a symbolic dim such as `clips` takes any positive size): a misfit would fail the whole batch it
 * joins, so it is refused before it queues.
 */
function checkAgainstGraph(
  model: LoadedModel,
  ready: PreprocessedEncoderInput,
  field: string,
  code: ErrorCode,
): void {
  for (const spec of model.inputs) {
    const feed = ready.feeds[spec.name];
    const expected = `[${spec.dims.slice(1).join(', ')}]`;
    const fits =
      feed !== undefined &&
      feed.dtype === spec.dtype &&
      feed.dims.length === spec.dims.length &&
      feed.dims[0] === 1 &&
      spec.dims.every((d, i) => i === 0 || (typeof d === 'number' ? feed.dims[i] === d : feed.dims[i]! >= 1));
    if (!fits) {
      const got = feed === undefined ? 'nothing' : `${feed.dtype} [${feed.dims.slice(1).join(', ')}]`;
      throw new DomainError(
        code,
        `the ${model.info.label} encoder takes ${spec.name} as ${spec.dtype} ${expected} per item, got ${got}`,
        { field },
      );
    }
  }
}

/** The same error, naming the item it came from (`inputs[2]: ...`, field `inputs[2].content`). */
function atItem(error: DomainError, item: string, field: string): DomainError {
  if (error.message.startsWith(`${item}:`)) return error;
  return new DomainError(
    error.code,
    `${item}: ${error.message}`,
    { ...error.details, field },
    { cause: error },
  );
}
