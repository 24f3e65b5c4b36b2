// Load on the batch-job API (issue #6): each iteration submits one job with `POST /v1/batches` and
// polls `GET /v1/batches/{id}` until it is final, then records how long the job took and how many
// items per second it went through. Needs a gateway with GATEWAY_REDIS_URL and running
// batch-workers.
//
//   k6 run tools/load/batch-submit.ts -e BASE_URL=http://127.0.0.1:8080 -e API_KEY=... \
//     [-e BATCH_KIND=generate] [-e BATCH_ITEMS=50] [-e IMAGE_PATH=/abs/path/girl.jpg] \
//     [-e MANIFEST_URI=s3://bucket/items.jsonl] [-e PROFILE=load -e RATE=2 -e TIME_UNIT=1m]
//
// Bodies use the protobuf JSON mapping the REST batch API speaks (services/gateway/src/batch/
// batch.controller.ts): enums by name, lowerCamelCase fields, bytes in base64, timestamps in RFC 3339.
// Items are inline (BATCH_ITEMS of them, each a text, plus the image when IMAGE_PATH is set), or
// read by the gateway from MANIFEST_URI, a JSON Lines file of BatchItem objects under the media-
// source rules (allow-listed https://, s3:// on the configured endpoint, or a file under
// GATEWAY_BATCH_FILE_ROOT).
//
// Each API key may have GATEWAY_BATCH_MAX_ACTIVE_JOBS unfinished jobs (default 20): keep
// RATE x job duration under that, or spread the VUs over several keys with API_KEYS.
import { check, sleep } from 'k6';
import http from 'k6/http';
import { Counter, Rate, Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import {
  assertModelReady,
  bodySnippet,
  envChoice,
  envCount,
  envNumber,
  envString,
  errorRateThresholds,
  isRecord,
  jsonHeaders,
  loadMedia,
  logFailure,
  scenarioFromEnv,
  SUMMARY_TREND_STATS,
  target,
  type MediaFile,
} from './lib.ts';

const gateway = target();
const kind = envChoice('BATCH_KIND', ['embed', 'generate'] as const, 'embed');
const itemCount = envCount('BATCH_ITEMS', 20);
const manifestUri = envString('MANIFEST_URI', '');
const imagePath = envString('IMAGE_PATH', '');
const image: MediaFile | undefined = imagePath === '' ? undefined : loadMedia('image', imagePath);
const pollSeconds = envNumber('POLL_INTERVAL_S', 1);
const jobTimeoutMs = envNumber('JOB_TIMEOUT_S', 600) * 1000;

const FINAL_STATES = new Set([
  'BATCH_JOB_STATE_SUCCEEDED',
  'BATCH_JOB_STATE_COMPLETED_WITH_ERRORS',
  'BATCH_JOB_STATE_FAILED',
  'BATCH_JOB_STATE_CANCELLED',
]);

function items(): object[] {
  const list: object[] = [];
  for (let i = 0; i < itemCount; i += 1) {
    const inputs: object[] = [{ modality: 'MODALITY_TEXT', text: `Item ${i}: a dog playing on the beach.` }];
    if (image !== undefined) {
      inputs.push({ modality: 'MODALITY_IMAGE', content: image.base64, mediaType: image.mediaType });
    }
    list.push({ itemId: `item-${i}`, inputs });
  }
  return list;
}

// Built once per VU; only clientToken changes per submission.
const jobTemplate = {
  kind: kind === 'embed' ? 'BATCH_JOB_KIND_EMBED' : 'BATCH_JOB_KIND_GENERATE',
  ...(manifestUri === '' ? { items: items() } : { manifestUri }),
  options:
    kind === 'generate'
      ? {
          instruction: envString('PROMPT', 'Describe the scene in detail.'),
          stopping: { maxNewTokens: envNumber('MAX_TOKENS', 32) },
        }
      : {},
};

const jobDuration = new Trend('ibllm_batch_job_duration_ms', true);
const itemsPerSecond = new Trend('ibllm_batch_items_per_second');
const itemOutcomes = new Counter('ibllm_batch_items');
const errors = new Rate('ibllm_errors');

export const options: Options = {
  scenarios: scenarioFromEnv('batch_submit', {
    rate: 1,
    timeUnit: '1m',
    vus: 2,
    maxVus: 20,
    duration: '10m',
    ramp: '1m',
    iterations: 1,
  }),
  thresholds: {
    ibllm_batch_job_duration_ms: [`p(95)<${envNumber('JOB_P95_MS', 120_000)}`],
    ibllm_batch_items_per_second: [`avg>${envNumber('MIN_ITEMS_PER_SECOND', 1)}`],
    ibllm_errors: errorRateThresholds(envNumber('MAX_ERROR_RATE', 0.01)),
    'ibllm_batch_items{outcome:failed}': [`count<=${envNumber('MAX_FAILED_ITEMS', 0)}`],
    checks: ['rate>0.99'],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

/** The BatchJob fields read here. Zero counts are absent in the JSON mapping. */
interface BatchJob {
  readonly jobId: string;
  readonly state: string;
  readonly total: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly cancelled: number;
  readonly createTime: number | undefined;
  readonly finishTime: number | undefined;
  readonly errorMessage: string;
}

function count(value: unknown): number {
  const n = Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}

function time(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

function readJob(body: unknown): BatchJob | undefined {
  if (typeof body !== 'string') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!isRecord(json) || typeof json['jobId'] !== 'string') return undefined;
  const progress = isRecord(json['progress']) ? json['progress'] : {};
  return {
    jobId: json['jobId'],
    state: typeof json['state'] === 'string' ? json['state'] : 'BATCH_JOB_STATE_UNSPECIFIED',
    total: count(progress['total']),
    succeeded: count(progress['succeeded']),
    failed: count(progress['failed']),
    cancelled: count(progress['cancelled']),
    createTime: time(json['createTime']),
    finishTime: time(json['finishTime']),
    errorMessage: typeof json['errorMessage'] === 'string' ? json['errorMessage'] : '',
  };
}

export function setup(): void {
  assertModelReady(gateway);
}

export default function submitAndWait(): void {
  const submittedAt = Date.now();
  const submit = http.post(
    `${gateway.baseUrl}/v1/batches`,
    // A fresh idempotency key per submission: each iteration is a new job.
    JSON.stringify({ ...jobTemplate, clientToken: `k6-${submittedAt}-${__VU}-${__ITER}` }),
    { headers: jsonHeaders(), timeout: gateway.timeout, tags: { name: 'batch_submit' } },
  );
  let job = readJob(submit.body);
  const accepted = check(submit, {
    'submit answered 201': (r) => r.status === 201,
    'submit returned a job': () => job !== undefined,
  });
  if (!accepted || job === undefined) {
    errors.add(true, { stage: 'submit' });
    logFailure(`POST /v1/batches failed (HTTP ${submit.status})`, bodySnippet(submit.body));
    return;
  }

  const url = `${gateway.baseUrl}/v1/batches/${encodeURIComponent(job.jobId)}`;
  let pollFailures = 0;
  while (!FINAL_STATES.has(job.state) && Date.now() - submittedAt < jobTimeoutMs && pollFailures < 5) {
    sleep(pollSeconds);
    // One `name` for every job id, so the polls form one time series instead of one per job.
    const res = http.get(url, { headers: jsonHeaders(), timeout: '30s', tags: { name: 'batch_get' } });
    const polled = res.status === 200 ? readJob(res.body) : undefined;
    if (polled === undefined) {
      pollFailures += 1;
      logFailure(`GET /v1/batches/{id} failed (HTTP ${res.status})`, bodySnippet(res.body));
      continue;
    }
    job = polled;
  }
  const finishedAt = Date.now();

  if (!FINAL_STATES.has(job.state)) {
    // Timed out or unreadable: cancel so the job stops taking worker time from the next ones.
    http.post(`${url}/cancel`, null, {
      headers: jsonHeaders(),
      timeout: '30s',
      tags: { name: 'batch_cancel' },
    });
    errors.add(true, { stage: 'wait' });
    logFailure(`job ${job.jobId} not final after ${finishedAt - submittedAt} ms`, job.state);
    return;
  }

  const succeeded = check(job, {
    'job succeeded': (j) => j.state === 'BATCH_JOB_STATE_SUCCEEDED',
    'every item accounted for': (j) => j.succeeded + j.failed + j.cancelled === j.total && j.total > 0,
  });
  errors.add(!succeeded, { stage: 'job' });
  if (!succeeded) logFailure(`job ${job.jobId} ended ${job.state}`, job.errorMessage);
  itemOutcomes.add(job.succeeded, { outcome: 'succeeded' });
  itemOutcomes.add(job.failed, { outcome: 'failed' });
  itemOutcomes.add(job.cancelled, { outcome: 'cancelled' });

  // The server's timestamps do not depend on the poll interval; the client's span is the fallback.
  const durationMs =
    job.createTime !== undefined && job.finishTime !== undefined
      ? job.finishTime - job.createTime
      : finishedAt - submittedAt;
  jobDuration.add(durationMs, { state: job.state });
  if (durationMs > 0) itemsPerSecond.add((job.succeeded + job.failed) / (durationMs / 1000));
}
