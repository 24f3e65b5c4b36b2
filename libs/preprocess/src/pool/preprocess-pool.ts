import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
// sharp's docs: on glibc Linux the main thread must load it before worker threads do, so its
// shared libraries stay mapped until every thread has finished.
import 'sharp';
import {
  DEFAULT_ANSWER_HOLD_MS,
  deserializeError,
  detachableTask,
  runPreprocessTask,
  taskBytes,
  taskTransferables,
  type PoolAnswer,
  type PoolRequest,
  type PreprocessLimits,
  type PreprocessWorkerData,
  type PreprocessOutput,
  type PreprocessTask,
} from './preprocess-task';
import { ownsItsBuffer, trimOldest } from '../reusable-buffers';

/** Where preprocessing runs: a pool of worker threads, or (CLI, tests) the calling thread. */
export interface PreprocessRunner {
  run(task: PreprocessTask, options?: { readonly signal?: AbortSignal }): Promise<PreprocessOutput>;
  /**
   * The caller is done with a tensor this runner answered (`output.data` of an image, audio or
   * video task): a pool writes a later output of the same size into its buffer. Nothing may use
   * the tensor afterwards (it is detached when it moves). Returns whether it was kept.
   */
  recycle(tensor: Float32Array): boolean;
  close(): Promise<void>;
}

export interface PreprocessPoolOptions {
  /** Worker threads, each running one task at a time; default the CPU count. */
  readonly workers?: number;
  /** Tasks that may wait for a worker; one more is refused with OVERLOADED. Default 64 (as PREPROCESS_MAX_QUEUE). */
  readonly maxQueue?: number;
  /** Limits the workers apply to every task. */
  readonly limits?: PreprocessLimits;
  /** The compiled worker script; default `preprocess.worker.js` of this package's build. */
  readonly workerFile?: string;
  /**
   * Longest a worker holds a small task's answer to send it with the next ones (fewer messages for
   * the serving thread to wake for; see the worker's HOLD_MAX_MS), in milliseconds. Default 2; 0
   * answers every task alone.
   */
  readonly answerHoldMs?: number;
}

/** Runs tasks on the calling thread (the CLI's one-shot commands, where nothing else waits). */
export class InThreadPreprocessor implements PreprocessRunner {
  constructor(private readonly limits: PreprocessLimits = {}) {}

  async run(task: PreprocessTask): Promise<PreprocessOutput> {
    return runPreprocessTask(task, this.limits);
  }

  /** Nothing to reuse on the calling thread: the tensor is left to the garbage collector. */
  recycle(): boolean {
    return false;
  }

  async close(): Promise<void> {}
}

interface Pending {
  /** The caller's task: its buffers are copied when it is sent to a worker, not before. */
  readonly task: PreprocessTask;
  readonly resolve: (output: PreprocessOutput) => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

interface InFlight {
  readonly id: number;
  readonly pending: Pending;
  /** Its expected run time when sent (expectedMs), for where the next tasks go. */
  readonly expectedMs: number;
  /** Its caller gave up while it waited in the worker: it has been answered, its result is dropped. */
  dropped: boolean;
}

interface Slot {
  readonly worker: Worker;
  /** Tasks sent to this worker, oldest first: the one it runs, then those it runs next. */
  readonly inFlight: InFlight[];
}

/**
 * Tasks a worker holds at once: the one it runs and up to three next, so it starts the next the
 * moment it finishes instead of waiting a round trip through the event loop (which, on a busy
 * machine, is most of a small image's time), and answers a few small ones in one message (see the
 * worker's HOLD_MAX_ANSWERS), which frees their places together so the next few go in one message
 * too. A task sent ahead goes to the worker expected to free up first (the least expectedMs ahead
 * of it, not the fewest tasks: one behind a video would sit there while a worker with three small
 * images frees up and idles), and only where that is under PREFETCH_AHEAD_MS; beyond, it waits
 * here for whichever worker frees up first, which then costs a round trip, small beside that wait.
 */
const TASKS_PER_WORKER = 4;
const PREFETCH_AHEAD_MS = 100;

/**
 * Input buffers handed back by the workers, kept to copy later inputs into: their pages are mapped,
 * where a new buffer faults its pages in one by one on the event loop (a 20 MB input: ~60 ms on a
 * VM with costly page faults, against ~2 ms into a mapped one). At most two per worker and
 * SPARE_INPUTS_MAX_BYTES in all (what the process keeps beyond its inputs in flight), the oldest
 * dropped first.
 */
const SPARE_INPUTS_PER_WORKER = 2;
const SPARE_INPUTS_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Output buffers the consumer recycled, kept until the next task goes to a worker (which moves
 * them there and writes later outputs into them): a tensor that arrives from a worker is external
 * memory to this isolate, and V8 starts a major GC for every 64 MB of it (an image stream at
 * 2,000/s: one every ~55 ms, a tenth of the event loop and most of the pool's lost scaling); a
 * buffer that goes back leaves that count when it leaves. At most two per worker and
 * SPARE_OUTPUTS_MAX_BYTES, the oldest dropped first.
 */
const SPARE_OUTPUTS_PER_WORKER = 2;
const SPARE_OUTPUTS_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The compiled worker next to this module; from source (vitest runs `src/`), the same tree's build,
 * so tests that preprocess for real need `npm run build` first, as `npm test` does.
 */
export function defaultPreprocessWorkerFile(): string {
  const here = join(__dirname, 'preprocess.worker.js');
  if (existsSync(here)) return here;
  const built = join(__dirname, '..', '..', 'dist', 'pool', 'preprocess.worker.js');
  if (existsSync(built)) return built;
  throw new Error(`the preprocess worker is not built (looked for ${here} and ${built}); run npm run build`);
}

/**
 * The worker's Node flags: the parent's, inherited as Node inherits them (it leaves out what a
 * worker may not take, such as --max-old-space-size or --trace-gc), unless the parent has
 * `--conditions`: the worker runs compiled code, and a test runner's source condition
 * (`@imagebind-llm/source`) would point its imports at `.ts` files. Then the rest is passed
 * explicitly, which Node validates; `spawn` falls back to no flags if it refuses them.
 */
function workerExecArgv(): string[] | undefined {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--conditions' || arg === '-C') i++;
    else if (!arg.startsWith('--conditions=') && !arg.startsWith('-C=')) out.push(arg);
  }
  return out.length === argv.length ? undefined : out;
}

/** Inputs that may wait for a worker by default (the services' PREPROCESS_MAX_QUEUE default). */
export const DEFAULT_PREPROCESS_MAX_QUEUE = 64;

/** First guess of a task's duration for the retry hint, before any has finished. */
const INITIAL_TASK_MS = 200;

/**
 * CPU preprocessing (MODEL_SPEC §2: decode, resize, fbank, FPS, kNN) on worker threads, so the
 * serving event loop never runs it (issue #15). Workers start on demand up to `workers`; a task
 * waits in a bounded FIFO when all are busy, and beyond `maxQueue` is refused at once with
 * OVERLOADED (gRPC RESOURCE_EXHAUSTED) and a retry hint from the measured task time. Input bytes
 * are copied once into a buffer of their own when a worker takes the task, and moved to it; output
 * tensors move back, and a consumer done with one hands it back with `recycle` for a worker to
 * write a later output into. The caller keeps its buffers and must not change them until the task
 * settles.
 */
export class PreprocessPool implements PreprocessRunner {
  readonly workers: number;
  readonly maxQueue: number;
  private readonly limits: PreprocessLimits;
  private readonly workerFile: string;
  private readonly answerHoldMs: number;
  /** Tasks the workers answered, and the messages those answers came in. */
  private answers = 0;
  private answerMessages = 0;
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private averageMs = INITIAL_TASK_MS;
  /** Per kind of task, its measured run time per input byte (a moving average), for expectedMs. */
  private readonly msPerByte = new Map<PreprocessTask['kind'], number>();
  private closed = false;
  /** The flags workers start with (workerExecArgv; [] once Node refused those). */
  private execArgv = workerExecArgv();
  /** Input buffers the workers handed back, oldest first (SPARE_INPUTS_PER_WORKER). */
  private readonly spareInputs: ArrayBuffer[] = [];
  /** Output buffers the consumer recycled, oldest first, for the next task's worker. */
  private readonly spareOutputs: ArrayBuffer[] = [];

  constructor(options: PreprocessPoolOptions = {}) {
    this.workers = options.workers ?? availableParallelism();
    this.maxQueue = options.maxQueue ?? DEFAULT_PREPROCESS_MAX_QUEUE;
    if (!Number.isSafeInteger(this.workers) || this.workers < 1) {
      throw new RangeError(`a preprocess pool needs at least one worker (got ${this.workers})`);
    }
    if (!Number.isSafeInteger(this.maxQueue) || this.maxQueue < 0) {
      throw new RangeError(`maxQueue must be a non-negative integer (got ${this.maxQueue})`);
    }
    this.limits = options.limits ?? {};
    this.workerFile = options.workerFile ?? defaultPreprocessWorkerFile();
    this.answerHoldMs = options.answerHoldMs ?? DEFAULT_ANSWER_HOLD_MS;
    if (!(this.answerHoldMs >= 0)) {
      throw new RangeError(`answerHoldMs must be a non-negative number (got ${this.answerHoldMs})`);
    }
  }

  /** Tasks sent ahead to a busy worker for a caller still waiting: they count as waiting. */
  private sentAhead(): number {
    return this.slots.reduce((n, s) => n + s.inFlight.filter((f, i) => i > 0 && !f.dropped).length, 0);
  }

  /**
   * Tasks waiting for a worker (in the queue or sent ahead), tasks running, spare input buffers
   * kept, recycled output buffers not yet sent to a worker; tasks the workers answered since the
   * start and the messages those answers came in.
   */
  stats(): {
    queued: number;
    running: number;
    workers: number;
    spareInputs: number;
    spareOutputs: number;
    answers: number;
    answerMessages: number;
  } {
    return {
      answers: this.answers,
      answerMessages: this.answerMessages,
      queued: this.queue.length + this.sentAhead(),
      running: this.slots.filter((s) => s.inFlight.length > 0).length,
      workers: this.slots.length,
      spareInputs: this.spareInputs.length,
      spareOutputs: this.spareOutputs.length,
    };
  }

  recycle(tensor: Float32Array): boolean {
    if (this.closed || !ownsItsBuffer(tensor) || tensor.byteLength > SPARE_OUTPUTS_MAX_BYTES) return false;
    const buffer = tensor.buffer as ArrayBuffer;
    if (this.spareOutputs.includes(buffer)) return true;
    this.spareOutputs.push(buffer);
    trimOldest(this.spareOutputs, SPARE_OUTPUTS_PER_WORKER * this.workers, SPARE_OUTPUTS_MAX_BYTES);
    return this.spareOutputs.includes(buffer);
  }

  async run(
    task: PreprocessTask,
    options: { readonly signal?: AbortSignal } = {},
  ): Promise<PreprocessOutput> {
    if (this.closed)
      throw DomainError.unavailable('preprocessing is shutting down; retry on another replica');
    options.signal?.throwIfAborted();
    const idle = this.slots.find((s) => s.inFlight.length === 0);
    const waiting = this.queue.length + this.sentAhead();
    if (idle === undefined && this.slots.length >= this.workers && waiting >= this.maxQueue) {
      const retryAfterMs = Math.max(
        50,
        Math.ceil((this.averageMs * (waiting + this.workers)) / this.workers),
      );
      throw DomainError.overloaded(
        `preprocessing: ${this.workers} workers are busy and ${waiting} inputs wait ` +
          `(PREPROCESS_MAX_QUEUE); retry in about ${retryAfterMs} ms`,
        retryAfterMs,
      );
    }
    return new Promise<PreprocessOutput>((resolve, reject) => {
      const signal = options.signal;
      const pending: Pending = {
        task,
        resolve,
        reject,
        signal,
        onAbort: () => {
          const reason: unknown = signal?.reason;
          const cancelled = (): void =>
            reject(
              reason instanceof Error ? reason : new Error('the request was cancelled', { cause: reason }),
            );
          // A waiting task is dropped; a running one finishes and its result is discarded.
          const at = this.queue.indexOf(pending);
          if (at >= 0) {
            this.queue.splice(at, 1);
            cancelled();
            return;
          }
          // Sent ahead to a busy worker: answered now; the worker still runs it (a small input).
          for (const slot of this.slots) {
            const ahead = slot.inFlight.findIndex((f, i) => i > 0 && f.pending === pending);
            if (ahead > 0) {
              slot.inFlight[ahead]!.dropped = true;
              cancelled();
              return;
            }
          }
        },
      };
      signal?.addEventListener('abort', pending.onAbort, { once: true });
      this.queue.push(pending);
      this.dispatch();
    });
  }

  /** Stops the workers; waiting and running tasks fail with UNAVAILABLE. */
  async close(): Promise<void> {
    this.closed = true;
    this.spareInputs.length = 0;
    this.spareOutputs.length = 0;
    const gone = DomainError.unavailable('preprocessing is shutting down; retry on another replica');
    for (const pending of this.queue.splice(0)) this.settle(pending, () => pending.reject(gone));
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      for (const { pending } of slot.inFlight.splice(0)) this.settle(pending, () => pending.reject(gone));
    }
    await Promise.allSettled(slots.map(async (s) => s.worker.terminate()));
  }

  private dispatch(): void {
    // Each worker's tasks of this round go in one message.
    const batches = new Map<Slot, { id: number; task: PreprocessTask }[]>();
    while (this.queue.length > 0) {
      const pending = this.queue[0]!;
      let slot = this.slots.find((s) => s.inFlight.length === 0);
      if (slot === undefined && this.slots.length < this.workers) {
        try {
          slot = this.spawn();
        } catch (error) {
          // No worker could start (threads or memory exhausted). With none running nothing would
          // ever take this task, so it fails now; with some, it waits for them.
          if (this.slots.length === 0) {
            this.queue.shift();
            const why = error instanceof Error ? error.message : String(error);
            this.settle(pending, () =>
              pending.reject(
                DomainError.unavailable(`preprocessing: no worker thread could start (${why}); retry later`),
              ),
            );
            continue;
          }
        }
      }
      if (slot === undefined) {
        let leastAhead = PREFETCH_AHEAD_MS;
        for (const s of this.slots) {
          const ahead = s.inFlight.reduce((sum, f) => sum + f.expectedMs, 0);
          if (s.inFlight.length < TASKS_PER_WORKER && ahead <= leastAhead) {
            slot = s;
            leastAhead = ahead;
          }
        }
      }
      if (slot === undefined) break;
      this.queue.shift();
      const id = this.nextId++;
      slot.inFlight.push({ id, pending, dropped: false, expectedMs: this.expectedMs(pending.task) });
      slot.worker.ref();
      // The copy the worker takes over (moving the caller's own buffers would empty them), made
      // here rather than in run(): a burst of requests then costs the event loop the copies of
      // what the workers take now (one each, and the quick ones sent ahead), not every queued
      // input's at once (20 × 5 MB took ~80 ms).
      const task = detachableTask(pending.task, (bytes) => this.takeSpareInput(bytes));
      const batch = batches.get(slot);
      if (batch === undefined) batches.set(slot, [{ id, task }]);
      else batch.push({ id, task });
    }
    for (const [slot, tasks] of batches) {
      // Recycled outputs go with them (at most a worker's share, so a burst of them spreads over
      // the workers): the worker writes its next tensors of their size into them.
      const spares = this.spareOutputs.splice(0, SPARE_OUTPUTS_PER_WORKER).filter((b) => b.byteLength > 0);
      const request: PoolRequest = spares.length === 0 ? { tasks } : { tasks, spares };
      slot.worker.postMessage(request, [...tasks.flatMap((t) => taskTransferables(t.task)), ...spares]);
    }
  }

  private spawn(): Slot {
    const start = (): Worker =>
      new Worker(this.workerFile, {
        workerData: { limits: this.limits, answerHoldMs: this.answerHoldMs } satisfies PreprocessWorkerData,
        ...(this.execArgv === undefined ? {} : { execArgv: this.execArgv }),
      });
    let worker: Worker;
    try {
      worker = start();
    } catch (error) {
      // Node refuses per-process flags in an explicit list (--max-old-space-size, --trace-gc, …):
      // the workers start without the parent's flags instead.
      if (
        (error as { code?: unknown }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV' ||
        this.execArgv?.length === 0
      )
        throw error;
      this.execArgv = [];
      worker = start();
    }
    const slot: Slot = { worker, inFlight: [] };
    worker.on('message', (message: PoolAnswer) => {
      this.answerMessages++;
      this.answers += message.answers.length;
      for (const answer of message.answers) {
        if (answer.input !== undefined) this.keepSpareInput(answer.input);
        // The worker answers in the order it was sent tasks.
        const current = slot.inFlight[0];
        if (current === undefined || current.id !== answer.id) continue;
        slot.inFlight.shift();
        const { pending } = current;
        this.measured(pending.task, answer.ms);
        if (current.dropped) continue;
        this.settle(pending, () =>
          answer.error === undefined
            ? pending.resolve(answer.output!)
            : pending.reject(deserializeError(answer.error)),
        );
      }
      if (slot.inFlight.length === 0) worker.unref();
      this.dispatch();
    });
    const lost = (why: string): void => {
      const at = this.slots.indexOf(slot);
      if (at < 0) return;
      this.slots.splice(at, 1);
      for (const { pending } of slot.inFlight.splice(0)) {
        this.settle(pending, () =>
          pending.reject(
            new DomainError(ErrorCode.Internal, `preprocessing failed: the worker thread ${why}`),
          ),
        );
      }
      if (!this.closed) this.dispatch();
    };
    worker.on('error', (error) => lost(`crashed (${error.message})`));
    worker.on('exit', (code) => lost(`exited with code ${code}`));
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  /**
   * A task's expected run time: its input's size at its kind's measured rate; a kind not measured
   * yet counts as long (it waits for an idle worker until one of its kind has run).
   */
  private expectedMs(task: PreprocessTask): number {
    const rate = this.msPerByte.get(task.kind);
    return rate === undefined ? INITIAL_TASK_MS : rate * Math.max(1, taskBytes(task));
  }

  /** A task's run time in its worker, into the averages (the retry hint's and expectedMs's). */
  private measured(task: PreprocessTask, ms: number): void {
    if (!(ms >= 0)) return;
    this.averageMs = 0.8 * this.averageMs + 0.2 * ms;
    const rate = ms / Math.max(1, taskBytes(task));
    const before = this.msPerByte.get(task.kind);
    this.msPerByte.set(task.kind, before === undefined ? rate : 0.8 * before + 0.2 * rate);
  }

  /** The smallest spare input buffer that holds `bytes`, taken out of the list. */
  private takeSpareInput(bytes: number): ArrayBuffer | undefined {
    let best = -1;
    for (let i = 0; i < this.spareInputs.length; i++) {
      const size = this.spareInputs[i]!.byteLength;
      if (size >= bytes && (best < 0 || size < this.spareInputs[best]!.byteLength)) best = i;
    }
    return best < 0 ? undefined : this.spareInputs.splice(best, 1)[0];
  }

  private keepSpareInput(buffer: ArrayBuffer): void {
    if (this.closed || buffer.byteLength === 0 || buffer.byteLength > SPARE_INPUTS_MAX_BYTES) return;
    this.spareInputs.push(buffer);
    trimOldest(this.spareInputs, SPARE_INPUTS_PER_WORKER * this.workers, SPARE_INPUTS_MAX_BYTES);
  }

  private settle(pending: Pending, finish: () => void): void {
    pending.signal?.removeEventListener('abort', pending.onAbort);
    finish();
  }
}
