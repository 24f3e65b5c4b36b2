import { createHash, randomUUID } from 'node:crypto';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  checkSource,
  streamSource,
  type MediaSourcePolicy,
  type ParsedSource,
} from '@imagebind-llm/media-source';
import { gatewayV1 } from '@imagebind-llm/proto';
import {
  DEFAULT_CHUNK_ITEMS,
  cancelBatchJob,
  type BatchJobStore,
  type BatchQueue,
  type JobRecord,
} from '@imagebind-llm/queue';
import { validateCache, validateInputs, type RequestLimits } from '../request-validation';

const { BatchJobKind, BatchJobState } = gatewayV1;

/** The job kinds as the queue layer names them. */
const KIND_NAME = {
  [BatchJobKind.BATCH_JOB_KIND_GENERATE]: 'generate',
  [BatchJobKind.BATCH_JOB_KIND_EMBED]: 'embed',
  [BatchJobKind.BATCH_JOB_KIND_INDEX_BUILD]: 'index-build',
  [BatchJobKind.BATCH_JOB_KIND_INDEX_IMPORT]: 'index-import',
} as const;
type KindName = (typeof KIND_NAME)[keyof typeof KIND_NAME];
const KIND_OF = new Map<string, gatewayV1.BatchJobKind>(
  Object.entries(KIND_NAME).map(([kind, name]) => [name, Number(kind) as gatewayV1.BatchJobKind]),
);

const STATE: Readonly<Record<JobRecord['state'], gatewayV1.BatchJobState>> = {
  QUEUED: BatchJobState.BATCH_JOB_STATE_QUEUED,
  RUNNING: BatchJobState.BATCH_JOB_STATE_RUNNING,
  SUCCEEDED: BatchJobState.BATCH_JOB_STATE_SUCCEEDED,
  COMPLETED_WITH_ERRORS: BatchJobState.BATCH_JOB_STATE_COMPLETED_WITH_ERRORS,
  FAILED: BatchJobState.BATCH_JOB_STATE_FAILED,
  CANCELLING: BatchJobState.BATCH_JOB_STATE_CANCELLING,
  CANCELLED: BatchJobState.BATCH_JOB_STATE_CANCELLED,
};

export interface BatchLimits extends RequestLimits {
  /** Most items in one job. */
  readonly maxItems: number;
  /** Largest manifest fetched from manifest_uri, in bytes. */
  readonly maxManifestBytes: number;
  /** Unfinished jobs one tenant may have at once: the per-tenant limit on batch work. */
  readonly maxActiveJobs: number;
}

/** What the worker stores per item: the item itself plus its index-independent id. */
/** Manifest lines checked between two turns of the event loop. */
const MANIFEST_LINES_PER_TURN = 1_000;

export interface StoredItem {
  readonly itemId: string;
  /** gatewayV1.BatchItem in its JSON mapping (bytes as base64). */
  readonly item: unknown;
}

export function toBatchJob(record: JobRecord): gatewayV1.BatchJob {
  return {
    jobId: record.jobId,
    kind: KIND_OF.get(record.kind) ?? BatchJobKind.BATCH_JOB_KIND_UNSPECIFIED,
    state: STATE[record.state],
    progress: {
      total: record.total,
      succeeded: record.succeeded,
      failed: record.failed,
      cancelled: record.cancelled,
    },
    createTime: record.createTime,
    updateTime: record.updateTime,
    finishTime: record.finishTime,
    errorMessage: record.errorMessage ?? '',
  };
}

/**
 * The gateway's batch-job API (issue #6): validates a submission completely (inputs, URIs under the
 * media policy, limits), stores it and enqueues its items, a few per BullMQ job; reads, lists, cancels
 * and streams results per tenant — a tenant never sees another's jobs (the store answers NOT_FOUND).
 */
export class BatchJobsService {
  constructor(
    private readonly store: BatchJobStore,
    private readonly queue: BatchQueue,
    private readonly limits: BatchLimits,
    private readonly media: MediaSourcePolicy,
    private readonly queueing: {
      readonly attempts: number;
      readonly backoffMs: number;
      /** Items per queue job; 0 (or absent) takes the kind's default (`DEFAULT_CHUNK_ITEMS`). */
      readonly chunkItems?: number;
    },
  ) {}

  async submit(
    request: gatewayV1.SubmitBatchJobRequest,
    tenant: string,
  ): Promise<gatewayV1.SubmitBatchJobResponse> {
    const kind = KIND_NAME[request.kind as keyof typeof KIND_NAME] as KindName | undefined;
    if (kind === undefined) {
      throw DomainError.invalidInput('kind: set GENERATE, EMBED, INDEX_BUILD or INDEX_IMPORT', 'kind');
    }
    if (request.items.length > 0 && request.manifestUri !== '') {
      throw DomainError.invalidInput('set either items or manifest_uri, not both', 'manifest_uri');
    }
    const tooMany = (count: number): DomainError =>
      new DomainError(
        ErrorCode.PayloadTooLarge,
        `items: ${count} items exceed the limit of ${this.limits.maxItems} per job; split the job`,
        { field: 'items' },
      );
    if (request.items.length > this.limits.maxItems) throw tooMany(request.items.length);
    const options = request.options ?? { instruction: '', collection: '' };
    validateCache(options.cache, 'options.cache');
    const needsInstruction = kind === 'generate' && options.instruction.trim() === '';
    // Each item is checked and encoded as it is read, then dropped: only its stored JSON text goes
    // on, and a manifest's items go to the store a thousand at a time as its chunks arrive.
    const ids = new Set<string>();
    const encode = (item: gatewayV1.BatchItem, index: number): string => {
      if (index >= this.limits.maxItems) throw tooMany(index + 1);
      if (needsInstruction && item.instruction.trim() === '') {
        throw DomainError.invalidInput(
          'options.instruction: GENERATE jobs need an instruction (per item or in options)',
          'options.instruction',
        );
      }
      this.checkItem(item, index, kind, ids);
      const entry: StoredItem = {
        itemId: item.itemId === '' ? String(index) : item.itemId,
        item: gatewayV1.BatchItem.toJSON(item),
      };
      return JSON.stringify(entry);
    };
    const empty = (): DomainError =>
      DomainError.invalidInput('items: at least one item is required', 'items');
    // Inline items are checked before anything else; a manifest is read (and checked) while it is
    // stored, after the cheap checks below.
    if (request.manifestUri === '' && request.items.length === 0) throw empty();
    const items =
      request.manifestUri !== ''
        ? this.manifestItems(request.manifestUri, encode, empty)
        : request.items.map(encode);
    // Idempotency: the same tenant + client token is the same job (and its items are not read again).
    const jobId =
      request.clientToken === ''
        ? randomUUID()
        : createHash('sha256').update(`${tenant}\0${request.clientToken}`).digest('hex').slice(0, 32);
    const existing = await this.store.find(jobId);
    if (existing !== undefined && existing.tenant === tenant) return { job: toBatchJob(existing) };
    const active = await this.store.list(tenant, {
      pageSize: Math.min(100, this.limits.maxActiveJobs + 1),
      states: ['QUEUED', 'RUNNING', 'CANCELLING'],
    });
    if (active.jobs.length >= this.limits.maxActiveJobs) {
      throw new DomainError(
        ErrorCode.Overloaded,
        `this API key already has ${active.jobs.length} unfinished batch jobs (limit ${this.limits.maxActiveJobs}); wait for one to finish or cancel one`,
        { retryAfterMs: 10_000 },
      );
    }
    const record = await this.store.create({
      jobId,
      tenant,
      kind,
      items,
      itemsAreJson: true,
      options: gatewayV1.BatchJobOptions.toJSON(options),
    });
    const { attempts, backoffMs, chunkItems } = this.queueing;
    const chunk = chunkItems !== undefined && chunkItems > 0 ? chunkItems : DEFAULT_CHUNK_ITEMS[kind];
    await this.queue.enqueue(jobId, record.total, { attempts, backoffMs, chunk });
    return { job: toBatchJob(record) };
  }

  private checkItem(item: gatewayV1.BatchItem, index: number, kind: KindName, ids: Set<string>): void {
    const at = `items[${index}]`;
    const id = item.itemId === '' ? String(index) : item.itemId;
    if (ids.has(id))
      throw DomainError.invalidInput(
        `${at}.item_id: "${id}" appears twice; ids must be unique`,
        `${at}.item_id`,
      );
    ids.add(id);
    if (kind === 'index-import') {
      if (item.inputs.length !== 1 || item.inputs[0]!.source?.$case !== 'uri') {
        throw DomainError.invalidInput(
          `${at}.inputs: an INDEX_IMPORT item is one uri naming a faiss index file`,
          `${at}.inputs`,
        );
      }
    } else {
      try {
        validateInputs(item.inputs, this.limits);
      } catch (error) {
        if (error instanceof DomainError) {
          throw new DomainError(error.code, `${at}.${error.message}`, {
            ...error.details,
            field: `${at}.${String(error.details.field ?? 'inputs')}`,
          });
        }
        throw error;
      }
    }
    item.inputs.forEach((input, j) => {
      if (input.source?.$case === 'uri')
        checkSource(input.source.value, this.media, `${at}.inputs[${j}].uri`);
    });
  }

  /**
   * Reads a JSON-lines manifest (its size capped by GATEWAY_MAX_BODY_BYTES) and hands each item to
   * `accept` line by line, without splitting the whole text or keeping the parsed items.
   */
  /**
   * A JSON-lines manifest's items, encoded, as its chunks arrive (`streamSource`): memory holds one
   * chunk and the line being read, not the manifest. Blank lines are skipped; line numbers in
   * errors count every line.
   */
  private manifestItems(
    uri: string,
    encode: (item: gatewayV1.BatchItem, index: number) => string,
    empty: () => DomainError,
  ): AsyncGenerator<string> {
    const policy = { ...this.media, maxBytes: this.limits.maxManifestBytes };
    // The URI is vetted now, before the job's other checks; it is read once the store pulls items.
    const source = checkSource(uri, policy, 'manifest_uri');
    return this.manifestLines(source, policy, encode, empty);
  }

  private async *manifestLines(
    source: ParsedSource,
    policy: MediaSourcePolicy,
    encode: (item: gatewayV1.BatchItem, index: number) => string,
    empty: () => DomainError,
  ): AsyncGenerator<string> {
    let index = 0;
    let lineNumber = 0;
    const parse = (bytes: Buffer, start: number, end: number): string | undefined => {
      lineNumber++;
      const line = bytes.toString('utf8', start, end);
      if (line.trim() === '') return undefined;
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        throw DomainError.invalidInput(`manifest_uri: line ${lineNumber} is not JSON`, 'manifest_uri');
      }
      return encode(gatewayV1.BatchItem.fromJSON(json), index++);
    };
    // The unfinished last line of the chunks so far (a line may span chunks).
    let rest: Buffer = Buffer.alloc(0);
    for await (const chunk of streamSource(source, policy, 'manifest_uri')) {
      const bytes = rest.length === 0 ? Buffer.from(chunk) : Buffer.concat([rest, chunk]);
      let start = 0;
      for (let newline = bytes.indexOf(10, start); newline >= 0; newline = bytes.indexOf(10, start)) {
        const encoded = parse(bytes, start, newline);
        start = newline + 1;
        if (encoded === undefined) continue;
        yield encoded;
        // A 100k-line manifest parses for seconds: let the event loop serve streams and probes.
        if (index % MANIFEST_LINES_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      rest = bytes.subarray(start);
    }
    if (rest.length > 0) {
      const encoded = parse(rest, 0, rest.length);
      if (encoded !== undefined) yield encoded;
    }
    if (index === 0) throw empty();
  }

  async get(jobId: string, tenant: string): Promise<gatewayV1.GetBatchJobResponse> {
    return { job: toBatchJob(await this.store.get(jobId, tenant)) };
  }

  async list(
    request: gatewayV1.ListBatchJobsRequest,
    tenant: string,
  ): Promise<gatewayV1.ListBatchJobsResponse> {
    const states = request.states.map(
      (s) => (Object.entries(STATE).find(([, v]) => v === s)?.[0] ?? '') as JobRecord['state'],
    );
    const page = await this.store.list(tenant, {
      pageSize: request.pageSize === 0 ? 20 : Math.min(request.pageSize, 100),
      ...(request.pageToken === '' ? {} : { pageToken: request.pageToken }),
      ...(states.length === 0 ? {} : { states }),
    });
    return { jobs: page.jobs.map(toBatchJob), nextPageToken: page.nextPageToken };
  }

  async cancel(jobId: string, tenant: string): Promise<gatewayV1.CancelBatchJobResponse> {
    try {
      return { job: toBatchJob(await cancelBatchJob(this.store, this.queue, jobId, tenant)) };
    } catch (error) {
      // batch.proto: cancelling a finished job returns it as it is.
      if (error instanceof DomainError && error.code === ErrorCode.FailedPrecondition)
        return this.get(jobId, tenant);
      throw error;
    }
  }

  async *results(
    request: gatewayV1.StreamBatchJobResultsRequest,
    tenant: string,
    signal: AbortSignal,
  ): AsyncGenerator<gatewayV1.StreamBatchJobResultsResponse> {
    let next = Number(request.startIndex);
    if (!Number.isInteger(next) || next < 0) {
      throw DomainError.invalidInput('start_index: must be 0 or more', 'start_index');
    }
    for (;;) {
      const record = await this.store.get(jobId(request), tenant);
      const page = await this.store.results(record.jobId, tenant, { start: next, count: 256 });
      let advanced = false;
      for (const r of page.results) {
        if (r.index !== next) break; // results go out in index order: wait for a gap to fill
        const message = toResultMessage(r.index, r.result);
        if (message.itemId === '') {
          // Failures and cancellations carry no result value: take the id from the stored item.
          const stored = (await this.store.item(record.jobId, r.index)) as StoredItem | undefined;
          message.itemId = stored?.itemId ?? String(r.index);
        }
        yield message;
        next++;
        advanced = true;
      }
      // A final job has every item recorded, so `next` reaches the total once the gaps are read.
      if (next >= record.total || signal.aborted) return;
      // Without follow: every recorded result up to the first gap, page after page (a finished job
      // has no gap, so all of it); with follow, wait for the gap to fill.
      if (!advanced) {
        if (!request.follow) return;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }
}

function jobId(request: gatewayV1.StreamBatchJobResultsRequest): string {
  if (request.jobId === '') throw DomainError.invalidInput('job_id: required', 'job_id');
  return request.jobId;
}

/** A stored outcome → the wire message (the worker stores `{ itemId, text | embedding | pointId }` or an error). */
function toResultMessage(index: number, result: unknown): gatewayV1.StreamBatchJobResultsResponse {
  const r = (result ?? {}) as {
    itemId?: string;
    ok?: boolean;
    /** embedding: raw float32 bytes, or base64 text in results stored before they were packed. */
    value?: { text?: string; embedding?: Uint8Array | string; pointId?: number; itemId?: string };
    code?: string;
    message?: string;
    attempts?: number;
    cancelled?: boolean;
  };
  const itemId = r.value?.itemId ?? r.itemId ?? '';
  if (r.ok === true && r.value !== undefined) {
    if (r.value.text !== undefined) return { index, itemId, result: { $case: 'text', value: r.value.text } };
    if (r.value.embedding !== undefined) {
      return {
        index,
        itemId,
        result: {
          $case: 'embedding',
          value:
            typeof r.value.embedding === 'string'
              ? Buffer.from(r.value.embedding, 'base64')
              : Buffer.from(r.value.embedding),
        },
      };
    }
    if (r.value.pointId !== undefined)
      return { index, itemId, result: { $case: 'pointId', value: r.value.pointId } };
    return { index, itemId: itemId === '' ? String(index) : itemId, result: { $case: 'text', value: '' } };
  }
  if (r.cancelled === true) {
    return {
      index,
      itemId,
      result: {
        $case: 'error',
        value: { code: 'CANCELLED', message: 'the job was cancelled before this item ran', attempts: 0 },
      },
    };
  }
  return {
    index,
    itemId,
    result: {
      $case: 'error',
      value: {
        code: r.code ?? 'INTERNAL',
        message: r.message ?? 'the item failed',
        attempts: Number.isInteger(r.attempts) ? r.attempts! : 0,
      },
    },
  };
}
