import { setMaxListeners } from 'node:events';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  DynamicBatcher,
  type BatchEvent,
  type BatcherClock,
  type BatcherStats,
  type HostData,
  type HostTensor,
  type InferenceSessionPort,
} from '@imagebind-llm/inference';

/** Dynamic batcher settings of one model (the BATCH_* variables, ARCHITECTURE §6). */
export interface BatcherSettings {
  /** Most rows one session call sees (an image or text is one row, a video or audio file one per clip). */
  readonly maxBatchSize: number;
  /** A partial batch runs once its oldest rows have waited this long. */
  readonly maxQueueDelayMs: number;
  /** Most rows waiting; beyond it requests are refused with OVERLOADED at once. */
  readonly maxQueueSize: number;
  /** Session calls running at once. */
  readonly maxConcurrentBatches: number;
}

/**
 * Some rows for a model: every feed's first dimension is `rows`, the rest is the graph's per-row
 * layout. One image is one row; a video's 15 clips are 15 rows (see `clipAxis`).
 */
export interface RowSlice {
  readonly rows: number;
  readonly feeds: Readonly<Record<string, HostTensor>>;
}

/** Per graph output, `rows × width` float32 values in row order. */
export type RowOutputs = Readonly<Record<string, Float32Array>>;

export interface RowRunOptions {
  /** Epoch ms; rows still queued then are dropped with DEADLINE_EXCEEDED. */
  readonly deadline?: number;
  /** Aborting drops the request's queued rows and discards its running ones. */
  readonly signal?: AbortSignal;
}

export interface RowBatchedModelOptions {
  /** Names the model in errors and metrics, e.g. `imagebind-vision:video`. */
  readonly name: string;
  readonly session: InferenceSessionPort;
  /** Graph outputs to fetch; each is [batch, width] float32. */
  readonly outputs: readonly string[];
  /**
   * The graph takes [batch, clips, ...] and averages over clips (MODEL_SPEC §3.6). Rows are then
   * fed as batch = rows, clips = 1, so the clips of many requests share one session call and a
   * request of more clips than a batch holds still runs; the caller takes each request's clip
   * mean from the per-clip outputs.
   */
  readonly clipAxis?: boolean;
  readonly batcher: BatcherSettings;
  readonly onBatch?: (event: BatchEvent) => void;
  /** Called whenever a request has entered or left the queue (refreshes the queue-depth gauge). */
  readonly onQueueChange?: () => void;
  /** Default: wall clock (tests drive a manual one). */
  readonly clock?: BatcherClock;
}

type TypedArrayCtor = new (length: number) => HostData;

/**
 * One session behind a DynamicBatcher, batching along the first axis: the rows of many requests
 * are concatenated into one session call and the outputs are split back per request. The encoders
 * and the bind network share it; they differ only in how a request becomes rows.
 */
export class RowBatchedModel {
  readonly name: string;
  private readonly batcher: DynamicBatcher<RowSlice, RowOutputs>;
  private readonly maxRows: number;
  private readonly maxQueueSize: number;
  private readonly maxQueueDelayMs: number;

  constructor(private readonly options: RowBatchedModelOptions) {
    this.name = options.name;
    this.maxRows = options.batcher.maxBatchSize;
    this.maxQueueSize = options.batcher.maxQueueSize;
    this.maxQueueDelayMs = options.batcher.maxQueueDelayMs;
    this.batcher = new DynamicBatcher<RowSlice, RowOutputs>({
      name: options.name,
      maxBatchSize: options.batcher.maxBatchSize,
      maxQueueDelayMs: options.batcher.maxQueueDelayMs,
      maxQueueSize: options.batcher.maxQueueSize,
      maxConcurrentBatches: options.batcher.maxConcurrentBatches,
      execute: async (slices) => this.execute(slices),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.onBatch === undefined ? {} : { onBatch: options.onBatch }),
    });
  }

  /**
   * Refuses at once, before any preprocessing is spent on a request, when not even one more row
   * fits the queue. The batcher refuses again at submit if the queue filled up meanwhile.
   */
  admit(): void {
    const { queuedUnits, closed } = this.batcher.stats();
    if (closed) throw DomainError.unavailable(`${this.name}: shutting down; retry on another replica`);
    if (queuedUnits >= this.maxQueueSize) {
      const retryAfterMs = Math.max(1, Math.ceil(this.maxQueueDelayMs));
      throw DomainError.overloaded(
        `${this.name}: the queue is full (${queuedUnits} of ${this.maxQueueSize} rows waiting); ` +
          `retry after ${retryAfterMs} ms`,
        retryAfterMs,
      );
    }
  }

  /**
   * Runs one request's slices through the batcher and resolves with their outputs, slice by slice.
   * A slice with more rows than a batch holds is cut into batch-sized parts (the contract lets a
   * request exceed the batch size). If any part is refused or fails, the request's other parts are
   * withdrawn and that first error is thrown.
   */
  async run(slices: readonly RowSlice[], options: RowRunOptions = {}): Promise<RowOutputs[]> {
    const request = new AbortController();
    const forward = (): void => request.abort(options.signal?.reason);
    if (options.signal?.aborted === true) forward();
    else options.signal?.addEventListener('abort', forward, { once: true });
    const submitOptions = {
      signal: request.signal,
      ...(options.deadline === undefined || !Number.isFinite(options.deadline)
        ? {}
        : { deadline: options.deadline }),
    };
    const cuts = slices.flatMap((slice, index) => this.cut(slice).map((part) => ({ index, part })));
    // Every part listens to this request's signal: a 15-clip video in 1-row batches is 15 listeners,
    // all of them expected (they go with their parts), so Node's leak warning at 10 would be noise.
    setMaxListeners(Math.max(10, cuts.length), request.signal);
    const parts = cuts.map(({ index, part }) => ({
      slice: index,
      promise: this.batcher.submit(part, { ...submitOptions, size: part.rows }),
    }));
    this.options.onQueueChange?.();
    try {
      const settled = await Promise.all(
        parts.map(async (p) =>
          p.promise.catch((error: unknown) => {
            // Withdraw the rest of the request: nobody will use their results.
            request.abort(error);
            throw error;
          }),
        ),
      );
      return slices.map((slice, index) =>
        joinRows(
          settled.filter((_, i) => parts[i]!.slice === index),
          this.options.outputs,
          slice.rows,
        ),
      );
    } catch (error) {
      // Let every withdrawn part settle before answering, so no rejection goes unobserved.
      await Promise.allSettled(parts.map(async (p) => p.promise));
      throw error;
    } finally {
      options.signal?.removeEventListener('abort', forward);
      this.options.onQueueChange?.();
    }
  }

  /** Runs one slice at once, outside the queue (warm-up). */
  async runUnbatched(slice: RowSlice): Promise<RowOutputs> {
    const [out] = await this.execute([slice]);
    return out!;
  }

  stats(): BatcherStats {
    return this.batcher.stats();
  }

  /** Stops accepting rows; with `drain`, queued rows still run. Resolves when nothing is left. */
  async close(options: { readonly drain: boolean }): Promise<void> {
    await this.batcher.close(options);
  }

  private cut(slice: RowSlice): RowSlice[] {
    if (slice.rows <= this.maxRows) return [slice];
    const parts: RowSlice[] = [];
    for (let start = 0; start < slice.rows; start += this.maxRows) {
      const rows = Math.min(this.maxRows, slice.rows - start);
      const feeds: Record<string, HostTensor> = {};
      for (const [name, t] of Object.entries(slice.feeds)) {
        const per = rowLength(t);
        feeds[name] = {
          dtype: t.dtype,
          dims: [rows, ...t.dims.slice(1)],
          data: t.data.subarray(start * per, (start + rows) * per),
        };
      }
      parts.push({ rows, feeds });
    }
    return parts;
  }

  /** One session call for the slices of a batch: concatenate along rows, run, split. */
  private async execute(slices: readonly RowSlice[]): Promise<RowOutputs[]> {
    const first = slices[0];
    if (first === undefined) return [];
    const total = slices.reduce((n, s) => n + s.rows, 0);
    const feeds: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(first.feeds)) {
      const per = rowLength(t);
      let data = t.data;
      if (slices.length > 1) {
        data = new (t.data.constructor as TypedArrayCtor)(total * per);
        let offset = 0;
        for (const slice of slices) {
          const part = slice.feeds[name];
          if (part === undefined || part.dtype !== t.dtype || rowLength(part) !== per) {
            // Callers check every request against the graph before it is queued; a mismatch here
            // is a bug, and failing the batch beats feeding the session misaligned rows.
            throw new DomainError(ErrorCode.Internal, `${this.name}: batch rows of ${name} do not line up`);
          }
          (data as Float32Array).set(part.data as Float32Array, offset);
          offset += part.data.length;
        }
      }
      const rest = t.dims.slice(1);
      feeds[name] = {
        dtype: t.dtype,
        dims: this.options.clipAxis === true ? [total, 1, ...rest] : [total, ...rest],
        data,
      };
    }
    const out = await this.options.session.run(feeds, this.options.outputs);
    const results: Record<string, Float32Array>[] = slices.map(() => ({}));
    for (const name of this.options.outputs) {
      const tensor = out[name];
      if (
        tensor === undefined ||
        !(tensor.data instanceof Float32Array) ||
        tensor.data.length % total !== 0
      ) {
        throw new DomainError(
          ErrorCode.Internal,
          `${this.name}: the session returned no usable ${name} output`,
        );
      }
      const data = tensor.data;
      const width = data.length / total;
      let row = 0;
      slices.forEach((slice, i) => {
        // A copy, so a request's result does not keep the whole batch's buffer alive.
        results[i]![name] = data.slice(row * width, (row + slice.rows) * width);
        row += slice.rows;
      });
    }
    return results;
  }
}

/** Values per row of a tensor whose first dimension is rows. */
function rowLength(t: HostTensor): number {
  return t.dims.slice(1).reduce((a, b) => a * b, 1);
}

/** Concatenates the outputs of a slice's parts back into the slice's rows. */
function joinRows(parts: readonly RowOutputs[], outputs: readonly string[], rows: number): RowOutputs {
  if (parts.length === 1) return parts[0]!;
  const joined: Record<string, Float32Array> = {};
  for (const name of outputs) {
    const total = parts.reduce((n, p) => n + p[name]!.length, 0);
    const data = new Float32Array(total);
    let offset = 0;
    for (const p of parts) {
      data.set(p[name]!, offset);
      offset += p[name]!.length;
    }
    if (total % rows !== 0)
      throw new DomainError(ErrorCode.Internal, `${name}: ${total} values for ${rows} rows`);
    joined[name] = data;
  }
  return joined;
}
