import { FlowProducer, Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BatchJobStore, JobRecord } from './batch-job-store';
import { createRedis } from './connection';
import { BATCH_QUEUE, assertValidJobId, itemJobId, parentJobId, type BatchJobPayloads } from './job-registry';

export interface BatchQueueOptions {
  /** `redis://` URL; a producer connection is made from it. Either this or `connection`. */
  readonly redisUrl?: string;
  /** An existing connection (not closed by `close()`). */
  readonly connection?: Redis;
  /** BullMQ key prefix; default `bull`. Tests use a unique one per file. */
  readonly prefix?: string;
}

export interface EnqueueOptions {
  /** Tries per item, counting the first; transient errors are retried up to this many times. */
  readonly attempts: number;
  /** First retry delay; doubles on each further retry (BullMQ exponential backoff). */
  readonly backoffMs: number;
  /**
   * Items per queue job (default 1): a worker claims, runs and records them together, and a
   * retry runs again only those without an outcome. See `DEFAULT_CHUNK_ITEMS`.
   */
  readonly chunk?: number;
}

/** Waiting-type counts of the batch queue: the KEDA scaling signal (ARCHITECTURE §7). */
export interface BatchQueueCounts {
  readonly waiting: number;
  readonly prioritized: number;
  readonly active: number;
  readonly delayed: number;
  /** waiting + prioritized + active + delayed: work that needs (or holds) a worker. */
  readonly backlog: number;
}

/**
 * Children added per call. A flow is one MULTI transaction, and Redis runs a transaction without
 * serving anyone else, so a 10,000-child flow would stall every client of that Redis for the whole
 * insert. The parent therefore comes with the first children in one flow, and the remaining
 * children join it with `addBulk({ parent })`, one bounded transaction per call.
 */
export const ENQUEUE_BATCH = 500;

/** Completed item jobs kept for inspection; results live in the store, so this is only for debugging. */
const KEEP_COMPLETED = { count: 1_000, age: 24 * 3600 };
/** Failed jobs (e.g. stalled too often) are kept longer: someone should look at them. */
const KEEP_FAILED = { count: 10_000, age: 7 * 24 * 3600 };
/** Removals in flight at once while cancelling. */
const CANCEL_CONCURRENCY = 100;

/**
 * Producer side of the batch queue: one BullMQ flow per batch job, a `finalize` parent and one
 * `item` child per item, all with deterministic ids, so enqueueing the same job twice (a retried
 * submit) adds nothing twice.
 */
export class BatchQueue {
  private readonly connection: Redis;
  private readonly ownsConnection: boolean;
  private readonly queue: Queue<BatchJobPayloads[keyof BatchJobPayloads], unknown, keyof BatchJobPayloads>;
  private readonly flows: FlowProducer;
  private readonly prefix: string | undefined;

  constructor(options: BatchQueueOptions) {
    if (options.connection !== undefined) {
      this.connection = options.connection;
      this.ownsConnection = false;
    } else if (options.redisUrl !== undefined) {
      this.connection = createRedis(options.redisUrl, 'producer');
      this.ownsConnection = true;
    } else {
      throw new Error('BatchQueue needs redisUrl or connection.');
    }
    this.prefix = options.prefix;
    const common = {
      connection: this.connection,
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    };
    this.queue = new Queue(BATCH_QUEUE, common);
    this.flows = new FlowProducer(common);
  }

  /**
   * Adds the flow for job `jobId` with items `0..total-1`, `options.chunk` items per queue job.
   * Safe to call again for the same job.
   */
  async enqueue(jobId: string, total: number, options: EnqueueOptions): Promise<void> {
    assertValidJobId(jobId);
    if (!Number.isInteger(total) || total < 1)
      throw new Error(`total must be a positive integer, got ${total}.`);
    if (!Number.isInteger(options.attempts) || options.attempts < 1) {
      throw new Error(`attempts must be a positive integer, got ${options.attempts}.`);
    }
    const chunk = options.chunk ?? 1;
    if (!Number.isInteger(chunk) || chunk < 1)
      throw new Error(`chunk must be a positive integer, got ${chunk}.`);
    const prefix = this.prefix === undefined ? {} : { prefix: this.prefix };
    const child = (n: number): { name: 'item'; data: BatchJobPayloads['item']; opts: JobsOptions } => {
      const start = n * chunk;
      return {
        name: 'item',
        data: { jobId, start, count: Math.min(chunk, total - start) },
        opts: {
          jobId: itemJobId(jobId, start),
          attempts: options.attempts,
          backoff: { type: 'exponential', delay: options.backoffMs },
          removeOnComplete: KEEP_COMPLETED,
          removeOnFail: KEEP_FAILED,
          // An item job that fails in BullMQ's eyes (e.g. stalled too often) must not block the parent.
          ignoreDependencyOnFailure: true,
        },
      };
    };
    const jobs = Math.ceil(total / chunk);
    const first = Math.min(jobs, ENQUEUE_BATCH);
    await this.flows.add({
      name: 'finalize',
      queueName: BATCH_QUEUE,
      data: { jobId, chunk } satisfies BatchJobPayloads['finalize'],
      // Removed by age only: later children attach to it by id, and a parent removed by a count
      // policy while they are still being added would make that attach fail.
      opts: {
        jobId: parentJobId(jobId),
        removeOnComplete: { age: KEEP_COMPLETED.age },
        removeOnFail: KEEP_FAILED,
      },
      ...prefix,
      children: Array.from({ length: first }, (_, n) => ({ ...child(n), queueName: BATCH_QUEUE, ...prefix })),
    });
    const parent = { id: parentJobId(jobId), queue: this.queue.qualifiedName };
    for (let from = first; from < jobs; from += ENQUEUE_BATCH) {
      const to = Math.min(jobs, from + ENQUEUE_BATCH);
      await this.queue.addBulk(
        Array.from({ length: to - from }, (_, i) => {
          const { name, data, opts } = child(from + i);
          return { name, data, opts: { ...opts, parent } };
        }),
      );
    }
  }

  /**
   * Removes the job's item jobs that are still waiting or delayed (retry backoff) and returns the
   * indices of their items, so the caller can record them as cancelled. Item jobs being processed
   * are locked and stay; they notice the cancel through the store and stop.
   */
  async cancel(jobId: string, total: number): Promise<number[]> {
    assertValidJobId(jobId);
    // The items per job were written into the flow's parent (absent: one, as before chunking).
    const parent = await this.queue.getJob(parentJobId(jobId));
    const data = parent?.data;
    const chunk = data !== undefined && 'chunk' in data ? (data.chunk ?? 1) : 1;
    const starts: number[] = [];
    for (let start = 0; start < total; start += chunk) starts.push(start);
    const removed: number[] = [];
    // Newest jobs first: BullMQ pushes waiting jobs at the head of its wait list and finds one to
    // remove (or its state) by scanning from the head, so going oldest-first would scan nearly the
    // whole list for every job (100k queued: 180 s, quadratic); newest-first finds each at the front.
    starts.reverse();
    for (let at = 0; at < starts.length; at += CANCEL_CONCURRENCY) {
      const batch = starts.slice(at, at + CANCEL_CONCURRENCY);
      const outcomes = await Promise.all(
        batch.map(async (start) => {
          const job = await this.queue.getJob(itemJobId(jobId, start));
          if (job === undefined) return false;
          const state = await job.getState();
          if (state !== 'waiting' && state !== 'delayed' && state !== 'prioritized') return false;
          return (await this.queue.remove(itemJobId(jobId, start))) === 1;
        }),
      );
      outcomes.forEach((wasRemoved, i) => {
        if (!wasRemoved) return;
        const start = batch[i]!;
        for (let index = start; index < Math.min(total, start + chunk); index++) removed.push(index);
      });
    }
    return removed;
  }

  /** Queue depth for autoscaling. */
  async counts(): Promise<BatchQueueCounts> {
    const counts = await this.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed');
    const waiting = counts['waiting'] ?? 0;
    const prioritized = counts['prioritized'] ?? 0;
    const active = counts['active'] ?? 0;
    const delayed = counts['delayed'] ?? 0;
    return { waiting, prioritized, active, delayed, backlog: waiting + prioritized + active + delayed };
  }

  async close(): Promise<void> {
    await this.flows.close();
    await this.queue.close();
    if (this.ownsConnection) await this.connection.quit();
  }
}

/**
 * Cancels a tenant's batch job: marks it CANCELLING in the store (NOT_FOUND for another tenant's
 * job, FAILED_PRECONDITION when final), removes its queued items and records them as cancelled.
 * Items already running record their own outcome when they stop.
 */
export async function cancelBatchJob(
  store: BatchJobStore,
  queue: BatchQueue,
  jobId: string,
  tenant: string,
): Promise<JobRecord> {
  const record = await store.requestCancel(jobId, tenant);
  const removed = await queue.cancel(jobId, record.total);
  await store.recordCancelled(jobId, removed);
  return store.get(jobId, tenant);
}
