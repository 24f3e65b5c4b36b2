import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { systemClock, type BatcherClock } from './batcher-clock';

/**
 * Runs one batch. Results come back in item order, one per item. The signal aborts only when every
 * caller in the batch has gone away, so an execute that honours it frees its slot early.
 */
export type BatchExecutor<Item, Result> = (
  items: readonly Item[],
  signal: AbortSignal,
) => Promise<readonly Result[]>;

/** What `onBatch` sees after every executed batch (items dropped before dispatch are not batches). */
export interface BatchEvent {
  /** Items in the batch. */
  readonly size: number;
  /** Units in the batch (Σ item sizes), at most `maxBatchSize`. */
  readonly units: number;
  /** How long the batch's oldest item waited in the queue before dispatch. */
  readonly queueDelayMs: number;
  /** From calling `execute` to its promise settling. */
  readonly executeMs: number;
  /** Present when the batch failed: what execute threw, or an INTERNAL error for a bad result. */
  readonly error?: unknown;
}

export interface DynamicBatcherOptions<Item, Result> {
  /** Names the batcher in error messages, e.g. `encoder-vision`. Default `batcher`. */
  readonly name?: string;
  /** Largest batch, in units (an image is 1, a video its clip count). Positive integer. */
  readonly maxBatchSize: number;
  /** A partial batch is dispatched once its oldest item has waited this long. ≥ 0. */
  readonly maxQueueDelayMs: number;
  /** Most units that may wait (not counting executing batches); beyond it submit is OVERLOADED. ≥ maxBatchSize. */
  readonly maxQueueSize: number;
  /** Executions running at once. Positive integer, default 1. */
  readonly maxConcurrentBatches?: number;
  readonly execute: BatchExecutor<Item, Result>;
  /** Default: wall clock and Node timers. */
  readonly clock?: BatcherClock;
  /** Observability hook (metrics, logs). It must not throw; if it does, the error is ignored. */
  readonly onBatch?: (event: BatchEvent) => void;
}

export interface SubmitOptions {
  /** Epoch ms. An item still queued at its deadline is dropped with DEADLINE_EXCEEDED. */
  readonly deadline?: number;
  /** Aborting removes a queued item (CANCELLED); an executing item's result is discarded. */
  readonly signal?: AbortSignal;
  /** Units this item adds to a batch (e.g. 15 clips for a video). Positive integer ≤ maxBatchSize; default 1. */
  readonly size?: number;
}

/** Counters since construction. Every submit ends in exactly one of the outcome counters. */
export interface BatcherTotals {
  /** Every `submit` call. */
  readonly submitted: number;
  /** Resolved with a result. */
  readonly completed: number;
  /** Rejected because its batch's execute failed or returned a bad result. */
  readonly failed: number;
  /** Refused at submit because the queue was full. */
  readonly overloaded: number;
  /** Deadline passed before dispatch. */
  readonly expired: number;
  /** Caller aborted (queued, or executing with the result discarded). */
  readonly cancelled: number;
  /** Refused without running: invalid size, or shutting down (at submit or queued at close). */
  readonly rejected: number;
  /** Batches handed to execute. */
  readonly batches: number;
}

export interface BatcherStats {
  readonly queuedItems: number;
  /** Units waiting; never above `maxQueueSize` (the autoscaling signal, ARCHITECTURE §7). */
  readonly queuedUnits: number;
  readonly inFlightBatches: number;
  /** True once `close` was called. */
  readonly closed: boolean;
  readonly totals: BatcherTotals;
}

interface RunningBatch {
  readonly controller: AbortController;
  /** Items whose callers still want the result; at 0 the batch's signal aborts. */
  waiting: number;
}

interface Entry<Item, Result> {
  readonly item: Item;
  readonly units: number;
  readonly enqueuedAt: number;
  readonly deadline: number | undefined;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: unknown) => void;
  onAbort: (() => void) | undefined;
  deadlineTimer: unknown;
  batch: RunningBatch | undefined;
  settled: boolean;
}

type Outcome<Result> = { ok: true; results: readonly Result[] } | { ok: false; error: unknown };

type Mode = 'open' | 'drain' | 'reject';

/** Weight of the newest batch in the execute-time average behind the `retryAfterMs` hint. */
const EXECUTE_MS_SMOOTHING = 0.2;

/**
 * Groups single requests into batches for one model (ARCHITECTURE §6), framework-free: it only
 * schedules, `execute` does the work.
 *
 * - FIFO. A batch takes queued items in arrival order while they fit in `maxBatchSize` units; it
 *   never skips a large item to pack smaller later ones, so large items cannot starve.
 * - A batch is dispatched as soon as it is full (or the next queued item cannot join it), or when
 *   its oldest item has waited `maxQueueDelayMs`, whenever fewer than `maxConcurrentBatches` run.
 * - An item larger than `maxBatchSize` is refused with INVALID_INPUT rather than run alone:
 *   `maxBatchSize` is the one bound on what the session sees (memory, optimisation profiles), so the
 *   service must split such inputs (e.g. a long video into clip groups) before submitting.
 * - Bounded: beyond `maxQueueSize` waiting units, `submit` rejects at once with OVERLOADED
 *   (→ RESOURCE_EXHAUSTED) and a `retryAfterMs` hint; a refused item holds no memory or timer.
 * - Deadlines apply while queued; once dispatched an item runs to the end of its batch (the RPC's
 *   own deadline answers the caller).
 */
export class DynamicBatcher<Item, Result> {
  private readonly name: string;
  private readonly maxBatchSize: number;
  private readonly maxQueueDelayMs: number;
  private readonly maxQueueSize: number;
  private readonly maxConcurrentBatches: number;
  private readonly execute: BatchExecutor<Item, Result>;
  private readonly clock: BatcherClock;
  private readonly onBatch: ((event: BatchEvent) => void) | undefined;

  /** Insertion-ordered, with O(1) removal of a cancelled or expired item. */
  private readonly queue = new Set<Entry<Item, Result>>();
  private queuedUnits = 0;
  private inFlightBatches = 0;
  private mode: Mode = 'open';
  private dispatchTimer: { readonly handle: unknown; readonly due: number } | undefined;
  private pumping = false;
  private pumpAgain = false;
  private idleWaiters: (() => void)[] = [];
  private averageExecuteMs: number | undefined;
  private readonly totals = {
    submitted: 0,
    completed: 0,
    failed: 0,
    overloaded: 0,
    expired: 0,
    cancelled: 0,
    rejected: 0,
    batches: 0,
  };

  constructor(options: DynamicBatcherOptions<Item, Result>) {
    this.name = options.name ?? 'batcher';
    this.maxBatchSize = options.maxBatchSize;
    this.maxQueueDelayMs = options.maxQueueDelayMs;
    this.maxQueueSize = options.maxQueueSize;
    this.maxConcurrentBatches = options.maxConcurrentBatches ?? 1;
    this.execute = options.execute;
    this.clock = options.clock ?? systemClock;
    this.onBatch = options.onBatch;
    // Configuration bugs, caught at boot: the env schema should already have refused these.
    if (!isPositiveInteger(this.maxBatchSize)) {
      throw new RangeError(`${this.name}: maxBatchSize must be a positive integer, got ${this.maxBatchSize}`);
    }
    if (!Number.isFinite(this.maxQueueDelayMs) || this.maxQueueDelayMs < 0) {
      throw new RangeError(`${this.name}: maxQueueDelayMs must be ≥ 0, got ${this.maxQueueDelayMs}`);
    }
    if (!Number.isSafeInteger(this.maxQueueSize) || this.maxQueueSize < this.maxBatchSize) {
      throw new RangeError(
        `${this.name}: maxQueueSize must be an integer ≥ maxBatchSize (${this.maxBatchSize}), got ${this.maxQueueSize}`,
      );
    }
    if (!isPositiveInteger(this.maxConcurrentBatches)) {
      throw new RangeError(
        `${this.name}: maxConcurrentBatches must be a positive integer, got ${this.maxConcurrentBatches}`,
      );
    }
  }

  /**
   * Queues one item and resolves with its result. Refusals (full queue, invalid size, shutting
   * down, already aborted or past its deadline) reject at once, before anything is queued.
   */
  async submit(item: Item, options: SubmitOptions = {}): Promise<Result> {
    const result = await new Promise<Result>((resolve, reject) => {
      this.enqueue(item, options, resolve, reject);
    });
    return result;
  }

  /**
   * Stops accepting work (new submits: DEPENDENCY_UNAVAILABLE "shutting down"). With `drain`, every
   * queued item is dispatched without waiting for the queue delay (deadlines and cancellation still
   * apply); without it, queued items are rejected with DEPENDENCY_UNAVAILABLE, which is safe to retry
   * elsewhere since they never ran. Executing batches always finish. Resolves when nothing is queued
   * or executing. A later `close({ drain: false })` cuts a drain short; the reverse does not.
   */
  async close(options: { readonly drain: boolean }): Promise<void> {
    this.mode = this.mode === 'reject' || !options.drain ? 'reject' : 'drain';
    if (this.mode === 'reject') {
      for (const entry of this.queue) {
        this.removeQueued(entry);
        this.settle(entry);
        this.totals.rejected++;
        entry.reject(this.shuttingDown());
      }
    }
    this.pump();
    await new Promise<void>((resolve) => {
      if (this.isIdle()) resolve();
      else this.idleWaiters.push(resolve);
    });
  }

  stats(): BatcherStats {
    return {
      queuedItems: this.queue.size,
      queuedUnits: this.queuedUnits,
      inFlightBatches: this.inFlightBatches,
      closed: this.mode !== 'open',
      totals: { ...this.totals },
    };
  }

  private enqueue(
    item: Item,
    options: SubmitOptions,
    resolve: (result: Result) => void,
    reject: (error: unknown) => void,
  ): void {
    this.totals.submitted++;
    if (this.mode !== 'open') {
      this.totals.rejected++;
      throw this.shuttingDown();
    }
    const units = options.size ?? 1;
    if (!isPositiveInteger(units)) {
      this.totals.rejected++;
      throw new DomainError(
        ErrorCode.InvalidInput,
        `${this.name}: size must be a positive integer, got ${units}`,
        {
          field: 'size',
        },
      );
    }
    if (units > this.maxBatchSize) {
      this.totals.rejected++;
      throw new DomainError(
        ErrorCode.InvalidInput,
        `${this.name}: this input needs ${units} batch units but a batch holds at most ${this.maxBatchSize}; ` +
          'send it in smaller parts',
        { field: 'size', size: units, maxBatchSize: this.maxBatchSize },
      );
    }
    const { deadline, signal } = options;
    if (signal?.aborted === true) {
      this.totals.cancelled++;
      throw this.cancelledError(signal);
    }
    const now = this.clock.now();
    if (deadline !== undefined && deadline <= now) {
      this.totals.expired++;
      throw this.deadlineError();
    }
    if (this.queuedUnits + units > this.maxQueueSize) {
      this.totals.overloaded++;
      const retryAfterMs = this.retryAfterMs();
      throw DomainError.overloaded(
        `${this.name}: the queue is full (${this.queuedUnits} of ${this.maxQueueSize} units waiting); ` +
          `retry after ${retryAfterMs} ms`,
        retryAfterMs,
      );
    }

    const entry: Entry<Item, Result> = {
      item,
      units,
      enqueuedAt: now,
      deadline,
      signal,
      resolve,
      reject,
      onAbort: undefined,
      deadlineTimer: undefined,
      batch: undefined,
      settled: false,
    };
    if (signal !== undefined) {
      entry.onAbort = () => {
        this.abortEntry(entry);
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
    }
    if (deadline !== undefined) {
      entry.deadlineTimer = this.clock.setTimeout(() => {
        entry.deadlineTimer = undefined;
        this.expireEntry(entry);
      }, deadline - now);
    }
    this.queue.add(entry);
    this.queuedUnits += units;
    this.pump();
  }

  /**
   * Dispatches every ready batch while a slot is free, then re-arms the delay timer for the oldest
   * item. Re-entrant calls (from execute, onBatch or abort listeners) are folded into the running one.
   */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.dispatchReady();
        this.armDispatchTimer();
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
    if (this.isIdle()) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private dispatchReady(): void {
    while (this.inFlightBatches < this.maxConcurrentBatches && this.queue.size > 0) {
      const now = this.clock.now();
      const batch: Entry<Item, Result>[] = [];
      let units = 0;
      let blocked = false;
      for (const entry of this.queue) {
        // Checked here too, so an item whose deadline timer has not run yet is never dispatched late.
        if (entry.deadline !== undefined && entry.deadline <= now) {
          this.removeQueued(entry);
          this.settle(entry);
          this.totals.expired++;
          entry.reject(this.deadlineError());
          continue;
        }
        if (units + entry.units > this.maxBatchSize) {
          blocked = true;
          break;
        }
        batch.push(entry);
        units += entry.units;
        if (units === this.maxBatchSize) break;
      }
      const oldest = batch[0];
      if (oldest === undefined) continue;
      const ready =
        units === this.maxBatchSize ||
        blocked ||
        this.mode === 'drain' ||
        now - oldest.enqueuedAt >= this.maxQueueDelayMs;
      if (!ready) return;
      this.startBatch(batch, units, now - oldest.enqueuedAt, now);
    }
  }

  /** One timer, for the oldest queued item, only while a slot is free; a finishing batch pumps anyway. */
  private armDispatchTimer(): void {
    const oldest = this.queue.values().next().value;
    const due =
      this.mode === 'open' && oldest !== undefined && this.inFlightBatches < this.maxConcurrentBatches
        ? oldest.enqueuedAt + this.maxQueueDelayMs
        : undefined;
    if (this.dispatchTimer?.due === due) return;
    if (this.dispatchTimer !== undefined) this.clock.clearTimeout(this.dispatchTimer.handle);
    this.dispatchTimer = undefined;
    if (due === undefined) return;
    const handle = this.clock.setTimeout(
      () => {
        this.dispatchTimer = undefined;
        this.pump();
      },
      Math.max(0, due - this.clock.now()),
    );
    this.dispatchTimer = { handle, due };
  }

  private startBatch(entries: Entry<Item, Result>[], units: number, queueDelayMs: number, now: number): void {
    const running: RunningBatch = { controller: new AbortController(), waiting: entries.length };
    for (const entry of entries) {
      this.removeQueued(entry);
      this.clearDeadline(entry);
      entry.batch = running;
    }
    this.inFlightBatches++;
    this.totals.batches++;
    const items = entries.map((entry) => entry.item);
    // An async wrapper turns a synchronous throw from execute into a rejection of this batch only.
    const run = async (): Promise<readonly Result[]> => this.execute(items, running.controller.signal);
    run().then(
      (results) => {
        this.finishBatch(entries, units, queueDelayMs, now, { ok: true, results });
      },
      (error: unknown) => {
        this.finishBatch(entries, units, queueDelayMs, now, { ok: false, error });
      },
    );
  }

  private finishBatch(
    entries: Entry<Item, Result>[],
    units: number,
    queueDelayMs: number,
    startedAt: number,
    outcome: Outcome<Result>,
  ): void {
    const executeMs = this.clock.now() - startedAt;
    this.inFlightBatches--;
    this.averageExecuteMs =
      this.averageExecuteMs === undefined
        ? executeMs
        : this.averageExecuteMs + EXECUTE_MS_SMOOTHING * (executeMs - this.averageExecuteMs);
    if (outcome.ok && (!Array.isArray(outcome.results) || outcome.results.length !== entries.length)) {
      const got = Array.isArray(outcome.results) ? `${outcome.results.length} results` : 'no array';
      outcome = {
        ok: false,
        error: new DomainError(
          ErrorCode.Internal,
          `${this.name}: execute returned ${got} for a batch of ${entries.length} items`,
        ),
      };
    }
    entries.forEach((entry, index) => {
      if (entry.settled) return; // cancelled while executing: the result is discarded
      this.settle(entry);
      if (outcome.ok) {
        this.totals.completed++;
        entry.resolve(outcome.results[index] as Result);
      } else {
        this.totals.failed++;
        entry.reject(outcome.error);
      }
    });
    try {
      this.onBatch?.({
        size: entries.length,
        units,
        queueDelayMs,
        executeMs,
        ...(outcome.ok ? {} : { error: outcome.error }),
      });
    } catch {
      // Observability must never fail requests or stall the queue.
    }
    this.pump();
  }

  private abortEntry(entry: Entry<Item, Result>): void {
    if (entry.settled) return;
    const signal = entry.signal;
    this.settle(entry);
    this.totals.cancelled++;
    entry.reject(this.cancelledError(signal));
    const batch = entry.batch;
    if (batch === undefined) {
      this.removeQueued(entry);
      this.pump();
      return;
    }
    // The batch keeps its slot until execute settles: the device is still busy with it.
    batch.waiting--;
    if (batch.waiting === 0) batch.controller.abort(signal?.reason);
  }

  private expireEntry(entry: Entry<Item, Result>): void {
    if (entry.settled || entry.batch !== undefined) return;
    this.removeQueued(entry);
    this.settle(entry);
    this.totals.expired++;
    entry.reject(this.deadlineError());
    this.pump();
  }

  private removeQueued(entry: Entry<Item, Result>): void {
    if (this.queue.delete(entry)) this.queuedUnits -= entry.units;
  }

  /** Marks the entry answered and lets go of its timer and listener, so nothing keeps it alive. */
  private settle(entry: Entry<Item, Result>): void {
    entry.settled = true;
    this.clearDeadline(entry);
    if (entry.onAbort !== undefined) {
      entry.signal?.removeEventListener('abort', entry.onAbort);
      entry.onAbort = undefined;
    }
  }

  private clearDeadline(entry: Entry<Item, Result>): void {
    if (entry.deadlineTimer === undefined) return;
    this.clock.clearTimeout(entry.deadlineTimer);
    entry.deadlineTimer = undefined;
  }

  private isIdle(): boolean {
    return this.queue.size === 0 && this.inFlightBatches === 0;
  }

  /**
   * How long until the queue as it stands has drained: waves of `maxConcurrentBatches` batches at the
   * recent execute time. Never below the queue delay (a batch waits at least that) nor 1 ms.
   */
  private retryAfterMs(): number {
    const queuedBatches = Math.max(1, Math.ceil(this.queuedUnits / this.maxBatchSize));
    const waves = Math.ceil(queuedBatches / this.maxConcurrentBatches);
    const drainMs = Math.ceil(waves * (this.averageExecuteMs ?? 0));
    return Math.max(1, Math.ceil(this.maxQueueDelayMs), drainMs);
  }

  private shuttingDown(): DomainError {
    return DomainError.unavailable(`${this.name}: shutting down; retry on another replica`);
  }

  private deadlineError(): DomainError {
    return new DomainError(
      ErrorCode.DeadlineExceeded,
      `${this.name}: the deadline passed while the request was queued`,
    );
  }

  private cancelledError(signal: AbortSignal | undefined): DomainError {
    return new DomainError(
      ErrorCode.Cancelled,
      `${this.name}: the caller cancelled the request`,
      {},
      {
        cause: signal?.reason,
      },
    );
  }
}

function isPositiveInteger(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 1;
}
