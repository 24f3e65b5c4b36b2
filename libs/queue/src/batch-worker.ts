import { setMaxListeners } from 'node:events';
import { DomainError, isDomainError } from '@imagebind-llm/errors';
import { getTracer, type Logger, type TraceCarrier } from '@imagebind-llm/observability';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { isFinalState, type BatchJobStore, type ItemOutcome } from './batch-job-store';
import { createRedis } from './connection';
import {
  BATCH_QUEUE,
  BATCH_JOB_NAMES,
  assertHandlersComplete,
  itemRange,
  type BatchJobKind,
  type BatchJobName,
  type BatchJobPayloads,
} from './job-registry';

/** What `processItem` gets for one item. */
export interface ItemContext {
  readonly jobId: string;
  readonly index: number;
  readonly kind: BatchJobKind;
  /** The item payload as submitted (validated by the caller that created the job). */
  readonly item: unknown;
  /** The job's shared options as submitted. */
  readonly options: unknown;
  /** Aborted when the job is cancelled or the worker is force-closed: stop and throw. */
  readonly signal: AbortSignal;
  /** 1 on the first try; retries after transient errors count up. */
  readonly attempt: number;
  /** W3C trace context of the item's span: the calls the item makes join its trace. */
  readonly trace: TraceCarrier;
}

export interface BatchWorkerOptions {
  /** `redis://` URL for the worker's BullMQ connection. Either this or `connection`. */
  readonly redisUrl?: string;
  /** A worker-role connection (`maxRetriesPerRequest: null`); not closed by `close()`. */
  readonly connection?: Redis;
  /** BullMQ key prefix; must match the producer's. */
  readonly prefix?: string;
  readonly store: BatchJobStore;
  /** Items processed at once by this worker (across its queue jobs, which carry one or more items each). */
  readonly concurrency: number;
  /** Does the work for one item; its return value (JSON) becomes the item's result. */
  readonly processItem: (ctx: ItemContext) => Promise<unknown>;
  /** Whether an error is worth retrying (dependency down, overload); anything else is permanent. */
  readonly isTransient: (error: unknown) => boolean;
  /**
   * The code and message to record for an error that is not a DomainError (e.g. a gRPC client's
   * status error: RESOURCE_EXHAUSTED from the gateway). Undefined → recorded as INTERNAL with a
   * generic message (the details go to the log only).
   */
  readonly describeError?: (error: unknown) => { code: string; message: string } | undefined;
  readonly logger: Logger;
  /** How long an item's lock lasts without renewal; a dead worker's items are redelivered after it. Default 30 s. */
  readonly lockDurationMs?: number;
  /** How often this worker looks for stalled items (locks that expired). Default 30 s. */
  readonly stalledIntervalMs?: number;
  /** How many times an item may stall (its worker died) before BullMQ gives up on it. Default 3. */
  readonly maxStalledCount?: number;
  /** How often running items' jobs are checked for a cancel. Default 1 s. */
  readonly cancelCheckIntervalMs?: number;
}

export interface BatchWorker {
  /** Stops taking items, waits for the running ones to finish, then closes connections. */
  close(): Promise<void>;
}

type AnyBatchJob = Job<BatchJobPayloads[BatchJobName], unknown, BatchJobName>;

/** Message recorded for errors that are not DomainErrors: details go to the log, not to clients. */
const INTERNAL_ITEM_MESSAGE = 'Internal error while processing the item.';

/**
 * Starts a worker for the batch queue.
 *
 * Per item: skip it if it already has a result (a redelivery after a crash); record it cancelled
 * if its job is being cancelled; otherwise run `processItem`. Success is recorded as the result. A
 * permanent error (not transient, or transient on the last attempt) is recorded as a failed item
 * and the BullMQ job *completes*: the item's failure is the job's data, not the queue's, and a
 * completed child keeps the parent flow simple. Only transient errors with attempts left are
 * rethrown so BullMQ retries them with backoff. The store keeps the first outcome per item, so an
 * item run twice is still counted once.
 */
export async function startBatchWorker(options: BatchWorkerOptions): Promise<BatchWorker> {
  const { store, logger } = options;
  let connection: Redis;
  let ownsConnection: boolean;
  if (options.connection !== undefined) {
    connection = options.connection;
    ownsConnection = false;
  } else if (options.redisUrl !== undefined) {
    connection = createRedis(options.redisUrl, 'worker');
    ownsConnection = true;
  } else {
    throw new Error('startBatchWorker needs redisUrl or connection.');
  }

  /** Abort controllers of running items, by batch job id. */
  const running = new Map<string, Set<AbortController>>();

  const handlers: {
    [N in BatchJobName]: (job: Job<BatchJobPayloads[N]>, signal?: AbortSignal) => Promise<unknown>;
  } = {
    item: async (job, signal) => runChunk(job, signal),
    finalize: async (job) => finalize(job.data.jobId),
  };
  assertHandlersComplete(handlers, BATCH_JOB_NAMES);

  /** Items running at once across this worker's queue jobs: at most `concurrency`. */
  const slots = new Slots(options.concurrency);

  /**
   * One queue job: a run of the batch job's items. One round trip claims them (those already done
   * are skipped, e.g. after a crash or a retry), they run side by side within the worker's item
   * limit, and one round trip records their outcomes. Items that failed transiently with tries
   * left get no outcome; the queue job then throws so that BullMQ retries it after its backoff,
   * and the retry runs only them.
   */
  async function runChunk(job: Job<BatchJobPayloads['item']>, bullSignal?: AbortSignal): Promise<unknown> {
    const { jobId } = job.data;
    const { start, count } = itemRange(job.data);
    adaptPrefetch(count);
    const claim = await store.claimItems(jobId, start, count);
    if (claim.state === 'missing') {
      logger.warn(
        { jobId, start, count },
        'batch items belong to a job that no longer exists; dropping them',
      );
      return { skipped: 'job missing' };
    }
    const { record, pending } = claim;
    if (pending.length === 0) return { skipped: 'already recorded' };
    if (record.state === 'CANCELLING' || record.state === 'CANCELLED') {
      await store.recordCancelled(
        jobId,
        pending.map((p) => p.index),
      );
      return { cancelled: pending.length };
    }
    if (isFinalState(record.state)) return { skipped: `job is ${record.state}` };

    const controller = new AbortController();
    // Every item of the chunk (up to the whole chunk at once) listens on this one signal: no leak
    // warning at Node's default of 10 listeners.
    setMaxListeners(pending.length + 10, controller.signal);
    const onBullAbort = (): void => controller.abort(bullSignal?.reason);
    bullSignal?.addEventListener('abort', onBullAbort, { once: true });
    let controllers = running.get(jobId);
    if (controllers === undefined) {
      controllers = new Set();
      running.set(jobId, controllers);
    }
    controllers.add(controller);

    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    const outcomes: { index: number; outcome: ItemOutcome }[] = [];
    let retry: Error | undefined;
    let cancelled: Promise<boolean> | undefined;
    const runOne = async (index: number, item: unknown): Promise<void> => {
      await slots.take();
      // One trace per item attempt (a batch has no caller waiting on a connection to join).
      const span = getTracer().startSpan('batch.item', {
        kind: 'server',
        attributes: { 'batch.job_id': jobId, 'batch.item_index': index, 'batch.kind': record.kind, attempt },
      });
      try {
        if (item === undefined) throw DomainError.notFound(`Batch job ${jobId} has no item ${index}.`);
        if (controller.signal.aborted)
          throw new Error(`batch job ${jobId}: stopped before item ${index} ran`);
        const value = await options.processItem({
          jobId,
          index,
          kind: record.kind,
          item,
          options: record.options,
          signal: controller.signal,
          attempt,
          trace: span.carrier,
        });
        outcomes.push({ index, outcome: { ok: true, value: value ?? null } });
      } catch (error) {
        span.recordError(error);
        if (controller.signal.aborted) {
          // Cancelled: that is the outcome. Otherwise the worker is being stopped: no outcome, so
          // the queue job is retried (or redelivered) and the item runs again elsewhere.
          if (await (cancelled ??= store.isCancelled(jobId)))
            outcomes.push({ index, outcome: { cancelled: true } });
          else retry ??= asError(error);
          return;
        }
        if (options.isTransient(error) && attempt < maxAttempts) {
          logger.warn(
            { jobId, index, attempt, maxAttempts, err: error },
            'batch item failed transiently; retrying',
          );
          retry ??= asError(error);
          return;
        }
        const described = isDomainError(error)
          ? { code: error.code, message: error.message }
          : (options.describeError?.(error) ?? { code: 'INTERNAL', message: INTERNAL_ITEM_MESSAGE });
        const outcome = { ok: false as const, ...described, attempts: attempt };
        logger.warn(
          { jobId, index, attempt, code: outcome.code, err: error },
          'batch item failed permanently',
        );
        outcomes.push({ index, outcome });
      } finally {
        slots.give();
        span.end();
      }
    };
    try {
      await Promise.all(pending.map(({ index, item }) => runOne(index, item)));
    } finally {
      bullSignal?.removeEventListener('abort', onBullAbort);
      controllers.delete(controller);
      if (controllers.size === 0) running.delete(jobId);
    }
    outcomes.sort((x, y) => x.index - y.index);
    await store.recordResults(jobId, outcomes);
    if (retry !== undefined) throw retry;
    return { recorded: outcomes.length };
  }

  /**
   * BullMQ fetches up to its concurrency in queue jobs; with several items per job that many would
   * lock far more items than this worker can run, and leave other workers idle. It fetches just
   * enough jobs to keep `concurrency` items running, plus one, for the size of the jobs it sees.
   */
  function adaptPrefetch(itemsPerJob: number): void {
    const jobs = Math.min(options.concurrency, Math.ceil(options.concurrency / itemsPerJob) + 1);
    if (worker.concurrency !== jobs) worker.concurrency = jobs;
  }

  /**
   * Runs once every item job has finished or been removed. The store already holds the outcome
   * and state; a job still CANCELLING here had items that never ran, and they are recorded as
   * cancelled now so the job reaches CANCELLED.
   */
  async function finalize(jobId: string): Promise<unknown> {
    const record = await store.find(jobId);
    if (record === undefined) return { skipped: 'job missing' };
    if (record.state === 'CANCELLING')
      await store.recordCancelled(jobId, await store.unrecordedIndices(jobId));
    const final = await store.find(jobId);
    logger.info(
      {
        jobId,
        state: final?.state,
        succeeded: final?.succeeded,
        failed: final?.failed,
        cancelled: final?.cancelled,
      },
      'batch job finalized',
    );
    return { state: final?.state };
  }

  const worker = new Worker<BatchJobPayloads[BatchJobName], unknown, BatchJobName>(
    BATCH_QUEUE,
    async (job: AnyBatchJob, _token?: string, signal?: AbortSignal) => {
      switch (job.name) {
        case 'item':
          return handlers.item(job as Job<BatchJobPayloads['item']>, signal);
        case 'finalize':
          return handlers.finalize(job as Job<BatchJobPayloads['finalize']>, signal);
      }
    },
    {
      connection,
      concurrency: options.concurrency,
      lockDuration: options.lockDurationMs ?? 30_000,
      stalledInterval: options.stalledIntervalMs ?? 30_000,
      maxStalledCount: options.maxStalledCount ?? 3,
      autorun: true,
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    },
  );

  worker.on('error', (error) => logger.error({ err: error }, 'batch worker error'));
  // An item that BullMQ itself gives up on (stalled too often, or the store was unreachable on
  // its last attempt) has no outcome yet; record one so its job can still finish.
  worker.on('failed', (job, error) => {
    if (job === undefined || job.name !== 'item') return;
    void recordGivenUp(job as Job<BatchJobPayloads['item']>, error);
  });

  async function recordGivenUp(job: Job<BatchJobPayloads['item']>, error: Error): Promise<void> {
    try {
      if ((await job.getState()) !== 'failed') return;
      const { start, count } = itemRange(job.data);
      const outcome = { ok: false as const, code: 'INTERNAL', message: INTERNAL_ITEM_MESSAGE };
      const recorded = await store.recordResults(
        job.data.jobId,
        Array.from({ length: count }, (_, i) => ({ index: start + i, outcome })),
      );
      if (recorded > 0)
        logger.error({ jobId: job.data.jobId, start, count, recorded, err: error }, 'batch items given up');
    } catch (recordError) {
      logger.error({ jobId: job.data.jobId, err: recordError }, 'could not record given-up batch items');
    }
  }

  // Running items learn about a cancel by polling the store, one read per job with items here.
  const cancelTimer = setInterval(() => {
    void checkCancels();
  }, options.cancelCheckIntervalMs ?? 1_000);
  cancelTimer.unref();

  async function checkCancels(): Promise<void> {
    for (const [jobId, controllers] of running) {
      try {
        if (await store.isCancelled(jobId)) {
          for (const controller of controllers)
            controller.abort(new Error(`batch job ${jobId} was cancelled`));
        }
      } catch (error) {
        logger.warn({ jobId, err: error }, 'could not check whether a batch job was cancelled');
      }
    }
  }

  await worker.waitUntilReady();
  let closing: Promise<void> | undefined;
  return {
    close: async () => {
      closing ??= (async () => {
        await worker.close();
        clearInterval(cancelTimer);
        if (ownsConnection) await connection.quit();
      })();
      return closing;
    },
  };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A counting semaphore: `take` waits while `limit` holders are in. */
class Slots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async take(): Promise<void> {
    if (this.used < this.limit) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot to the next waiter, if any (the count stays), or frees it. */
  give(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.used--;
  }
}
