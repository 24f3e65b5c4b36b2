import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  createOrtSession,
  resolveComponent,
  type BatchEvent,
  type BatcherClock,
  type BatcherStats,
  type InferenceSessionPort,
  type OrtSessionOptions,
} from '@imagebind-llm/inference';
import { RowBatchedModel, type BatcherSettings } from '../encoder/row-batched-model';

/** The bind component's name in the model repository (ARCHITECTURE §4). */
export const BIND_COMPONENT = 'bind';
const INPUT = 'queries';
const OUTPUT = 'visual_query';

/** What the loaded bind network is, for GetModelStatus, validation and metrics. */
export interface BindModelInfo {
  readonly component: string;
  readonly version: string;
  /** The `model` label of the inference metrics. */
  readonly label: string;
  readonly sourceSha256: string;
  readonly executionProvider: string;
  /** Query width (ImageBind's 1024), from model.json. */
  readonly inDim: number;
  /** Visual query width (the LLM's), from model.json. */
  readonly outDim: number;
}

export interface BindRuntimeOptions {
  readonly batcher: BatcherSettings;
  readonly onBatch?: (event: BatchEvent) => void;
  /** Called whenever a request has entered or left the queue (queue-depth gauge). */
  readonly onQueueChange?: () => void;
  readonly clock?: BatcherClock;
}

export interface BindLoadOptions extends BindRuntimeOptions {
  readonly providers?: readonly string[];
  readonly intraOpThreads?: number;
  /** onnxruntime thread spin-waiting (see OrtSessionOptions.allowSpinning). */
  readonly allowSpinning?: boolean;
  readonly createSession?: (path: string, options: OrtSessionOptions) => Promise<InferenceSessionPort>;
}

/**
 * The bind network (MODEL_SPEC §4) behind a dynamic batcher: the query rows of many Project calls
 * are concatenated into one session call ([Σn, 1024] → [Σn, dim]) and split back per call. Rows
 * are independent in the graph, so a batched row equals the row projected alone.
 */
export class BindRuntime {
  private readonly batched: RowBatchedModel;
  /** Most rows one request may carry: all of them must fit the queue at once. */
  private readonly maxRequestRows: number;
  private closed = false;

  constructor(
    readonly info: BindModelInfo,
    private readonly session: InferenceSessionPort,
    options: BindRuntimeOptions,
  ) {
    this.maxRequestRows = options.batcher.maxQueueSize;
    this.batched = new RowBatchedModel({
      name: info.label,
      session,
      outputs: [OUTPUT],
      batcher: options.batcher,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.onBatch === undefined ? {} : { onBatch: options.onBatch }),
      ...(options.onQueueChange === undefined ? {} : { onQueueChange: options.onQueueChange }),
    });
  }

  static async load(repo: string, options: BindLoadOptions): Promise<BindRuntime> {
    const resolved = resolveComponent(repo, BIND_COMPONENT);
    const config = resolved.json.config as Record<string, unknown>;
    const inDim = config['inDim'];
    const outDim = config['dim'];
    if (!isPositiveInteger(inDim) || !isPositiveInteger(outDim)) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `${resolved.dir}/model.json has no inDim/dim in its config; rebuild the repository with \`ibllm models build\``,
      );
    }
    let executionProvider = 'cpu';
    const session = await (options.createSession ?? createOrtSession)(resolved.file('model'), {
      ...(options.providers === undefined ? {} : { providers: options.providers }),
      ...(options.intraOpThreads === undefined ? {} : { intraOpThreads: options.intraOpThreads }),
      ...(options.allowSpinning === undefined ? {} : { allowSpinning: options.allowSpinning }),
      onProviders: (chosen) => {
        executionProvider = chosen[0] ?? 'cpu';
      },
    });
    return new BindRuntime(
      {
        component: BIND_COMPONENT,
        version: resolved.json.version,
        label: BIND_COMPONENT,
        sourceSha256: resolved.json.sources[0]?.sha256 ?? '',
        executionProvider,
        inDim,
        outDim,
      },
      session,
      options,
    );
  }

  /** Fails fast with OVERLOADED when not one more row fits the queue. */
  admit(): void {
    this.batched.admit();
  }

  /**
   * Projects `rows` queries ([rows, inDim] row-major) to visual queries [rows, outDim]. The caller
   * has checked the width; more rows than a batch holds are split across batches.
   */
  async project(
    queries: Float32Array,
    rows: number,
    options: { readonly signal?: AbortSignal; readonly deadline?: number } = {},
  ): Promise<Float32Array> {
    if (this.closed)
      throw DomainError.unavailable('the bind network is shutting down; retry on another replica');
    if (!isPositiveInteger(rows) || queries.length !== rows * this.info.inDim) {
      throw DomainError.invalidInput(
        `queries: expected [${rows}, ${this.info.inDim}] (${rows * this.info.inDim} values), got ${queries.length} values`,
        'queries',
      );
    }
    if (rows > this.maxRequestRows) {
      // It could never be queued whole; OVERLOADED would invite retries that cannot succeed.
      throw new DomainError(
        ErrorCode.PayloadTooLarge,
        `queries: ${rows} rows, but the bind queue holds ${this.maxRequestRows}; split the request`,
        { field: 'queries', limit: this.maxRequestRows },
      );
    }
    this.batched.admit();
    const [out] = await this.batched.run(
      [{ rows, feeds: { [INPUT]: { dtype: 'float32', dims: [rows, this.info.inDim], data: queries } } }],
      options,
    );
    return out![OUTPUT]!;
  }

  /** One unqueued session call with a zero row, so the first request does not pay for set-up. */
  async warmup(): Promise<void> {
    const out = await this.batched.runUnbatched({
      rows: 1,
      feeds: {
        [INPUT]: { dtype: 'float32', dims: [1, this.info.inDim], data: new Float32Array(this.info.inDim) },
      },
    });
    if (out[OUTPUT]?.length !== this.info.outDim) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `the bind network returned ${out[OUTPUT]?.length ?? 0} values per row; model.json says ${this.info.outDim}`,
      );
    }
  }

  stats(): BatcherStats {
    return this.batched.stats();
  }

  async close(options: { readonly drain: boolean } = { drain: true }): Promise<void> {
    this.closed = true;
    await this.batched.close(options);
    await this.session.release();
  }
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1;
}
