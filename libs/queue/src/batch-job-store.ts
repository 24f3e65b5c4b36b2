import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { Redis } from 'ioredis';
import { assertValidJobId, isBatchJobKind, type BatchJobKind } from './job-registry';

/** Lifecycle of a batch job (mirrors `BatchJobState` in gateway/v1/batch.proto). */
export type BatchJobState =
  'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'COMPLETED_WITH_ERRORS' | 'FAILED' | 'CANCELLING' | 'CANCELLED';

export const FINAL_STATES: ReadonlySet<BatchJobState> = new Set<BatchJobState>([
  'SUCCEEDED',
  'COMPLETED_WITH_ERRORS',
  'FAILED',
  'CANCELLED',
]);

const ALL_STATES: ReadonlySet<string> = new Set<BatchJobState>([
  'QUEUED',
  'RUNNING',
  'SUCCEEDED',
  'COMPLETED_WITH_ERRORS',
  'FAILED',
  'CANCELLING',
  'CANCELLED',
]);

export function isFinalState(state: BatchJobState): boolean {
  return FINAL_STATES.has(state);
}

/** A batch job's public record: what GetBatchJob returns. */
export interface JobRecord {
  readonly jobId: string;
  readonly tenant: string;
  readonly kind: BatchJobKind;
  readonly state: BatchJobState;
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly cancelled: number;
  readonly createTime: Date;
  readonly updateTime: Date;
  /** Set once the job reaches a final state. */
  readonly finishTime?: Date;
  /** Why the job failed as a whole (state FAILED). */
  readonly errorMessage?: string;
  /** Settings shared by every item; opaque to this library. */
  readonly options: unknown;
}

/** How one item ended. Exactly one outcome is kept per item: the first one recorded. */
export type ItemOutcome =
  | { readonly ok: true; readonly value: unknown }
  | {
      readonly ok: false;
      readonly code: string;
      readonly message: string;
      /** Tries made before the item failed (absent in results recorded before it existed). */
      readonly attempts?: number;
    }
  | { readonly cancelled: true };

/** What `claimItems` finds for a range of items. */
export type ItemClaim =
  | { readonly state: 'missing' }
  | {
      readonly state: 'claimed';
      readonly record: JobRecord;
      /** The range's items without an outcome yet, in index order; empty when all are done. */
      readonly pending: readonly { readonly index: number; readonly item: unknown }[];
    };

export interface CreateJobInput {
  readonly jobId: string;
  readonly tenant: string;
  readonly kind: BatchJobKind;
  /**
   * Item payloads, opaque JSON values validated by the caller; their position is their index. Or
   * items already JSON-encoded, as they are read (a manifest being parsed): written to Redis 1,000
   * at a time, so the caller never holds them all; if the iteration throws, what was written is
   * deleted and the error passes on.
   */
  readonly items: readonly unknown[] | AsyncIterable<string>;
  /** The array's items are already JSON text (strings), stored as they are. */
  readonly itemsAreJson?: boolean;
  readonly options: unknown;
  readonly createdAt?: Date;
}

export interface ListJobsOptions {
  /** 1..100; default 20. */
  readonly pageSize?: number;
  /** `nextPageToken` of the previous page. */
  readonly pageToken?: string;
  /** Only jobs in these states; empty or absent means all. */
  readonly states?: readonly BatchJobState[];
}

export interface JobPage {
  readonly jobs: JobRecord[];
  /** Empty on the last page. */
  readonly nextPageToken: string;
}

export interface ResultsPage {
  /** Recorded results with `index >= start`, in index order, at most `count` of them. */
  readonly results: { readonly index: number; readonly result: ItemOutcome }[];
  /** How many items have a recorded result in the whole job. */
  readonly resultCount: number;
}

export interface BatchJobStoreOptions {
  /** Key prefix for every key this store writes, e.g. `ibllm:batch:`. */
  readonly prefix: string;
  /**
   * Seconds a job's record, items and results are kept once it is final (Redis EXPIRE on its
   * keys at that moment); -1 keeps them. Written into each job at creation, so the workers that
   * finish it need not be configured alike. Default {@link DEFAULT_RETENTION_S}.
   */
  readonly retentionS?: number;
  readonly now?: () => Date;
}

/** Finished jobs are kept a week unless configured otherwise. */
export const DEFAULT_RETENTION_S = 7 * 24 * 3600;

/** Items written per HSET while creating a job: bounds one command's size for 10k-item jobs. */
const ITEM_WRITE_CHUNK = 1_000;
/** Outcomes recorded per script call (one Redis round trip each). */
const RECORD_CHUNK = 1_000;
const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;
const LIST_SCAN_BATCH = 100;

/**
 * Creates the record unless the job exists. KEYS: job. ARGV: field/value pairs.
 * Returns 1 when created, 0 when the job already existed.
 */
const CREATE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
`;

/**
 * Lua shared by the scripts that can make a job final: EXPIRE on the job's keys (KEYS[1..4]: job,
 * items, results, done) after its `retentionS` field; -1 (or a job created before retention
 * existed, without the field) keeps them.
 */
const EXPIRE_FINAL_LUA = `
local retention = tonumber(redis.call('HGET', KEYS[1], 'retentionS') or '-1')
if retention and retention > 0 then
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], retention) end
end
`;

/**
 * After outcomes were counted (KEYS[1] the job, `now` set): the job's state from its counters.
 * Final, once every item has an outcome: CANCELLED when any item was cancelled, else SUCCEEDED
 * when none failed, FAILED when all failed, else COMPLETED_WITH_ERRORS (and the keys get their
 * expiry). A job whose cancel came too late to stop anything ends by its items' outcomes, because
 * that is what happened. Otherwise a QUEUED job turns RUNNING.
 */
const SETTLE_LUA = `
local v = redis.call('HMGET', KEYS[1], 'total', 'succeeded', 'failed', 'cancelled', 'state')
local total = tonumber(v[1])
local s = tonumber(v[2] or '0')
local f = tonumber(v[3] or '0')
local c = tonumber(v[4] or '0')
local state = v[5]
if s + f + c >= total then
  if c > 0 then
    state = 'CANCELLED'
  elseif f == 0 then
    state = 'SUCCEEDED'
  elseif s == 0 then
    state = 'FAILED'
    redis.call('HSET', KEYS[1], 'errorMessage', 'every item failed; see the item results')
  else
    state = 'COMPLETED_WITH_ERRORS'
  end
  redis.call('HSET', KEYS[1], 'finishTime', now, 'state', state, 'updateTime', now)
  ${EXPIRE_FINAL_LUA}
else
  if state == 'QUEUED' then state = 'RUNNING' end
  redis.call('HSET', KEYS[1], 'state', state, 'updateTime', now)
end
`;

/** Returns from the script unless the job exists and is not final (-1 missing, 0 final). */
const OPEN_JOB_LUA = `
local before = redis.call('HGET', KEYS[1], 'state')
if not before then return -1 end
if before == 'SUCCEEDED' or before == 'COMPLETED_WITH_ERRORS' or before == 'FAILED' or before == 'CANCELLED' then
  return 0
end
`;

/**
 * Records outcomes, each item's once. KEYS: job, items, results, done-index zset.
 * ARGV: now (ms), then per item three values: index, counter field (succeeded|failed|cancelled),
 * outcome. Items that already have an outcome keep it. Returns how many it recorded: 0 when every
 * item already had one or the job is final (e.g. FAILED as a whole), -1 when the job does not exist.
 */
const RECORD_SCRIPT = `
${OPEN_JOB_LUA}
local added = { succeeded = 0, failed = 0, cancelled = 0 }
local recorded = 0
for i = 2, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 2]) == 1 then
    redis.call('ZADD', KEYS[4], ARGV[i], ARGV[i])
    added[ARGV[i + 1]] = added[ARGV[i + 1]] + 1
    recorded = recorded + 1
  end
end
if recorded == 0 then return 0 end
for field, n in pairs(added) do
  if n > 0 then redis.call('HINCRBY', KEYS[1], field, n) end
end
local now = ARGV[1]
${SETTLE_LUA}
return recorded
`;

/**
 * KEYS: job, items, results. ARGV: start, count, now. One round trip for everything a worker needs
 * before it runs the items `start .. start+count-1`: {'MISSING'} when the job is gone, else
 * {'OK', job hash (as it was), index, item JSON or false, ...} for the items without an outcome
 * (a redelivery skips those already done); a QUEUED job turns RUNNING.
 */
const CLAIM_ITEMS_SCRIPT = `
local job = redis.call('HGETALL', KEYS[1])
if #job == 0 then return {'MISSING'} end
local pending = {}
local first = tonumber(ARGV[1])
for index = first, first + tonumber(ARGV[2]) - 1 do
  local key = tostring(index)
  if redis.call('HEXISTS', KEYS[3], key) == 0 then
    pending[#pending + 1] = key
    pending[#pending + 1] = redis.call('HGET', KEYS[2], key)
  end
end
if #pending > 0 and redis.call('HGET', KEYS[1], 'state') == 'QUEUED' then
  redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'updateTime', ARGV[3])
end
return {'OK', job, pending}
`;

/**
 * KEYS: job. ARGV: tenant, now. Returns 'NOT_FOUND', 'FINAL:<state>', or the new state.
 * A job that is already CANCELLING stays so (cancel is idempotent).
 */
const CANCEL_SCRIPT = `
local v = redis.call('HMGET', KEYS[1], 'tenant', 'state')
if v[1] ~= ARGV[1] then return 'NOT_FOUND' end
local state = v[2]
if state == 'SUCCEEDED' or state == 'COMPLETED_WITH_ERRORS' or state == 'FAILED' or state == 'CANCELLED' then
  return 'FINAL:' .. state
end
if state ~= 'CANCELLING' then
  redis.call('HSET', KEYS[1], 'state', 'CANCELLING', 'updateTime', ARGV[2])
end
return 'CANCELLING'
`;

/** KEYS: job, items, results, done. ARGV: message, now. Fails a job that is not final yet; returns 1 when it did. */
const FAIL_SCRIPT = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'SUCCEEDED' or state == 'COMPLETED_WITH_ERRORS' or state == 'FAILED' or state == 'CANCELLED' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'FAILED', 'errorMessage', ARGV[1], 'updateTime', ARGV[2], 'finishTime', ARGV[2])
${EXPIRE_FINAL_LUA}
return 1
`;

/**
 * Batch job records, items and results in Redis. Results are exactly-once per item: the first
 * outcome recorded for an index wins, atomically with the counters and the state, so an item run
 * twice (a worker killed after recording, a stalled lock) is counted once.
 *
 * Keys (the `{jobId}` hash tag keeps one job's keys in one cluster slot for the Lua scripts):
 * `<prefix>job:{<jobId>}` record hash, `…:items` index → item JSON, `…:results` index → outcome
 * JSON, `…:done` recorded indices (zset scored by index, for ordered reads),
 * `<prefix>tenant:<tenant>:jobs` the tenant's job ids scored by creation time.
 */
export class BatchJobStore {
  private readonly prefix: string;
  private readonly now: () => Date;
  private readonly retentionS: number;

  constructor(
    private readonly redis: Redis,
    options: BatchJobStoreOptions,
  ) {
    this.prefix = options.prefix;
    this.now = options.now ?? (() => new Date());
    this.retentionS = options.retentionS ?? DEFAULT_RETENTION_S;
    if (!Number.isSafeInteger(this.retentionS) || (this.retentionS < 1 && this.retentionS !== -1)) {
      throw new Error(`retentionS must be a positive number of seconds or -1, got ${this.retentionS}.`);
    }
  }

  /**
   * Creates a job, or returns the existing one with this id (a retried submit with the same client
   * token). Job ids are derived from tenant and client token by the caller, so an id owned by
   * another tenant means a bug or a forged id: ALREADY_EXISTS, without showing that job.
   */
  async create(input: CreateJobInput): Promise<JobRecord> {
    assertValidJobId(input.jobId);
    if (!isBatchJobKind(input.kind)) {
      throw DomainError.invalidInput(`Unknown batch job kind "${String(input.kind)}".`, 'kind');
    }
    if (input.tenant === '') throw DomainError.invalidInput('A batch job needs a tenant.', 'tenant');
    if (Array.isArray(input.items) && input.items.length === 0)
      throw DomainError.invalidInput('A batch job needs at least one item.', 'items');

    const existing = await this.read(input.jobId);
    if (existing !== undefined) return this.sameTenantOrClash(existing, input.tenant);

    const keys = this.keys(input.jobId);
    // Items first, the record last: once the record is visible its items are readable. A racing
    // create with the same id writes the same items, so the overwrite is harmless.
    let total = 0;
    let fields: string[] = [];
    const flush = async (): Promise<void> => {
      if (fields.length > 0) await this.redis.hset(keys.items, ...fields);
      fields = [];
    };
    const add = async (json: string): Promise<void> => {
      fields.push(String(total++), json);
      if (fields.length >= 2 * ITEM_WRITE_CHUNK) await flush();
    };
    if (isAsyncIterable(input.items)) {
      try {
        for await (const json of input.items) await add(json);
        await flush();
      } catch (error) {
        await this.redis.del(keys.items).catch(() => undefined);
        throw error;
      }
    } else {
      for (const item of input.items) {
        await add(
          input.itemsAreJson === true && typeof item === 'string' ? item : JSON.stringify(item ?? null),
        );
      }
      await flush();
    }
    if (total === 0) throw DomainError.invalidInput('A batch job needs at least one item.', 'items');
    const createdAt = input.createdAt ?? this.now();
    const ms = String(createdAt.getTime());
    const created = (await this.redis.eval(
      CREATE_SCRIPT,
      1,
      keys.job,
      ...['jobId', input.jobId, 'tenant', input.tenant, 'kind', input.kind, 'state', 'QUEUED'],
      ...['total', String(total), 'succeeded', '0', 'failed', '0', 'cancelled', '0'],
      ...['createTime', ms, 'updateTime', ms, 'options', JSON.stringify(input.options ?? null)],
      ...['retentionS', String(this.retentionS)],
    )) as number;
    if (created === 1) {
      await this.redis.zadd(this.tenantKey(input.tenant), createdAt.getTime(), input.jobId);
    }
    const record = await this.read(input.jobId);
    if (record === undefined)
      throw new Error(`Batch job ${input.jobId} vanished right after it was created.`);
    return created === 1 ? record : this.sameTenantOrClash(record, input.tenant);
  }

  /** The job, if it exists and belongs to `tenant`; NOT_FOUND otherwise (existence is not revealed). */
  async get(jobId: string, tenant: string): Promise<JobRecord> {
    const record = await this.read(jobId);
    if (record === undefined || record.tenant !== tenant) throw notFound(jobId);
    return record;
  }

  /** The job for internal use (workers), regardless of tenant; undefined when it does not exist. */
  async find(jobId: string): Promise<JobRecord | undefined> {
    return this.read(jobId);
  }

  /** The tenant's jobs, newest first, filtered by state, with an opaque token for the next page. */
  async list(tenant: string, options: ListJobsOptions = {}): Promise<JobPage> {
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
      throw DomainError.invalidInput(`pageSize must be 1..${MAX_PAGE_SIZE}, got ${pageSize}.`, 'pageSize');
    }
    const states = new Set(options.states ?? []);
    const cursor = options.pageToken ? decodePageToken(options.pageToken) : undefined;
    const key = this.tenantKey(tenant);
    const max = cursor === undefined ? '+inf' : String(cursor.score);
    // Collect one more than a page to know whether a next page exists.
    const found: { record: JobRecord; score: number }[] = [];
    for (let offset = 0; found.length <= pageSize; offset += LIST_SCAN_BATCH) {
      const batch = await this.redis.zrevrangebyscore(
        key,
        max,
        '-inf',
        'WITHSCORES',
        'LIMIT',
        offset,
        LIST_SCAN_BATCH,
      );
      const entries: { jobId: string; score: number }[] = [];
      for (let i = 0; i + 1 < batch.length; i += 2) {
        const jobId = batch[i] as string;
        const score = Number(batch[i + 1]);
        // Equal scores come in reverse member order, so those at or above the cursor were shown.
        if (cursor !== undefined && score === cursor.score && jobId >= cursor.jobId) continue;
        entries.push({ jobId, score });
      }
      const records = await Promise.all(entries.map((entry) => this.read(entry.jobId)));
      // Jobs past their retention expired with their keys; their ids leave the index here.
      const expired = entries.filter((_, i) => records[i] === undefined).map((entry) => entry.jobId);
      if (expired.length > 0) await this.redis.zrem(key, ...expired);
      entries.forEach((entry, i) => {
        const record = records[i];
        if (record === undefined || record.tenant !== tenant) return;
        if (states.size > 0 && !states.has(record.state)) return;
        found.push({ record, score: entry.score });
      });
      if (batch.length < LIST_SCAN_BATCH * 2) break;
    }
    const page = found.slice(0, pageSize);
    const last = page[page.length - 1];
    const nextPageToken =
      found.length > pageSize && last !== undefined ? encodePageToken(last.score, last.record.jobId) : '';
    return { jobs: page.map((entry) => entry.record), nextPageToken };
  }

  /** Item `index`'s payload; NOT_FOUND when the job or the item does not exist. */
  async item(jobId: string, index: number): Promise<unknown> {
    const raw = await this.redis.hget(this.keys(jobId).items, String(index));
    if (raw === null) throw DomainError.notFound(`Batch job ${jobId} has no item ${index}.`);
    return JSON.parse(raw) as unknown;
  }

  /**
   * Records item `index`'s outcome. Returns true when this call recorded it, false when the item
   * already had an outcome (nothing changes then). NOT_FOUND when the job does not exist.
   */
  async recordResult(jobId: string, index: number, outcome: ItemOutcome): Promise<boolean> {
    return (await this.recordResults(jobId, [{ index, outcome }])) === 1;
  }

  /**
   * Records many items' outcomes, {@link RECORD_CHUNK} per script call (one Redis round trip each
   * instead of one per item). Items that already have an outcome keep it. Returns how many it
   * recorded; NOT_FOUND when the job does not exist.
   */
  async recordResults(
    jobId: string,
    entries: readonly { readonly index: number; readonly outcome: ItemOutcome }[],
  ): Promise<number> {
    const keys = this.keys(jobId);
    let recorded = 0;
    for (let start = 0; start < entries.length; start += RECORD_CHUNK) {
      const args: (string | Buffer)[] = [String(this.now().getTime())];
      for (const { index, outcome } of entries.slice(start, start + RECORD_CHUNK)) {
        const counter = 'cancelled' in outcome ? 'cancelled' : outcome.ok ? 'succeeded' : 'failed';
        args.push(String(index), counter, encodeOutcome(outcome));
      }
      const n = (await this.redis.eval(
        RECORD_SCRIPT,
        4,
        keys.job,
        keys.items,
        keys.results,
        keys.done,
        ...args,
      )) as number;
      if (n === -1) throw notFound(jobId);
      recorded += n;
    }
    return recorded;
  }

  /** Records the items `indices` cancelled (those without an outcome yet); returns how many it recorded. */
  async recordCancelled(jobId: string, indices: readonly number[]): Promise<number> {
    return this.recordResults(
      jobId,
      indices.map((index) => ({ index, outcome: { cancelled: true } })),
    );
  }

  /**
   * What a worker reads before it runs the items `start .. start+count-1`, in one round trip (a
   * Lua script): `missing` when the job is gone, else the job's record as it was and the items
   * that have no outcome yet, in index order (a redelivery skips those already done; `item` is
   * undefined for an index the job does not have). The job turns QUEUED → RUNNING with its first
   * claimed item.
   */
  async claimItems(jobId: string, start: number, count: number): Promise<ItemClaim> {
    const keys = this.keys(jobId);
    const reply = (await this.redis.eval(
      CLAIM_ITEMS_SCRIPT,
      3,
      keys.job,
      keys.items,
      keys.results,
      String(start),
      String(count),
      String(this.now().getTime()),
    )) as [string, string[]?, (string | null)[]?];
    if (reply[0] === 'MISSING') return { state: 'missing' };
    const flat = reply[1] ?? [];
    const hash: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) hash[flat[i]!] = flat[i + 1]!;
    const rows = reply[2] ?? [];
    const pending: { index: number; item: unknown }[] = [];
    for (let i = 0; i + 1 < rows.length; i += 2) {
      const raw = rows[i + 1];
      pending.push({
        index: Number(rows[i]),
        item: typeof raw === 'string' ? (JSON.parse(raw) as unknown) : undefined,
      });
    }
    return { state: 'claimed', record: parseRecord(hash), pending };
  }

  /**
   * Fails the whole job (e.g. its manifest cannot be read). Returns false when it was already final.
   */
  async markFailed(jobId: string, message: string): Promise<boolean> {
    const keys = this.keys(jobId);
    const done = await this.redis.eval(
      FAIL_SCRIPT,
      4,
      keys.job,
      keys.items,
      keys.results,
      keys.done,
      message,
      String(this.now().getTime()),
    );
    return done === 1;
  }

  /**
   * Asks the job to stop: state CANCELLING until every item has an outcome. NOT_FOUND for another
   * tenant's job, FAILED_PRECONDITION when the job is already final.
   */
  async requestCancel(jobId: string, tenant: string): Promise<JobRecord> {
    const reply = (await this.redis.eval(
      CANCEL_SCRIPT,
      1,
      this.keys(jobId).job,
      tenant,
      String(this.now().getTime()),
    )) as string;
    if (reply === 'NOT_FOUND') throw notFound(jobId);
    if (reply.startsWith('FINAL:')) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `Batch job ${jobId} already finished (${reply.slice('FINAL:'.length)}); there is nothing to cancel.`,
      );
    }
    return this.get(jobId, tenant);
  }

  /** Whether a cancel was requested (CANCELLING) or has completed (CANCELLED). */
  async isCancelled(jobId: string): Promise<boolean> {
    const state = await this.redis.hget(this.keys(jobId).job, 'state');
    return state === 'CANCELLING' || state === 'CANCELLED';
  }

  /** Recorded results with `index >= start`, in index order, at most `count`. */
  async results(
    jobId: string,
    tenant: string,
    range: { start: number; count: number },
  ): Promise<ResultsPage> {
    await this.get(jobId, tenant);
    if (!Number.isInteger(range.start) || range.start < 0) {
      throw DomainError.invalidInput(`start must be a non-negative integer, got ${range.start}.`, 'start');
    }
    if (!Number.isInteger(range.count) || range.count < 1) {
      throw DomainError.invalidInput(`count must be a positive integer, got ${range.count}.`, 'count');
    }
    const keys = this.keys(jobId);
    const [indices, resultCount] = await Promise.all([
      this.redis.zrangebyscore(keys.done, range.start, '+inf', 'LIMIT', 0, range.count),
      this.redis.zcard(keys.done),
    ]);
    if (indices.length === 0) return { results: [], resultCount };
    const raws = await this.redis.hmgetBuffer(keys.results, ...indices);
    const results: { index: number; result: ItemOutcome }[] = [];
    indices.forEach((index, i) => {
      const raw = raws[i];
      if (raw !== null && raw !== undefined)
        results.push({ index: Number(index), result: decodeOutcome(raw) });
    });
    return { results, resultCount };
  }

  /** Indices in `[0, total)` without an outcome yet (what a cancel still has to account for). */
  async unrecordedIndices(jobId: string): Promise<number[]> {
    const record = await this.read(jobId);
    if (record === undefined) throw notFound(jobId);
    const done = new Set((await this.redis.zrange(this.keys(jobId).done, 0, -1)).map(Number));
    const missing: number[] = [];
    for (let index = 0; index < record.total; index++) if (!done.has(index)) missing.push(index);
    return missing;
  }

  private async read(jobId: string): Promise<JobRecord | undefined> {
    const hash = await this.redis.hgetall(this.keys(jobId).job);
    if (hash['jobId'] === undefined) return undefined;
    return parseRecord(hash);
  }

  private sameTenantOrClash(record: JobRecord, tenant: string): JobRecord {
    if (record.tenant === tenant) return record;
    throw new DomainError(
      ErrorCode.AlreadyExists,
      `Batch job id ${record.jobId} is already in use; choose another client token.`,
    );
  }

  private keys(jobId: string): { job: string; items: string; results: string; done: string } {
    const job = `${this.prefix}job:{${jobId}}`;
    return { job, items: `${job}:items`, results: `${job}:results`, done: `${job}:done` };
  }

  private tenantKey(tenant: string): string {
    return `${this.prefix}tenant:${tenant}:jobs`;
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<string> {
  return typeof (value as { [Symbol.asyncIterator]?: unknown } | null)?.[Symbol.asyncIterator] === 'function';
}

function notFound(jobId: string): DomainError {
  return DomainError.notFound(`Batch job ${jobId} does not exist.`);
}

function parseRecord(hash: Record<string, string>): JobRecord {
  const state = hash['state'] ?? '';
  const kind = hash['kind'];
  if (!ALL_STATES.has(state) || !isBatchJobKind(kind)) {
    throw new Error(`Batch job ${hash['jobId']} has a corrupt record (state "${state}", kind "${kind}").`);
  }
  const finish = hash['finishTime'];
  const errorMessage = hash['errorMessage'];
  return {
    jobId: hash['jobId'] ?? '',
    tenant: hash['tenant'] ?? '',
    kind,
    state: state as BatchJobState,
    total: Number(hash['total']),
    succeeded: Number(hash['succeeded'] ?? 0),
    failed: Number(hash['failed'] ?? 0),
    cancelled: Number(hash['cancelled'] ?? 0),
    createTime: new Date(Number(hash['createTime'])),
    updateTime: new Date(Number(hash['updateTime'])),
    ...(finish === undefined ? {} : { finishTime: new Date(Number(finish)) }),
    ...(errorMessage === undefined ? {} : { errorMessage }),
    options: JSON.parse(hash['options'] ?? 'null') as unknown,
  };
}

function encodePageToken(score: number, jobId: string): string {
  return Buffer.from(JSON.stringify({ s: score, j: jobId }), 'utf8').toString('base64url');
}

function decodePageToken(token: string): { score: number; jobId: string } {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (parsed !== null && typeof parsed === 'object') {
      const { s, j } = parsed as { s?: unknown; j?: unknown };
      if (typeof s === 'number' && Number.isFinite(s) && typeof j === 'string') return { score: s, jobId: j };
    }
  } catch {
    // fall through to the error below
  }
  throw DomainError.invalidInput('pageToken is not a token returned by a previous list call.', 'pageToken');
}

/** First byte of a packed outcome; stored JSON text (the older format) starts with `{`. */
const PACKED_OUTCOME = 0x01;

/**
 * An outcome as stored: binary fields (Uint8Array/Buffer anywhere in it, e.g. an embedding's raw
 * float32 bytes) go after the JSON instead of inside it, so a 1024-d embedding costs its 4,096
 * bytes rather than 5,464 of base64 or ~20 kB of number text. Layout: 0x01, uint32 BE length of
 * the JSON, the JSON (binary fields replaced by {"$bin": [offset, length]}), the binary blobs.
 */
export function encodeOutcome(outcome: ItemOutcome): Buffer {
  const blobs: Uint8Array[] = [];
  let offset = 0;
  // Binary fields are swapped for their references before JSON.stringify sees them: given a
  // Buffer it would first spell out every byte as a number ({type, data: [...]}) to throw away.
  const strip = (value: unknown): unknown => {
    if (value instanceof Uint8Array) {
      blobs.push(value);
      const at = offset;
      offset += value.byteLength;
      return { $bin: [at, value.byteLength] };
    }
    if (Array.isArray(value)) return value.map(strip);
    if (value !== null && typeof value === 'object') {
      const copy: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(value)) copy[key] = strip(field);
      return copy;
    }
    return value;
  };
  const json = JSON.stringify(strip(outcome));
  const head = Buffer.alloc(5);
  head[0] = PACKED_OUTCOME;
  const text = Buffer.from(json, 'utf8');
  head.writeUInt32BE(text.byteLength, 1);
  return Buffer.concat([head, text, ...blobs]);
}

/** The inverse of {@link encodeOutcome}; JSON text written before packing existed reads as before. */
export function decodeOutcome(raw: Buffer): ItemOutcome {
  if (raw[0] !== PACKED_OUTCOME) return JSON.parse(raw.toString('utf8')) as ItemOutcome;
  const length = raw.readUInt32BE(1);
  const blobs = raw.subarray(5 + length);
  return JSON.parse(raw.toString('utf8', 5, 5 + length), (_key, value: unknown) => {
    if (value !== null && typeof value === 'object' && '$bin' in value) {
      const [at, size] = (value as { $bin: [number, number] }).$bin;
      return Buffer.from(blobs.subarray(at, at + size));
    }
    return value;
  }) as ItemOutcome;
}
