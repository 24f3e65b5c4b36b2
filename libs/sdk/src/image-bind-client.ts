import { randomUUID } from 'node:crypto';
import { Client, credentials, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { gatewayV1 } from '@imagebind-llm/proto';
import { CallRunner, type CallOptions } from './call-runner';
import {
  resolveOptions,
  type ImageBindClientOptions,
  type ResolvedOptions,
  type TlsOptions,
} from './client-options';
import type {
  BatchItemResult,
  BatchJobPage,
  EmbedManyResult,
  EmbedRequest,
  EmbedResult,
  GenerateRequest,
  ListBatchJobsRequest,
  SearchRequest,
  StreamBatchJobResultsOptions,
  SubmitBatchJobRequest,
} from './client-types';
import { GenerateStream, toChunk, type GenerateChunk } from './generate-stream';
import { grpcStatusName, ImageBindError } from './image-bind-error';
import { decodeFloat32Bytes, decodeFloat32Tensor } from './tensor-decode';

const gateway = gatewayV1.GatewayServiceService;
const jobs = gatewayV1.BatchJobServiceService;

/** Sent as the channel's user agent, so gateway logs can tell SDK traffic apart. */
const USER_AGENT = 'imagebind-llm-client/0.1';

/**
 * Client of the platform's public gRPC API (GatewayService and BatchJobService).
 *
 * Every method takes optional {@link CallOptions}: an AbortSignal, a per-call deadline and a
 * request id. Failures are thrown as {@link ImageBindError}. Calls the API contract declares
 * idempotent (`idempotency_level` in gateway.proto and batch.proto; submitBatchJob is, by its
 * idempotency key) are retried on UNAVAILABLE; cancelBatchJob is not; generate is retried only
 * before its first token arrives, and a broken result stream resumes after its last item.
 */
export class ImageBindClient {
  private readonly options: ResolvedOptions;
  private readonly channels: Client[];
  private readonly runner: CallRunner;
  private closed = false;

  constructor(options: ImageBindClientOptions) {
    this.options = resolveOptions(options);
    const tls = this.options.tls;
    const creds = channelCredentials(tls);
    const channelOptions: ChannelOptions = {
      // round_robin spreads calls over every address a target resolves to (an ipv4: list, or a
      // dns: name with several records); the default pick_first would pin one connection.
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
      'grpc.max_receive_message_length': this.options.maxMessageBytes,
      'grpc.max_send_message_length': this.options.maxMessageBytes,
      'grpc.primary_user_agent': USER_AGENT,
      ...(tls?.serverName === undefined
        ? {}
        : { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName }),
      ...this.options.channelOptions,
    };
    this.channels = this.options.targets.map((target) => {
      try {
        return new Client(target, creds, channelOptions);
      } catch (error) {
        // grpc-js refuses targets it cannot parse with a plain Error.
        throw ImageBindError.invalidArgument(
          `cannot use address ${JSON.stringify(target)}: ${String(error)}`,
          'addresses',
          error,
        );
      }
    });
    this.runner = new CallRunner({
      channels: this.channels,
      apiKey: this.options.apiKey,
      retry: this.options.retry,
      isClosed: () => this.closed,
    });
  }

  /**
   * Answers an instruction about multimodal inputs, streaming the answer:
   *
   * ```ts
   * for await (const chunk of client.generate({ inputs: [image('cat.jpg')], instruction: 'Describe it.' })) {
   *   process.stdout.write(chunk.text);
   * }
   * ```
   *
   * The call starts when iteration does. Its default deadline is the client's `streamTimeoutMs`.
   */
  generate(request: GenerateRequest, options: CallOptions = {}): GenerateStream {
    const requestId = options.requestId ?? randomUUID();
    return new GenerateStream(requestId, (cancelSignal) =>
      this.runGenerate(request, { ...options, requestId }, cancelSignal),
    );
  }

  /** Embeds each input (and optionally their fusion and its cache-blended version). */
  async embed(request: EmbedRequest, options?: CallOptions): Promise<EmbedResult> {
    const { wire, normalize } = toEmbedRequest(request);
    const call = withRequestId(options);
    const response = await this.runner.unary(gateway.embed, wire, call, this.options.timeoutMs);
    return decodingResponse(call.requestId, () => toEmbedResult(response, normalize));
  }

  /**
   * Embeds several independent requests in one call (the gateway's EmbedMany), which costs the
   * client and the gateway much less than as many {@link embed} calls. Each request gets what
   * `embed` would have given it: `{ ok: true, result }`, or `{ ok: false, error }` with the
   * ImageBindError `embed` would have thrown (same `code`, `domainCode`, `details`, `field`,
   * `retryAfterMs`; the request id is the call's). One failed request does not fail the others,
   * and a request the SDK refuses before sending is not sent. The call itself can still fail as
   * a whole, and then throws as `embed` does: deadline, cancellation, RESOURCE_EXHAUSTED from the
   * rate limit (every request counts against it), UNAVAILABLE after the retries, or
   * INVALID_ARGUMENT on `requests` when there are more than the gateway takes in one call
   * (`GATEWAY_EMBED_MANY_MAX_REQUESTS`, default 64, and at most the API key's rate-limit burst).
   */
  async embedMany(requests: readonly EmbedRequest[], options?: CallOptions): Promise<EmbedManyResult[]> {
    if (!Array.isArray(requests) || requests.length === 0) {
      throw ImageBindError.invalidArgument('requests: pass at least one EmbedRequest', 'requests');
    }
    const outcomes: EmbedManyResult[] = new Array<EmbedManyResult>(requests.length);
    const wire: gatewayV1.EmbedRequest[] = [];
    const sent: { readonly index: number; readonly normalize: boolean }[] = [];
    (requests as readonly unknown[]).forEach((request, index) => {
      try {
        const checked = toEmbedRequest(request as EmbedRequest);
        wire.push(checked.wire);
        sent.push({ index, normalize: checked.normalize });
      } catch (error) {
        if (!(error instanceof ImageBindError)) throw error;
        outcomes[index] = { ok: false, error };
      }
    });
    if (wire.length === 0) return outcomes;
    const call = withRequestId(options);
    const response = await this.runner.unary(
      gateway.embedMany,
      { requests: wire },
      call,
      this.options.timeoutMs,
    );
    decodingResponse(call.requestId, () => {
      if (response.results.length !== wire.length) {
        throw new ImageBindError({
          code: 'INTERNAL',
          details: `malformed response: ${response.results.length} results for ${wire.length} requests`,
        });
      }
    });
    sent.forEach(({ index, normalize }, k) => {
      outcomes[index] = toEmbedManyResult(response.results[k]!, normalize, call.requestId);
    });
    return outcomes;
  }

  /** Finds the stored items nearest to the fused query of the inputs, best first. */
  async search(request: SearchRequest, options?: CallOptions): Promise<gatewayV1.SearchHit[]> {
    const wire: gatewayV1.SearchRequest = {
      inputs: checkInputs(request?.inputs),
      k: checkOptional(request.k, 'number', 'k'),
      collection: checkOptional(request.collection, 'string', 'collection') ?? '',
    };
    const response = await this.runner.unary(gateway.search, wire, options, this.options.timeoutMs);
    return response.hits;
  }

  /** Lists the model components the deployment serves and whether they are ready. */
  async listModels(options?: CallOptions): Promise<gatewayV1.ModelInfo[]> {
    const response = await this.runner.unary(gateway.listModels, {}, options, this.options.timeoutMs);
    return response.models;
  }

  /**
   * Enqueues a batch job. Retrying is safe because the request carries an idempotency key
   * (`clientToken`, generated when not given): a resubmission returns the same job.
   */
  async submitBatchJob(request: SubmitBatchJobRequest, options?: CallOptions): Promise<gatewayV1.BatchJob> {
    const wire = toSubmitRequest(request);
    const call = withRequestId(options);
    const response = await this.runner.unary(jobs.submitBatchJob, wire, call, this.options.timeoutMs);
    return decodingResponse(call.requestId, () => required(response.job, 'job'));
  }

  /** Returns a job's state and progress. */
  async getBatchJob(jobId: string, options?: CallOptions): Promise<gatewayV1.BatchJob> {
    const wire = { jobId: checkJobId(jobId) };
    const call = withRequestId(options);
    const response = await this.runner.unary(jobs.getBatchJob, wire, call, this.options.timeoutMs);
    return decodingResponse(call.requestId, () => required(response.job, 'job'));
  }

  /** Lists the caller's jobs, newest first, one page at a time. */
  async listBatchJobs(request: ListBatchJobsRequest = {}, options?: CallOptions): Promise<BatchJobPage> {
    const wire: gatewayV1.ListBatchJobsRequest = {
      pageSize: checkOptional(request.pageSize, 'number', 'pageSize') ?? 0,
      pageToken: checkOptional(request.pageToken, 'string', 'pageToken') ?? '',
      states: [...(request.states ?? [])],
    };
    const response = await this.runner.unary(jobs.listBatchJobs, wire, options, this.options.timeoutMs);
    return {
      jobs: response.jobs,
      nextPageToken: response.nextPageToken === '' ? undefined : response.nextPageToken,
    };
  }

  /** Cancels a job. Not retried (batch.proto declares no idempotency): a repeat can answer differently. */
  async cancelBatchJob(jobId: string, options?: CallOptions): Promise<gatewayV1.BatchJob> {
    const wire = { jobId: checkJobId(jobId) };
    const call = withRequestId(options);
    const response = await this.runner.unary(jobs.cancelBatchJob, wire, call, this.options.timeoutMs);
    return decodingResponse(call.requestId, () => required(response.job, 'job'));
  }

  /**
   * Streams a job's item results in item order. A stream broken by UNAVAILABLE is resumed after
   * the last item received, so no item is repeated or skipped. With `follow`, pass a `timeoutMs`
   * long enough for the job (or `Infinity`): the default is the client's `streamTimeoutMs`.
   */
  async *streamBatchJobResults(
    jobId: string,
    request: StreamBatchJobResultsOptions = {},
    options?: CallOptions,
  ): AsyncGenerator<BatchItemResult, void, undefined> {
    const startIndex = checkOptional(request.startIndex, 'number', 'startIndex') ?? 0;
    if (!Number.isInteger(startIndex) || startIndex < 0) {
      throw ImageBindError.invalidArgument(
        `startIndex must be an integer >= 0, got ${startIndex}`,
        'startIndex',
      );
    }
    const wire: gatewayV1.StreamBatchJobResultsRequest = {
      jobId: checkJobId(jobId),
      startIndex,
      follow: checkOptional(request.follow, 'boolean', 'follow') ?? false,
    };
    const call = withRequestId(options);
    const results = this.runner.stream(
      jobs.streamBatchJobResults,
      wire,
      call,
      this.options.streamTimeoutMs,
      (last) =>
        // The contract's resume rule: ask again from the item after the last one received.
        last === undefined ? wire : { ...wire, startIndex: last.index + 1 },
    );
    for await (const result of results) yield decodingResponse(call.requestId, () => toItemResult(result));
  }

  /**
   * Closes the client's connections. Calls in flight finish; new calls fail with
   * FAILED_PRECONDITION.
   */
  close(): void {
    this.closed = true;
    for (const channel of this.channels) channel.close();
  }

  private async *runGenerate(
    request: GenerateRequest,
    options: CallOptions & { readonly requestId: string },
    cancelSignal: AbortSignal,
  ): AsyncGenerator<GenerateChunk, void, undefined> {
    const wire = toGenerateRequest(request);
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
      throw ImageBindError.invalidArgument(
        'signal must be an AbortSignal (e.g. from new AbortController())',
        'signal',
      );
    }
    const signal =
      options.signal === undefined ? cancelSignal : AbortSignal.any([cancelSignal, options.signal]);
    const responses = this.runner.stream(
      gateway.generate,
      wire,
      { ...options, signal },
      this.options.streamTimeoutMs,
      // Restarting is invisible only while nothing was shown: after a token, a retry would
      // repeat or change text the caller already has.
      (last) => (last === undefined ? wire : undefined),
    );
    for await (const response of responses) yield toChunk(response);
  }
}

function channelCredentials(tls: TlsOptions | undefined): ChannelCredentials {
  if (tls === undefined) return credentials.createInsecure();
  try {
    return credentials.createSsl(tls.rootCerts ?? null, tls.privateKey ?? null, tls.certChain ?? null);
  } catch (error) {
    throw ImageBindError.invalidArgument(
      `tls: ${(error as Error).message}; pass PEM certificates and key as Buffers`,
      'tls',
      error,
    );
  }
}

function withRequestId(options: CallOptions | undefined): CallOptions & { readonly requestId: string } {
  return { ...options, requestId: options?.requestId ?? randomUUID() };
}

/** Runs response decoding, tagging a contract violation with the call's request id. */
function decodingResponse<T>(requestId: string, decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (!(error instanceof ImageBindError)) throw error;
    throw new ImageBindError({ code: error.code, details: error.details, requestId, cause: error });
  }
}

/** An embed request checked and put in wire form; `normalize` stays on this side. */
function toEmbedRequest(request: EmbedRequest): { wire: gatewayV1.EmbedRequest; normalize: boolean } {
  return {
    wire: {
      inputs: checkInputs(request?.inputs),
      includeFused: checkOptional(request.includeFused, 'boolean', 'includeFused') ?? false,
      cache: request.cache,
    },
    normalize: checkOptional(request.normalize, 'boolean', 'normalize') ?? false,
  };
}

function toEmbedResult(response: gatewayV1.EmbedResponse, normalize: boolean): EmbedResult {
  return {
    embeddings: response.embeddings.map((e, i) => {
      const vector = decodeFloat32Tensor(
        required(e.embedding, `embeddings[${i}].embedding`),
        `embeddings[${i}]`,
      ).values;
      return { modality: e.modality, vector: normalize ? unitLength(vector) : vector };
    }),
    ...(response.fused === undefined ? {} : { fused: decodeFloat32Tensor(response.fused, 'fused').values }),
    ...(response.cached === undefined
      ? {}
      : { cached: decodeFloat32Tensor(response.cached, 'cached').values }),
  };
}

/**
 * One EmbedMany result as embed would have ended: its decoded response, or the ImageBindError
 * the same status would have become (the fields the trailers carry for embed travel in
 * EmbedError here).
 */
function toEmbedManyResult(
  result: gatewayV1.EmbedManyResult,
  normalize: boolean,
  requestId: string,
): EmbedManyResult {
  try {
    const outcome = decodingResponse(requestId, () => required(result.result, 'results[].result'));
    if (outcome.$case === 'response') {
      return { ok: true, result: decodingResponse(requestId, () => toEmbedResult(outcome.value, normalize)) };
    }
    const e = outcome.value;
    return {
      ok: false,
      error: new ImageBindError({
        // A failure with status OK breaks the contract; gRPC itself reads unknown codes as UNKNOWN.
        code: e.statusCode === 0 ? 'UNKNOWN' : grpcStatusName(e.statusCode),
        details: e.message,
        ...(e.code === '' ? {} : { domainCode: e.code }),
        ...(e.field === '' ? {} : { field: e.field }),
        ...(e.retryAfterMs === undefined ? {} : { retryAfterMs: e.retryAfterMs }),
        requestId,
      }),
    };
  } catch (error) {
    if (!(error instanceof ImageBindError)) throw error;
    return { ok: false, error };
  }
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) {
    throw new ImageBindError({ code: 'INTERNAL', details: `malformed response: ${what} is missing` });
  }
  return value;
}

function checkInputs(inputs: unknown, field = 'inputs'): gatewayV1.MultimodalInput[] {
  if (!Array.isArray(inputs) || inputs.length === 0) {
    throw ImageBindError.invalidArgument(
      `${field}: pass at least one input, built with image(), audio(), video(), pointCloud(), text(), uri() or embedding()`,
      field,
    );
  }
  inputs.forEach((input: unknown, i) => {
    const candidate = input as Partial<gatewayV1.MultimodalInput> | null;
    if (typeof candidate !== 'object' || candidate === null || typeof candidate.modality !== 'number') {
      throw ImageBindError.invalidArgument(
        `${field}[${i}] is not an input; build it with image(), audio(), video(), pointCloud(), text(), uri() or embedding()`,
        `${field}[${i}]`,
      );
    }
  });
  return inputs as gatewayV1.MultimodalInput[];
}

interface TypeNames {
  string: string;
  number: number;
  boolean: boolean;
}

function checkOptional<K extends keyof TypeNames>(
  value: unknown,
  type: K,
  field: string,
): TypeNames[K] | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== type || (type === 'number' && !Number.isFinite(value))) {
    throw ImageBindError.invalidArgument(`${field} must be a ${type}, got ${JSON.stringify(value)}`, field);
  }
  return value as TypeNames[K];
}

function checkJobId(jobId: unknown): string {
  if (typeof jobId !== 'string' || jobId === '') {
    throw ImageBindError.invalidArgument('jobId must be a non-empty string (BatchJob.jobId)', 'jobId');
  }
  return jobId;
}

function toGenerateRequest(request: GenerateRequest): gatewayV1.GenerateRequest {
  const inputs = checkInputs(request?.inputs);
  if (typeof request.instruction !== 'string') {
    throw ImageBindError.invalidArgument(
      'instruction must be a string (the question to answer)',
      'instruction',
    );
  }
  const maxNewTokens = checkOptional(request.maxNewTokens, 'number', 'maxNewTokens');
  return {
    inputs,
    instruction: request.instruction,
    input: checkOptional(request.input, 'string', 'input') ?? '',
    cache: request.cache,
    sampling: request.sampling,
    stopping: maxNewTokens === undefined ? undefined : { maxNewTokens },
  };
}

function toSubmitRequest(request: SubmitBatchJobRequest): gatewayV1.SubmitBatchJobRequest {
  const kind: unknown = request?.kind;
  if (typeof kind !== 'number' || kind <= 0 || !(kind in gatewayV1.BatchJobKind)) {
    throw ImageBindError.invalidArgument(
      'kind must be a BatchJobKind: BATCH_JOB_KIND_GENERATE, _EMBED, _INDEX_BUILD or _INDEX_IMPORT',
      'kind',
    );
  }
  const items = request.items ?? [];
  const manifestUri = checkOptional(request.manifestUri, 'string', 'manifestUri') ?? '';
  if ((items.length === 0) === (manifestUri === '')) {
    throw ImageBindError.invalidArgument(
      'pass either items or manifestUri, not both and not neither',
      'items',
    );
  }
  const options = request.options;
  return {
    kind,
    items: items.map((item, i) => ({
      itemId: checkOptional(item.itemId, 'string', `items[${i}].itemId`) ?? '',
      inputs: checkInputs(item.inputs, `items[${i}].inputs`),
      instruction: checkOptional(item.instruction, 'string', `items[${i}].instruction`) ?? '',
      input: checkOptional(item.input, 'string', `items[${i}].input`) ?? '',
    })),
    manifestUri,
    options: options === undefined ? undefined : { instruction: '', collection: '', ...options },
    clientToken: checkOptional(request.clientToken, 'string', 'clientToken') ?? randomUUID(),
  };
}

function toItemResult(response: gatewayV1.StreamBatchJobResultsResponse): BatchItemResult {
  const base = { index: response.index, itemId: response.itemId };
  const result = response.result;
  switch (result?.$case) {
    case 'text':
      return { ...base, kind: 'text', text: result.value };
    case 'embedding':
      return {
        ...base,
        kind: 'embedding',
        embedding: decodeFloat32Bytes(result.value, `item ${response.index} embedding`),
      };
    case 'pointId':
      return { ...base, kind: 'pointId', pointId: result.value };
    case 'error':
      return { ...base, kind: 'error', error: result.value };
    case undefined:
      return { ...base, kind: 'unknown' };
  }
}

/** `v / ‖v‖` in float32 (a zero vector stays zero). */
function unitLength(v: Float32Array): Float32Array {
  let sum = 0;
  for (const x of v) sum += x * x;
  const norm = Math.sqrt(sum);
  return norm > 0 ? Float32Array.from(v, (x) => x / norm) : v;
}
