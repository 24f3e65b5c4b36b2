import { DomainError } from '@imagebind-llm/errors';

/** The one BullMQ queue for batch jobs; every job kind shares it (the kind lives in the record). */
export const BATCH_QUEUE = 'ibllm-batch';

/** What a batch job does with each item (mirrors `BatchJobKind` in gateway/v1/batch.proto). */
export const BATCH_JOB_KINDS = ['generate', 'embed', 'index-build', 'index-import'] as const;
export type BatchJobKind = (typeof BATCH_JOB_KINDS)[number];

export function isBatchJobKind(value: unknown): value is BatchJobKind {
  return typeof value === 'string' && (BATCH_JOB_KINDS as readonly string[]).includes(value);
}

/**
 * Items per BullMQ job, by kind. A queue job costs a few Redis scripts and timers whatever it
 * carries, which is most of an item's cost when the item is cheap (an embedding takes ~2 ms), so
 * cheap kinds go 16 to a job. A generation takes seconds: one per job keeps the work spread over
 * every worker, and its result is stored the moment it is done.
 */
export const DEFAULT_CHUNK_ITEMS: Readonly<Record<BatchJobKind, number>> = {
  generate: 1,
  embed: 16,
  'index-build': 16,
  'index-import': 1,
};

/** Typed payloads of the BullMQ jobs on {@link BATCH_QUEUE}, by job name. */
export interface BatchJobPayloads {
  /**
   * A run of a batch job's items, `start .. start+count-1`; the items themselves are read from the
   * store, not copied into Redis twice. Jobs enqueued before chunking carry `index` instead (one item).
   */
  item: { readonly jobId: string; readonly start?: number; readonly count?: number; readonly index?: number };
  /** The flow parent, run once every item job has finished; `chunk` is the items per item job. */
  finalize: { readonly jobId: string; readonly chunk?: number };
}

/** The item range of an `item` job's payload (`{ index }` from before chunking is one item). */
export function itemRange(data: BatchJobPayloads['item']): { start: number; count: number } {
  const start = data.start ?? data.index;
  const count = data.count ?? 1;
  if (
    start === undefined ||
    !Number.isSafeInteger(start) ||
    start < 0 ||
    !Number.isSafeInteger(count) ||
    count < 1
  ) {
    throw new Error(`batch item job for ${data.jobId} has no valid item range: ${JSON.stringify(data)}`);
  }
  return { start, count };
}

export type BatchJobName = keyof BatchJobPayloads;

export const BATCH_JOB_NAMES: readonly BatchJobName[] = ['item', 'finalize'];

/**
 * Batch job ids go into BullMQ job ids and Redis keys. BullMQ rejects custom ids that contain `:`
 * (its key separator) or that parse as integers (they would clash with its counter ids); allowing
 * only this alphabet rules both out once the `.index` / `.parent` suffix is added.
 */
const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;

export function assertValidJobId(jobId: string): void {
  if (!JOB_ID_PATTERN.test(jobId)) {
    throw DomainError.invalidInput(
      `Batch job id "${jobId}" must be 1..128 characters of A-Z, a-z, 0-9, "_" or "-".`,
      'jobId',
    );
  }
}

/**
 * Deterministic BullMQ id of the item job that starts at item `start`: re-enqueueing the same job
 * adds nothing twice. (With one item per job this is the id jobs had before chunking.)
 */
export function itemJobId(jobId: string, start: number): string {
  return `${jobId}.${start}`;
}

/** Deterministic BullMQ id of the flow parent. */
export function parentJobId(jobId: string): string {
  return `${jobId}.parent`;
}

/**
 * Startup check that every job name has exactly one handler: a name without one would sit in the
 * queue forever, a duplicate means two modules think they own the name, and a handler without a
 * name is dead code or a typo. Handlers come as a record or as `[name, handler]` pairs (the latter
 * can express duplicates, e.g. when handlers are collected from several modules).
 */
export function assertHandlersComplete(
  handlers: Readonly<Record<string, unknown>> | readonly (readonly [string, unknown])[],
  names: readonly string[] = BATCH_JOB_NAMES,
): void {
  const entries = Array.isArray(handlers)
    ? (handlers as readonly (readonly [string, unknown])[])
    : Object.entries(handlers);
  const counts = new Map<string, number>();
  for (const [name, handler] of entries) {
    if (handler !== undefined) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const expected = new Set(names);
  const missing = [...expected].filter((name) => !counts.has(name));
  const extra = [...counts.keys()].filter((name) => !expected.has(name));
  const duplicated = [...counts.entries()].filter(([, n]) => n > 1).map(([name]) => name);
  const parts = [
    missing.length > 0 ? `no handler for ${missing.join(', ')}` : '',
    extra.length > 0 ? `handlers for unknown job names ${extra.join(', ')}` : '',
    duplicated.length > 0 ? `more than one handler for ${duplicated.join(', ')}` : '',
  ].filter((part) => part !== '');
  if (parts.length > 0) {
    throw new Error(`Queue ${BATCH_QUEUE} handlers are incomplete: ${parts.join('; ')}.`);
  }
}
