import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  BatchJobKind,
  type BatchItemInput,
  type BatchJob,
  type BatchJobState,
  type CallOptions,
  type ImageBindClient,
  isImageBindError,
} from '@imagebind-llm/client';
import { defaultClientToken } from '../batch/client-token';
import {
  connect,
  CONNECTION_OPTIONS,
  CONNECTION_USAGE,
  toCliError,
  type Connection,
} from '../batch/connection';
import {
  describeJob,
  finalExitCode,
  jobJson,
  kindName,
  parseKind,
  parseState,
  stateName,
} from '../batch/job-state';
import { DEFAULT_MAX_INPUT_BYTES, parseManifest } from '../batch/manifest';
import { ProgressReporter, type JobCounts } from '../batch/progress';
import { stderrSink } from '../progress-line';
import { writeResultsToFile, writeResultsToStream, type ExportSummary } from '../batch/results-writer';
import { CliError, optionalInt } from '../cli-error';

export const BATCH_USAGE = `ibllm batch submit --kind generate|embed|index-build|index-import
                   (--manifest FILE.jsonl | --manifest-uri URI) [--instruction TEXT]
                   [--collection NAME] [--client-token T] [--max-input-bytes N] [--wait] [--json]
ibllm batch status JOB_ID [--follow] [--interval MS] [--json]
ibllm batch results JOB_ID [--out FILE.jsonl] [--from N] [--follow]
ibllm batch cancel JOB_ID [--json]
ibllm batch list [--state S ...] [--limit N] [--json]

Batch jobs on a running gateway (BatchJobService).

submit  --manifest is JSONL, one item per line:
          {"id": "item-1", "inputs": [{"modality": "image", "uri": "https://...", "weight": 1},
                                      {"modality": "text", "text": "..."},
                                      {"modality": "audio", "file": "clips/a.wav"}],
           "instruction": "...", "input": "..."}
        modality: image, video, audio, text, point-cloud, depth, thermal, imu. "file" is read here
        (relative to the manifest's folder, at most --max-input-bytes, default 32 MiB, each) and
        sent inline; "uri" is fetched by the gateway under its own allow-list; "media_type" is an
        optional hint. instruction/input are for --kind generate (--instruction applies to every
        item). Every line is checked first; any error is reported with its line number and
        nothing is submitted (exit 2). --manifest-uri instead lets the gateway read a manifest it
        can reach. Prints the job id (--json: the job object).
        Without --client-token the idempotency key is a hash of the kind, the options and the
        manifest's items (file contents included): running the same submit again returns the job
        it already created instead of a duplicate. Pass a new --client-token to force a new job.
        --wait then follows the job as \`status --follow\` does, with its exit status.
status  state and progress (succeeded/failed/cancelled of total). --follow polls every
        --interval MS (default 1000) until the job is final: on a terminal a progress bar on
        stderr (percentage, counts, items/s, ETA), otherwise a plain line whenever the numbers
        change (at most once per second). Exit status with --follow (and submit --wait):
          0 SUCCEEDED   3 COMPLETED_WITH_ERRORS   4 FAILED or CANCELLED
        A busy or restarting gateway (RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED) does
        not end the follow: it backs off (up to 30 s, the server's retry hint first) and gives
        up only after 10 minutes without an answer.
results streams results as JSONL to stdout or --out FILE, one object per item:
          {"index": 0, "item_id": "item-1", "text": "..." | "embedding": [floats] |
           "point_id": 7 | "error": {"code": "...", "message": "...", "attempts": 3}}
        A failed item keeps its cause: the code the gateway answered (e.g. RESOURCE_EXHAUSTED
        after every retry) and how many tries it took.
        --from N starts at item index N; --follow keeps streaming until the job is final. --out
        writes a temporary file renamed into place at the end, so a partial export never
        looks complete.
cancel  cancels a job and prints its resulting state.
list    the caller's jobs, newest first; --state (repeatable: queued, running, succeeded,
        completed_with_errors, failed, cancelling, cancelled), --limit N (default 20).

${CONNECTION_USAGE}
A server error prints one line "ibllm: <code>: <message>" and exits 1 (2 for INVALID_ARGUMENT).`;

export interface BatchIo {
  /** Data (stdout). */
  readonly out: (text: string) => void;
  /** Messages (stderr), one line each. */
  readonly log: (line: string) => void;
}

/** `ibllm batch <sub> ...`; SDK errors become the one-line CliError the CLI prints. */
export async function batch(argv: string[], io: BatchIo): Promise<void> {
  const [sub, ...rest] = argv;
  if (rest.includes('--help') || rest.includes('-h')) {
    io.log(BATCH_USAGE);
    return;
  }
  try {
    switch (sub) {
      case 'submit':
        return await submit(rest, io);
      case 'status':
        return await status(rest, io);
      case 'results':
        return await results(rest, io);
      case 'cancel':
        return await cancel(rest, io);
      case 'list':
        return await list(rest, io);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.log(BATCH_USAGE);
        return;
      default:
        throw new CliError(`unknown command: batch ${sub} (try \`ibllm batch --help\`)`);
    }
  } catch (error) {
    throw toCliError(error);
  }
}

function jobIdArg(positionals: string[], command: string): string {
  if (positionals.length !== 1 || positionals[0] === '') {
    throw new CliError(`usage: ibllm batch ${command} JOB_ID ... (got ${positionals.length} arguments)`);
  }
  return positionals[0]!;
}

async function withClient<T>(
  connection: Connection,
  body: (client: ImageBindClient) => Promise<T>,
): Promise<T> {
  try {
    return await body(connection.client);
  } finally {
    connection.client.close();
  }
}

function unaryOptions(connection: Connection): CallOptions {
  return connection.timeoutMs === undefined ? {} : { timeoutMs: connection.timeoutMs };
}

function counts(job: BatchJob): JobCounts {
  const p = job.progress ?? { total: 0, succeeded: 0, failed: 0, cancelled: 0 };
  return {
    state: stateName(job.state),
    total: p.total,
    succeeded: p.succeeded,
    failed: p.failed,
    cancelled: p.cancelled,
  };
}

/**
 * Polls a job until it is final, showing its progress on stderr; returns the final job. Ctrl-C
 * stops following (the job keeps running) with exit status 130.
 */
/** Errors that `--follow` / `--wait` ride out: the job keeps running on the server meanwhile. */
const FOLLOW_TRANSIENT = new Set(['RESOURCE_EXHAUSTED', 'UNAVAILABLE', 'DEADLINE_EXCEEDED']);
const FOLLOW_MAX_BACKOFF_MS = 30_000;
const FOLLOW_GIVE_UP_MS = 10 * 60_000;

async function followJob(
  client: ImageBindClient,
  jobId: string,
  intervalMs: number,
  call: CallOptions,
  log: (line: string) => void,
): Promise<BatchJob> {
  const reporter = new ProgressReporter(stderrSink(), jobId);
  const onSigint = (): void => {
    reporter.interrupt();
    log(`stopped following job ${jobId}; it keeps running (\`ibllm batch cancel ${jobId}\` stops it)`);
    process.exit(130);
  };
  process.once('SIGINT', onSigint);
  try {
    let busySince: number | undefined;
    let backoffMs = intervalMs;
    for (;;) {
      let job: BatchJob;
      try {
        job = await client.getBatchJob(jobId, call);
      } catch (error) {
        // A busy or restarting gateway does not end the job: keep following it with backoff
        // (the server's retry hint first), and give up only after FOLLOW_GIVE_UP_MS of failures.
        if (!isImageBindError(error) || !FOLLOW_TRANSIENT.has(error.code)) throw error;
        const now = performance.now();
        busySince ??= now;
        if (now - busySince > FOLLOW_GIVE_UP_MS) throw error;
        const delay = Math.min(FOLLOW_MAX_BACKOFF_MS, Math.max(backoffMs, error.retryAfterMs ?? 0));
        if (backoffMs === intervalMs) {
          log(`the gateway answered ${error.code}; still following job ${jobId}, retrying with backoff`);
        }
        backoffMs = Math.min(FOLLOW_MAX_BACKOFF_MS, backoffMs * 2);
        await sleep(delay);
        continue;
      }
      busySince = undefined;
      backoffMs = intervalMs;
      const final = finalExitCode(job.state) !== undefined;
      reporter.update(counts(job), performance.now(), final);
      if (final) return job;
      await sleep(intervalMs);
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

/** Sets the documented exit status of a final job and says why a failed job failed. */
function finish(job: BatchJob, log: (line: string) => void): void {
  if (job.errorMessage !== '') log(`job ${job.jobId} ${stateName(job.state)}: ${job.errorMessage}`);
  process.exitCode = finalExitCode(job.state) ?? 0;
}

function intervalFlag(values: Record<string, unknown>): number {
  return optionalInt(values, 'interval', 1, 3_600_000) ?? 1000;
}

async function submit(argv: string[], io: BatchIo): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kind: { type: 'string' },
      manifest: { type: 'string' },
      'manifest-uri': { type: 'string' },
      instruction: { type: 'string' },
      collection: { type: 'string' },
      'client-token': { type: 'string' },
      'max-input-bytes': { type: 'string' },
      wait: { type: 'boolean', default: false },
      interval: { type: 'string' },
      json: { type: 'boolean', default: false },
      ...CONNECTION_OPTIONS,
    },
    allowPositionals: false,
  });
  const kind = parseKind(values.kind);
  const generate = kind === BatchJobKind.BATCH_JOB_KIND_GENERATE;
  const indexes =
    kind === BatchJobKind.BATCH_JOB_KIND_INDEX_BUILD || kind === BatchJobKind.BATCH_JOB_KIND_INDEX_IMPORT;
  const instruction = values.instruction ?? '';
  const collection = values.collection ?? '';
  if (values.instruction !== undefined && !generate)
    throw new CliError('--instruction is only for --kind generate');
  if (values.instruction !== undefined && instruction.trim() === '')
    throw new CliError('--instruction is empty');
  if (values.collection !== undefined && !indexes) {
    throw new CliError('--collection is only for --kind index-build and index-import');
  }
  const clientToken = values['client-token'];
  if (clientToken !== undefined && clientToken.trim() === '') throw new CliError('--client-token is empty');
  const maxInputBytes =
    optionalInt(values, 'max-input-bytes', 1, 1024 * 1024 * 1024) ?? DEFAULT_MAX_INPUT_BYTES;
  const interval = intervalFlag(values);
  if ((values.manifest === undefined) === (values['manifest-uri'] === undefined)) {
    throw new CliError('give --manifest FILE.jsonl or --manifest-uri URI (one of them)');
  }

  let items: BatchItemInput[] = [];
  const manifestUri = values['manifest-uri'] ?? '';
  if (values.manifest !== undefined) {
    const file = values.manifest;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new CliError(
        `--manifest: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    const parsed = parseManifest(text, {
      baseDir: dirname(resolve(file)),
      maxInputBytes,
      needsInstruction: generate && values.instruction === undefined,
      allowsInstruction: generate,
    });
    if (!parsed.ok) {
      for (const e of parsed.errors)
        io.log(`${file}${e.line === undefined ? '' : `:${e.line}`}: ${e.message}`);
      const n = parsed.errors.length;
      throw new CliError(`${file}: ${n} error${n === 1 ? '' : 's'}; nothing was submitted`);
    }
    items = parsed.items;
  } else if (manifestUri.trim() === '') {
    throw new CliError('--manifest-uri is empty');
  }

  const token = clientToken ?? defaultClientToken({ kind, instruction, collection, items, manifestUri });
  const connection = connect(values);
  await withClient(connection, async (client) => {
    const job = await client.submitBatchJob(
      {
        kind,
        ...(items.length > 0 ? { items } : { manifestUri }),
        ...(instruction !== '' || collection !== '' ? { options: { instruction, collection } } : {}),
        clientToken: token,
      },
      unaryOptions(connection),
    );
    const what = items.length > 0 ? `${items.length} items` : `manifest ${manifestUri}`;
    io.log(`job ${job.jobId} (${kindName(kind)}, ${what}) is ${stateName(job.state)}; client token ${token}`);
    if (!values.wait) {
      io.out(values.json ? `${jobJson(job)}\n` : `${job.jobId}\n`);
      return;
    }
    if (!values.json) io.out(`${job.jobId}\n`);
    const final = await followJob(client, job.jobId, interval, unaryOptions(connection), io.log);
    if (values.json) io.out(`${jobJson(final)}\n`);
    finish(final, io.log);
  });
}

async function status(argv: string[], io: BatchIo): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      follow: { type: 'boolean', default: false },
      interval: { type: 'string' },
      json: { type: 'boolean', default: false },
      ...CONNECTION_OPTIONS,
    },
    allowPositionals: true,
  });
  const jobId = jobIdArg(positionals, 'status');
  const interval = intervalFlag(values);
  const connection = connect(values);
  await withClient(connection, async (client) => {
    const job = values.follow
      ? await followJob(client, jobId, interval, unaryOptions(connection), io.log)
      : await client.getBatchJob(jobId, unaryOptions(connection));
    io.out(values.json ? `${jobJson(job)}\n` : describeJob(job));
    if (values.follow) finish(job, io.log);
  });
}

async function results(argv: string[], io: BatchIo): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      out: { type: 'string' },
      from: { type: 'string' },
      follow: { type: 'boolean', default: false },
      ...CONNECTION_OPTIONS,
    },
    allowPositionals: true,
  });
  const jobId = jobIdArg(positionals, 'results');
  const startIndex = optionalInt(values, 'from', 0, Number.MAX_SAFE_INTEGER) ?? 0;
  if (values.out === '') throw new CliError('--out is empty');
  const connection = connect(values);
  await withClient(connection, async (client) => {
    // What a complete export holds: every item from --from on, once the job is final.
    const before = await client.getBatchJob(jobId, unaryOptions(connection));
    const wasFinal = finalExitCode(before.state) !== undefined;
    const expected = Math.max(0, counts(before).total - startIndex);
    // A results stream lasts as long as the job (with --follow) or the export: no deadline
    // unless --timeout asks for one.
    const stream = client.streamBatchJobResults(
      jobId,
      { startIndex, follow: values.follow },
      { timeoutMs: connection.timeoutMs ?? Infinity },
    );
    const complete = (summary: ExportSummary): boolean =>
      !(wasFinal || values.follow) || summary.written === expected;
    const summary =
      values.out === undefined
        ? await writeResultsToStream(stream, process.stdout)
        : await writeResultsToFile(stream, values.out, (s) => {
            if (!complete(s)) {
              throw new CliError(
                `incomplete export: the server sent ${s.written} of the job's ${expected} results ` +
                  `from index ${startIndex}; ${values.out} was not written. Try again.`,
                1,
              );
            }
          });
    if (summary.closed === true) return;
    const where = values.out === undefined ? '' : ` to ${values.out}`;
    io.log(`wrote ${summary.written} results${where} (${summary.errors} failed items)`);
    if (!complete(summary)) {
      throw new CliError(`incomplete export: the server sent ${summary.written} of ${expected} results`, 1);
    }
    if (!wasFinal && !values.follow) {
      io.log(
        `the job was ${stateName(before.state)}: these are the results recorded so far ` +
          `(${summary.written} of ${expected}); --follow waits for the rest`,
      );
    }
    if (summary.unknown > 0) {
      io.log(
        `${summary.unknown} results are of a kind this ibllm does not know (written with index and item_id only)`,
      );
    }
  });
}

async function cancel(argv: string[], io: BatchIo): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean', default: false }, ...CONNECTION_OPTIONS },
    allowPositionals: true,
  });
  const jobId = jobIdArg(positionals, 'cancel');
  const connection = connect(values);
  await withClient(connection, async (client) => {
    const job = await client.cancelBatchJob(jobId, unaryOptions(connection));
    io.out(values.json ? `${jobJson(job)}\n` : `${stateName(job.state)}\n`);
  });
}

async function list(argv: string[], io: BatchIo): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      state: { type: 'string', multiple: true },
      limit: { type: 'string' },
      json: { type: 'boolean', default: false },
      ...CONNECTION_OPTIONS,
    },
    allowPositionals: false,
  });
  const states: BatchJobState[] = (values.state ?? []).flatMap((s) => s.split(',')).map(parseState);
  const limit = optionalInt(values, 'limit', 1, 10_000) ?? 20;
  const connection = connect(values);
  await withClient(connection, async (client) => {
    const jobs: BatchJob[] = [];
    let pageToken: string | undefined;
    do {
      const page = await client.listBatchJobs(
        {
          pageSize: Math.min(100, limit - jobs.length),
          states,
          ...(pageToken === undefined ? {} : { pageToken }),
        },
        unaryOptions(connection),
      );
      jobs.push(...page.jobs.slice(0, limit - jobs.length));
      pageToken = page.nextPageToken;
    } while (pageToken !== undefined && jobs.length < limit);
    if (values.json) {
      io.out(`${JSON.stringify({ jobs: jobs.map((j) => JSON.parse(jobJson(j)) as unknown) })}\n`);
      return;
    }
    for (const job of jobs) {
      const c = counts(job);
      const created = job.createTime?.toISOString() ?? '-';
      io.out(
        `${job.jobId}  ${kindName(job.kind).padEnd(12)}  ${c.state.padEnd(21)}  ` +
          `${c.succeeded + c.failed + c.cancelled}/${c.total}  ${created}\n`,
      );
    }
    if (jobs.length === 0) io.log('no jobs');
  });
}
