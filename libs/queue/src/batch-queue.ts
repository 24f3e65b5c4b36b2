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
 * insert. The parent therefore comes with the first chunk in one flow, and the remaining children
 * join it with `addBulk({ parent })`, one bounded transaction per chunk.
 */
export const ENQUEUE_CHUNK = 500;

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

  /** Adds the flow for job `jobId` with items `0..total-1`. Safe to call again for the same job. */
  async enqueue(jobId: string, total: number, options: EnqueueOptions): Promise<void> {
    assertValidJobId(jobId);
    if (!Number.isInteger(total) || total < 1)
      throw new Error(`total must be a positive integer, got ${total}.`);
    if (!Number.isInteger(options.attempts) || options.attempts < 1) {
      throw new Error(`attempts must be a positive integer, got ${options.attempts}.`);
    }
    const itemOptions = (index: number): JobsOptions => ({
      jobId: itemJobId(jobId, index),
      attempts: options.attempts,
      backoff: { type: 'exponential', delay: options.backoffMs },
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
      // An item that fails in BullMQ's eyes (e.g. stalled too often) must not block the parent.
      ignoreDependencyOnFailure: true,
    });
    const item = (index: number): { name: 'item'; data: BatchJobPayloads['item'] } => ({
      name: 'item',
      data: { jobId, index },
    });

    const first = Math.min(total, ENQUEUE_CHUNK);
    await this.flows.add({
      name: 'finalize',
      queueName: BATCH_QUEUE,
      data: { jobId } satisfies BatchJobPayloads['finalize'],
      // Removed by age only: later chunks attach to it by id, and a parent removed by a count
      // policy while they are still being added would make that attach fail.
      opts: {
        jobId: parentJobId(jobId),
        removeOnComplete: { age: KEEP_COMPLETED.age },
        removeOnFail: KEEP_FAILED,
      },
      ...(this.prefix === undefined ? {} : { prefix: this.prefix }),
      children: Array.from({ length: first }, (_, index) => ({
        ...item(index),
        queueName: BATCH_QUEUE,
        ...(this.prefix === undefined ? {} : { prefix: this.prefix }),
        opts: itemOptions(index),
      })),
    });
    const parent = { id: parentJobId(jobId), queue: this.queue.qualifiedName };
    for (let start = first; start < total; start += ENQUEUE_CHUNK) {
      const end = Math.min(total, start + ENQUEUE_CHUNK);
      await this.queue.addBulk(
        Array.from({ length: end - start }, (_, i) => ({
          ...item(start + i),
          opts: { ...itemOptions(start + i), parent },
        })),
      );
    }
  }

  /**
   * Removes the job's items that are still waiting or delayed (retry backoff) and returns their
   * indices, so the caller can record them as cancelled. Items being processed are locked and
   * stay; they notice the cancel through the store and stop.
   */
  async cancel(jobId: string, total: number): Promise<number[]> {
    assertValidJobId(jobId);
    const removed: number[] = [];
    // Newest items first: BullMQ pushes waiting jobs at the head of its wait list and finds one to
    // remove (or its state) by scanning from the head, so going oldest-first would scan nearly the
    // whole list for every item (100k queued items: 180 s, quadratic); newest-first finds each
    // one at the front.
    for (let end = total; end > 0; end -= CANCEL_CONCURRENCY) {
      const start = Math.max(0, end - CANCEL_CONCURRENCY);
      const indices = Array.from({ length: end - start }, (_, i) => end - 1 - i);
      const outcomes = await Promise.all(
        indices.map(async (index) => {
          const job = await this.queue.getJob(itemJobId(jobId, index));
          if (job === undefined) return false;
          const state = await job.getState();
          if (state !== 'waiting' && state !== 'delayed' && state !== 'prioritized') return false;
          return (await this.queue.remove(itemJobId(jobId, index))) === 1;
        }),
      );
      outcomes.forEach((wasRemoved, i) => {
        if (wasRemoved) removed.push(indices[i] as number);
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
