// `ibllm batch` as a user runs it (the compiled CLI, `npx tsc -b tools/cli` first) against a
// scripted BatchJobService on loopback: a plain grpc-js Server with the generated definitions.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Server,
  ServerCredentials,
  status as grpcStatus,
  type Metadata,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type StatusObject,
} from '@grpc/grpc-js';
import { BatchJobKind, BatchJobState, gatewayV1, Modality } from '@imagebind-llm/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const BIN = join(__dirname, '..', 'bin', 'ibllm.js');

type Unary<Req, Res> = (request: Req, metadata: Metadata) => Res | Partial<StatusObject>;
interface Script {
  submit?: Unary<gatewayV1.SubmitBatchJobRequest, gatewayV1.BatchJob>;
  get?: Unary<gatewayV1.GetBatchJobRequest, gatewayV1.BatchJob>;
  cancel?: Unary<gatewayV1.CancelBatchJobRequest, gatewayV1.BatchJob>;
  list?: Unary<gatewayV1.ListBatchJobsRequest, gatewayV1.ListBatchJobsResponse>;
  results?: (request: gatewayV1.StreamBatchJobResultsRequest) => {
    items: gatewayV1.StreamBatchJobResultsResponse[];
    thenFail?: Partial<StatusObject>;
  };
}

interface Recorded {
  readonly method: string;
  readonly request: unknown;
  readonly metadata: Metadata;
}

let server: Server;
let address: string;
let script: Script = {};
let calls: Recorded[] = [];
let work: string;

function isStatus(value: unknown): value is Partial<StatusObject> & { code: grpcStatus } {
  return typeof value === 'object' && value !== null && 'code' in value && 'details' in value;
}

function unary<Req, Res, Out>(
  method: string,
  handler: () => Unary<Req, Res> | undefined,
  wrap: (value: Res) => Out,
) {
  return (call: ServerUnaryCall<Req, Out>, callback: sendUnaryData<Out>): void => {
    calls.push({ method, request: call.request, metadata: call.metadata });
    const h = handler();
    if (h === undefined) {
      callback({ code: grpcStatus.UNIMPLEMENTED, details: `fake: ${method} is not scripted` });
      return;
    }
    const answer = h(call.request, call.metadata);
    // A scripted answer with a status code is a failure; anything else is the response.
    if (isStatus(answer)) callback(answer);
    else callback(null, wrap(answer as Res));
  };
}

beforeAll(async () => {
  server = new Server();
  const impl: gatewayV1.BatchJobServiceServer = {
    submitBatchJob: unary(
      'submit',
      () => script.submit,
      (job) => ({ job }),
    ),
    getBatchJob: unary(
      'get',
      () => script.get,
      (job) => ({ job }),
    ),
    cancelBatchJob: unary(
      'cancel',
      () => script.cancel,
      (job) => ({ job }),
    ),
    listBatchJobs: unary(
      'list',
      () => script.list,
      (page) => page,
    ),
    streamBatchJobResults: (
      call: ServerWritableStream<
        gatewayV1.StreamBatchJobResultsRequest,
        gatewayV1.StreamBatchJobResultsResponse
      >,
    ) => {
      calls.push({ method: 'results', request: call.request, metadata: call.metadata });
      const answer = script.results?.(call.request);
      if (answer === undefined) {
        call.emit('error', { code: grpcStatus.UNIMPLEMENTED, details: 'fake: results not scripted' });
        return;
      }
      for (const item of answer.items) call.write(item);
      if (answer.thenFail !== undefined) call.emit('error', answer.thenFail);
      else call.end();
    },
  };
  server.addService(gatewayV1.BatchJobServiceService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  address = `127.0.0.1:${port}`;
  work = mkdtempSync(join(tmpdir(), 'ibllm-batch-'));
});

afterAll(() => {
  server.forceShutdown();
  rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  script = {};
  calls = [];
});

interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI asynchronously: the fake server lives in this process and must keep answering. */
async function ibllm(args: string[], withGateway = true): Promise<RunResult> {
  const child = spawn(
    process.execPath,
    [BIN, 'batch', ...args, ...(withGateway ? ['--gateway', address] : [])],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { status, stdout, stderr };
}

function job(
  state: BatchJobState,
  progress: Partial<gatewayV1.BatchJobProgress> = {},
  jobId = 'job-1',
): gatewayV1.BatchJob {
  return {
    jobId,
    kind: BatchJobKind.BATCH_JOB_KIND_EMBED,
    state,
    progress: { total: 3, succeeded: 0, failed: 0, cancelled: 0, ...progress },
    createTime: new Date('2025-01-02T03:04:05.000Z'),
    errorMessage: '',
  };
}

function callsTo(method: string): Recorded[] {
  return calls.filter((c) => c.method === method);
}

function float32Bytes(values: readonly number[]): Buffer {
  const data = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => data.writeFloatLE(v, i * 4));
  return data;
}

function writeManifest(name: string, lines: readonly unknown[]): string {
  const path = join(work, name);
  writeFileSync(path, `${lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n')}\n`);
  return path;
}

describe('ibllm batch submit', () => {
  it('sends file inputs inline, uri inputs through, text as text, with a client token stable across runs', async () => {
    const clip = randomBytes(64);
    writeFileSync(join(work, 'clip.wav'), clip);
    const manifest = writeManifest('items.jsonl', [
      { id: 'item-1', inputs: [{ modality: 'image', uri: 'https://example.com/dog.jpg', weight: 2 }] },
      {
        id: 'item-2',
        inputs: [
          { modality: 'text', text: 'a dog' },
          { modality: 'audio', file: 'clip.wav' },
        ],
      },
      '',
    ]);
    script.submit = () => job(BatchJobState.BATCH_JOB_STATE_QUEUED);

    const first = await ibllm(['submit', '--kind', 'embed', '--manifest', manifest]);
    expect(first.stderr).toContain('job job-1 (embed, 2 items) is QUEUED');
    expect(first.status).toBe(0);
    expect(first.stdout).toBe('job-1\n');
    const second = await ibllm(['submit', '--kind', 'embed', '--manifest', manifest]);
    expect(second.status).toBe(0);

    const [a, b] = callsTo('submit').map((c) => c.request as gatewayV1.SubmitBatchJobRequest);
    expect(a!.kind).toBe(BatchJobKind.BATCH_JOB_KIND_EMBED);
    expect(a!.manifestUri).toBe('');
    expect(a!.items.map((i) => i.itemId)).toEqual(['item-1', 'item-2']);
    expect(a!.items[0]!.inputs).toEqual([
      {
        modality: Modality.MODALITY_IMAGE,
        weight: 2,
        source: { $case: 'uri', value: 'https://example.com/dog.jpg' },
        mediaType: '',
      },
    ]);
    const [textInput, audioInput] = a!.items[1]!.inputs;
    expect(textInput).toMatchObject({
      modality: Modality.MODALITY_TEXT,
      source: { $case: 'text', value: 'a dog' },
    });
    expect(audioInput!.modality).toBe(Modality.MODALITY_AUDIO);
    expect(audioInput!.mediaType).toBe('audio/wav');
    expect(audioInput!.source?.$case).toBe('content');
    expect(Buffer.compare(audioInput!.source!.value as Buffer, clip)).toBe(0);
    expect(a!.clientToken).toMatch(/^ibllm-[0-9a-f]{40}$/);
    expect(b!.clientToken).toBe(a!.clientToken);

    // Different work (the local file changed) is a different job; an explicit token wins.
    writeFileSync(join(work, 'clip.wav'), randomBytes(64));
    expect((await ibllm(['submit', '--kind', 'embed', '--manifest', manifest])).status).toBe(0);
    expect(
      (await ibllm(['submit', '--kind', 'embed', '--manifest', manifest, '--client-token', 'mine'])).status,
    ).toBe(0);
    const [, , c, d] = callsTo('submit').map((x) => x.request as gatewayV1.SubmitBatchJobRequest);
    expect(c!.clientToken).not.toBe(a!.clientToken);
    expect(d!.clientToken).toBe('mine');
  });

  it('reports every manifest error with its line number and submits nothing', async () => {
    writeFileSync(join(work, 'empty.wav'), '');
    const manifest = writeManifest('bad.jsonl', [
      { id: 'ok', inputs: [{ modality: 'text', text: 'fine' }] },
      '{"id": "broken"',
      { id: 'ok', inputs: [{ modality: 'imgae', uri: 'https://example.com/a.jpg' }] },
      {
        inputs: [
          { modality: 'audio', file: 'missing.wav' },
          { modality: 'image', uri: 'https://x/y', weight: 0 },
        ],
      },
      { inputs: [] },
      { inputs: [{ modality: 'audio', file: 'empty.wav' }], extra: 1 },
      { inputs: [{ modality: 'text', text: 'a', uri: 'https://x/t' }] },
    ]);
    script.submit = () => job(BatchJobState.BATCH_JOB_STATE_QUEUED);

    const r = await ibllm(['submit', '--kind', 'embed', '--manifest', manifest]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    const at = (line: number): string[] => lines.filter((l) => l.startsWith(`${manifest}:${line}: `));
    expect(at(1)).toEqual([]);
    expect(at(2)[0]).toContain('not valid JSON');
    expect(at(3).join('\n')).toContain('id "ok" is already used on line 1');
    expect(at(3).join('\n')).toContain('inputs[0].modality must be one of');
    expect(at(4).join('\n')).toContain('inputs[0].file: cannot read');
    expect(at(4).join('\n')).toContain('ENOENT');
    expect(at(4).join('\n')).toContain('inputs[1].weight must be a number > 0');
    expect(at(5)[0]).toContain('inputs must be a non-empty array');
    expect(at(6).join('\n')).toContain('unknown key "extra"');
    expect(at(6).join('\n')).toContain('is empty');
    expect(at(7)[0]).toContain('needs exactly one of "uri", "text" or "file"');
    expect(lines.at(-1)).toBe(`ibllm: ${manifest}: 9 errors; nothing was submitted`);
    expect(lines).toHaveLength(10);
    expect(calls).toEqual([]);
  });

  it('needs an instruction per item or --instruction for generate jobs', async () => {
    const manifest = writeManifest('gen.jsonl', [
      {
        id: 'a',
        inputs: [{ modality: 'image', uri: 'https://example.com/a.jpg' }],
        instruction: 'What is it?',
      },
      { id: 'b', inputs: [{ modality: 'image', uri: 'https://example.com/b.jpg' }] },
    ]);
    script.submit = () => job(BatchJobState.BATCH_JOB_STATE_QUEUED);
    const bad = await ibllm(['submit', '--kind', 'generate', '--manifest', manifest]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(`${manifest}:2: needs an "instruction"`);
    expect(calls).toEqual([]);

    const good = await ibllm([
      'submit',
      '--kind',
      'generate',
      '--manifest',
      manifest,
      '--instruction',
      'Describe.',
    ]);
    expect(good.status).toBe(0);
    const request = callsTo('submit')[0]!.request as gatewayV1.SubmitBatchJobRequest;
    expect(request.kind).toBe(BatchJobKind.BATCH_JOB_KIND_GENERATE);
    expect(request.options?.instruction).toBe('Describe.');
    expect(request.items.map((i) => i.instruction)).toEqual(['What is it?', '']);
  });

  it('passes --manifest-uri to the server and prints the job as JSON with --json', async () => {
    script.submit = () => job(BatchJobState.BATCH_JOB_STATE_QUEUED);
    const r = await ibllm([
      'submit',
      '--kind',
      'index-build',
      '--manifest-uri',
      'https://example.com/m.jsonl',
      '--collection',
      'photos',
      '--json',
    ]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ jobId: 'job-1', state: 'BATCH_JOB_STATE_QUEUED' });
    const request = callsTo('submit')[0]!.request as gatewayV1.SubmitBatchJobRequest;
    expect(request).toMatchObject({
      kind: BatchJobKind.BATCH_JOB_KIND_INDEX_BUILD,
      items: [],
      manifestUri: 'https://example.com/m.jsonl',
      options: { collection: 'photos' },
    });
  });

  it('prints a server INVALID_ARGUMENT as one line and exits 2; sends the API key from a file', async () => {
    writeFileSync(join(work, 'key.txt'), 'sk-test-123\n');
    const manifest = writeManifest('one.jsonl', [
      { inputs: [{ modality: 'image', uri: 'https://evil.test/x.jpg' }] },
    ]);
    script.submit = () => ({
      code: grpcStatus.INVALID_ARGUMENT,
      details: 'items[0].inputs[0].uri: host evil.test is not on the allow-list',
    });
    const r = await ibllm([
      'submit',
      '--kind',
      'embed',
      '--manifest',
      manifest,
      '--api-key-file',
      join(work, 'key.txt'),
    ]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'ibllm: INVALID_ARGUMENT: items[0].inputs[0].uri: host evil.test is not on the allow-list\n',
    );
    expect(callsTo('submit')[0]!.metadata.get('authorization')).toEqual(['Bearer sk-test-123']);
  });

  it('--wait follows the job and exits with its final status', async () => {
    const manifest = writeManifest('wait.jsonl', [{ inputs: [{ modality: 'text', text: 'x' }] }]);
    script.submit = () => job(BatchJobState.BATCH_JOB_STATE_QUEUED);
    let polls = 0;
    script.get = () =>
      ++polls < 3
        ? job(BatchJobState.BATCH_JOB_STATE_RUNNING, { succeeded: polls })
        : job(BatchJobState.BATCH_JOB_STATE_COMPLETED_WITH_ERRORS, { succeeded: 2, failed: 1 });
    const r = await ibllm(['submit', '--kind', 'embed', '--manifest', manifest, '--wait', '--interval', '1']);
    expect(r.stdout).toBe('job-1\n');
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      'job job-1 COMPLETED_WITH_ERRORS 3/3 (100%): 2 succeeded, 1 failed, 0 cancelled',
    );
    expect(r.status).toBe(3);
  });
});

describe('ibllm batch status', () => {
  it('shows state and progress once', async () => {
    script.get = () => job(BatchJobState.BATCH_JOB_STATE_RUNNING, { succeeded: 1, failed: 1 });
    const r = await ibllm(['status', 'job-1']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('state     RUNNING');
    expect(r.stdout).toContain('progress  2/3 done: 1 succeeded, 1 failed, 0 cancelled');
    expect((callsTo('get')[0]!.request as gatewayV1.GetBatchJobRequest).jobId).toBe('job-1');
  });

  const finals: {
    name: string;
    state: BatchJobState;
    progress: Partial<gatewayV1.BatchJobProgress>;
    code: number;
  }[] = [
    {
      name: 'SUCCEEDED',
      state: BatchJobState.BATCH_JOB_STATE_SUCCEEDED,
      progress: { succeeded: 3 },
      code: 0,
    },
    {
      name: 'COMPLETED_WITH_ERRORS',
      state: BatchJobState.BATCH_JOB_STATE_COMPLETED_WITH_ERRORS,
      progress: { succeeded: 1, failed: 2 },
      code: 3,
    },
    {
      name: 'FAILED',
      state: BatchJobState.BATCH_JOB_STATE_FAILED,
      progress: { succeeded: 1, failed: 2 },
      code: 4,
    },
    {
      name: 'CANCELLED',
      state: BatchJobState.BATCH_JOB_STATE_CANCELLED,
      progress: { succeeded: 1, cancelled: 2 },
      code: 4,
    },
  ];
  it.each(finals)(
    '--follow on a non-TTY prints plain lines until $name, then exits $code',
    async ({ name, state, progress, code }) => {
      const sequence = [
        job(BatchJobState.BATCH_JOB_STATE_QUEUED),
        job(BatchJobState.BATCH_JOB_STATE_RUNNING),
        job(BatchJobState.BATCH_JOB_STATE_RUNNING, { succeeded: 1 }),
        job(BatchJobState.BATCH_JOB_STATE_RUNNING, { succeeded: 1 }),
        job(state, progress),
      ];
      let poll = 0;
      script.get = () => sequence[Math.min(poll++, sequence.length - 1)]!;
      const r = await ibllm(['status', 'job-1', '--follow', '--interval', '1']);
      expect(r.status).toBe(code);
      expect(r.stderr).not.toContain('\r');
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toBe('job job-1 QUEUED 0/3 (0%): 0 succeeded, 0 failed, 0 cancelled');
      const done = (progress.succeeded ?? 0) + (progress.failed ?? 0) + (progress.cancelled ?? 0);
      expect(lines.at(-1)).toBe(
        `job job-1 ${name} ${done}/3 (100%): ${progress.succeeded ?? 0} succeeded, ` +
          `${progress.failed ?? 0} failed, ${progress.cancelled ?? 0} cancelled`,
      );
      // Only changes are printed: no two consecutive lines alike.
      for (let i = 1; i < lines.length; i++) expect(lines[i]).not.toBe(lines[i - 1]);
      expect(r.stdout).toContain(`state     ${name}`);
      expect(callsTo('get')).toHaveLength(sequence.length);
    },
  );

  it('--follow rides out RESOURCE_EXHAUSTED from a busy gateway and still ends with the job', async () => {
    const busy = { code: grpcStatus.RESOURCE_EXHAUSTED, details: 'rate limit: retry later' };
    const sequence = [
      job(BatchJobState.BATCH_JOB_STATE_RUNNING),
      busy,
      busy,
      busy,
      job(BatchJobState.BATCH_JOB_STATE_SUCCEEDED, { succeeded: 3 }),
    ];
    let poll = 0;
    script.get = () => sequence[Math.min(poll++, sequence.length - 1)]!;
    const r = await ibllm(['status', 'job-1', '--follow', '--interval', '5']);
    expect(r.stderr).not.toContain('ibllm: RESOURCE_EXHAUSTED');
    expect(r.status).toBe(0);
    const notes = r.stderr.split('\n').filter((l) => l.includes('retrying with backoff'));
    expect(notes).toEqual([
      'the gateway answered RESOURCE_EXHAUSTED; still following job job-1, retrying with backoff',
    ]);
    expect(r.stdout).toContain('state     SUCCEEDED');
    expect(callsTo('get')).toHaveLength(sequence.length);
  });

  it('prints a server NOT_FOUND as one line and exits 1', async () => {
    script.get = () => ({ code: grpcStatus.NOT_FOUND, details: 'batch job nope not found' });
    const r = await ibllm(['status', 'nope']);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('ibllm: NOT_FOUND: batch job nope not found\n');
  });
});

describe('ibllm batch results', () => {
  const embedding = [0.1, -2.5, 3.25, 1e-7];
  const streamed: gatewayV1.StreamBatchJobResultsResponse[] = [
    { index: 1, itemId: 'b', result: { $case: 'text', value: 'a dog on a beach' } },
    { index: 2, itemId: 'c', result: { $case: 'embedding', value: float32Bytes(embedding) } },
    { index: 3, itemId: 'd', result: { $case: 'pointId', value: 42 } },
    {
      index: 4,
      itemId: 'e',
      result: { $case: 'error', value: { code: 'UNSUPPORTED_MEDIA', message: 'not an image', attempts: 2 } },
    },
  ];

  it('--out writes the streamed results as JSONL, embeddings decoded, through a renamed temp file', async () => {
    script.get = () => job(BatchJobState.BATCH_JOB_STATE_COMPLETED_WITH_ERRORS, { total: 5 });
    script.results = () => ({ items: streamed });
    const dir = mkdtempSync(join(work, 'out-'));
    const out = join(dir, 'results.jsonl');
    const r = await ibllm(['results', 'job-1', '--out', out, '--from', '1', '--follow']);
    expect(r.stderr).toContain(`wrote 4 results to ${out} (1 failed items)`);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('');
    expect(readdirSync(dir)).toEqual(['results.jsonl']);
    const text = readFileSync(out, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(
      text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as unknown),
    ).toEqual([
      { index: 1, item_id: 'b', text: 'a dog on a beach' },
      { index: 2, item_id: 'c', embedding: Array.from(new Float32Array(embedding)) },
      { index: 3, item_id: 'd', point_id: 42 },
      { index: 4, item_id: 'e', error: { code: 'UNSUPPORTED_MEDIA', message: 'not an image', attempts: 2 } },
    ]);
    expect(callsTo('results')[0]!.request).toEqual({ jobId: 'job-1', startIndex: 1, follow: true });
  });

  it('streams to stdout by default; on an unfinished job it says these are the results so far', async () => {
    script.get = () => job(BatchJobState.BATCH_JOB_STATE_RUNNING, { total: 5 });
    script.results = () => ({ items: streamed.slice(0, 2) });
    const r = await ibllm(['results', 'job-1']);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('the job was RUNNING: these are the results recorded so far (2 of 5)');
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { index: number; embedding?: number[] });
    expect(rows.map((row) => row.index)).toEqual([1, 2]);
    expect(new Float32Array(rows[1]!.embedding!)).toEqual(new Float32Array(embedding));
    expect(callsTo('results')[0]!.request).toEqual({ jobId: 'job-1', startIndex: 0, follow: false });
  });

  it('fails, writing no file, when a finished job streams fewer results than it holds', async () => {
    script.get = () => job(BatchJobState.BATCH_JOB_STATE_SUCCEEDED, { total: 6 });
    script.results = () => ({ items: streamed });
    const dir = mkdtempSync(join(work, 'short-'));
    const out = join(dir, 'results.jsonl');
    const r = await ibllm(['results', 'job-1', '--out', out, '--from', '1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `incomplete export: the server sent 4 of the job's 5 results from index 1; ${out} was not written`,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('leaves no file behind when the stream fails part way', async () => {
    script.get = () => job(BatchJobState.BATCH_JOB_STATE_SUCCEEDED);
    script.results = () => ({
      items: streamed.slice(0, 2),
      thenFail: { code: grpcStatus.PERMISSION_DENIED, details: 'job belongs to another tenant' },
    });
    const dir = mkdtempSync(join(work, 'fail-'));
    const out = join(dir, 'results.jsonl');
    const r = await ibllm(['results', 'job-1', '--out', out]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('ibllm: PERMISSION_DENIED: job belongs to another tenant\n');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('ibllm batch cancel and list', () => {
  it('cancel prints the resulting state', async () => {
    script.cancel = () => job(BatchJobState.BATCH_JOB_STATE_CANCELLING);
    const r = await ibllm(['cancel', 'job-7']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('CANCELLING\n');
    expect(callsTo('cancel')[0]!.request).toEqual({ jobId: 'job-7' });
  });

  it('list pages through jobs in the asked states up to --limit', async () => {
    script.list = (request) =>
      request.pageToken === ''
        ? {
            jobs: [
              job(BatchJobState.BATCH_JOB_STATE_RUNNING, {}, 'j1'),
              job(BatchJobState.BATCH_JOB_STATE_RUNNING, {}, 'j2'),
            ],
            nextPageToken: 'p2',
          }
        : {
            jobs: [
              job(BatchJobState.BATCH_JOB_STATE_QUEUED, {}, 'j3'),
              job(BatchJobState.BATCH_JOB_STATE_QUEUED, {}, 'j4'),
            ],
            nextPageToken: 'p3',
          };
    const r = await ibllm(['list', '--state', 'running', '--state', 'QUEUED', '--limit', '3']);
    expect(r.status).toBe(0);
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/).slice(0, 3)),
    ).toEqual([
      ['j1', 'embed', 'RUNNING'],
      ['j2', 'embed', 'RUNNING'],
      ['j3', 'embed', 'QUEUED'],
    ]);
    const requests = callsTo('list').map((c) => c.request as gatewayV1.ListBatchJobsRequest);
    expect(requests).toEqual([
      {
        pageSize: 3,
        pageToken: '',
        states: [BatchJobState.BATCH_JOB_STATE_RUNNING, BatchJobState.BATCH_JOB_STATE_QUEUED],
      },
      {
        pageSize: 1,
        pageToken: 'p2',
        states: [BatchJobState.BATCH_JOB_STATE_RUNNING, BatchJobState.BATCH_JOB_STATE_QUEUED],
      },
    ]);
  });
});
