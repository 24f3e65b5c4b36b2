// Shared by the load scripts: configuration from __ENV, auth headers, media loading, data URLs and
// the load profiles. Everything is read through k6's `-e NAME=value` / environment (`__ENV`).
import { SharedArray } from 'k6/data';
import { b64encode } from 'k6/encoding';
import http from 'k6/http';
import { Counter, Rate, Trend } from 'k6/metrics';
import type { Options, Scenario, Threshold } from 'k6/options';

export {
  completionTokens,
  isRecord,
  parseSseEvents,
  summarizeChatStream,
  tokensPerSecond,
  type ChatStreamSummary,
} from './sse-stream.ts';

// ---------------------------------------------------------------------------------------------
// Environment

/** `__ENV[name]` trimmed, or the fallback when unset or blank. */
export function envString(name: string, fallback: string): string {
  const value = __ENV[name];
  return value === undefined || value.trim() === '' ? fallback : value.trim();
}

/** A number from `__ENV`; a value that is not one stops the test in the init stage, naming it. */
export function envNumber(name: string, fallback: number): number {
  const raw = envString(name, '');
  if (raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name}=${raw} is not a number`);
  return value;
}

/** A positive whole number from `__ENV` (VUs, rates, counts). */
export function envCount(name: string, fallback: number): number {
  const value = envNumber(name, fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name}=${value} must be a whole number >= 1`);
  return value;
}

export function envBool(name: string, fallback: boolean): boolean {
  const raw = envString(name, '').toLowerCase();
  if (raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new Error(`${name}=${raw} must be true or false`);
}

export function envChoice<T extends string>(name: string, choices: readonly T[], fallback: T): T {
  const raw = envString(name, fallback);
  const found = choices.find((c) => c === raw);
  if (found === undefined) throw new Error(`${name}=${raw} must be one of ${choices.join(', ')}`);
  return found;
}

/** A required setting: its absence stops the test in the init stage with what to set. */
export function requiredEnv(name: string, what: string): string {
  const value = envString(name, '');
  if (value === '') throw new Error(`set ${name}: ${what}`);
  return value;
}

/** Where the gateway is and how long one call may take. */
export interface Target {
  /** BASE_URL: the gateway's REST root, without a trailing slash. */
  readonly baseUrl: string;
  /** GRPC_ADDR: host:port of the gateway's gRPC server. */
  readonly grpcAddr: string;
  /** GRPC_TLS=true dials TLS (system roots); the default is plaintext, as inside the cluster. */
  readonly grpcTls: boolean;
  /** MODEL: the served model id (`GET /v1/models`). */
  readonly model: string;
  /** REQUEST_TIMEOUT: deadline of one HTTP request or gRPC call, a k6 duration. */
  readonly timeout: string;
}

export function target(): Target {
  return {
    baseUrl: envString('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, ''),
    grpcAddr: envString('GRPC_ADDR', '127.0.0.1:50051'),
    grpcTls: envBool('GRPC_TLS', false),
    model: envString('MODEL', 'imagebind-llm'),
    timeout: envString('REQUEST_TIMEOUT', '180s'),
  };
}

/**
 * PROTO_ROOT: the import root of the .proto files (gateway.proto imports imagebind/common/v1/*).
 * The default is the repository's proto/ folder as an absolute file URL, so it holds whatever k6
 * resolves relative paths against (see grafana/k6#3857) and survives `k6 archive`.
 */
export function protoRoot(): string {
  return envString('PROTO_ROOT', import.meta.resolve('../../proto'));
}

// ---------------------------------------------------------------------------------------------
// Authentication

/**
 * The API key of this VU: API_KEY, or one of the comma-separated API_KEYS picked by VU number so
 * the load spreads over several tenants (the gateway rate-limits per key). None: no header is sent,
 * which a gateway bound to loopback without keys accepts.
 */
export function apiKey(): string | undefined {
  const keys = envString('API_KEYS', '')
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
  if (keys.length > 0) return keys[(Math.max(__VU, 1) - 1) % keys.length];
  const key = envString('API_KEY', '');
  return key === '' ? undefined : key;
}

/** `authorization: Bearer <key>` when a key is configured; usable as HTTP headers and gRPC metadata. */
export function authorization(): Record<string, string> {
  const key = apiKey();
  return key === undefined ? {} : { authorization: `Bearer ${key}` };
}

export function jsonHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return { 'content-type': 'application/json', ...authorization(), ...extra };
}

/** The start of a response body for a log line or an error message. */
export function bodySnippet(body: unknown, max = 300): string {
  if (typeof body === 'string') return body.slice(0, max);
  return body === null || body === undefined ? '(no body)' : '(binary body)';
}

/** A response header by name, whatever its case (k6 canonicalises names, e.g. `Content-Type`). */
export function header(res: { headers: Record<string, string> }, name: string): string {
  const wanted = name.toLowerCase();
  for (const key of Object.keys(res.headers)) {
    if (key.toLowerCase() === wanted) return res.headers[key] ?? '';
  }
  return '';
}

// ---------------------------------------------------------------------------------------------
// Media

const IMAGE_MEDIA_TYPES: Readonly<Record<string, string>> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
};

/** The audio containers the gateway decodes (AUDIO_FORMATS in services/gateway/src/rest/content-parts.ts). */
const AUDIO_MEDIA_TYPES: Readonly<Record<string, string>> = {
  wav: 'audio/wav',
  mp3: 'audio/mpeg',
  flac: 'audio/flac',
  ogg: 'audio/ogg',
  opus: 'audio/opus',
  m4a: 'audio/mp4',
  aac: 'audio/aac',
  webm: 'audio/webm',
};

function extensionOf(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1).toLowerCase();
}

/** A media file read once for all VUs, base64-encoded, with what the gateway needs to know of it. */
export interface MediaFile {
  readonly path: string;
  /** The file's bytes, standard base64 (a proto `bytes` field in JSON, or a data URL payload). */
  readonly base64: string;
  /** e.g. image/jpeg, audio/wav: the data URL type and the gRPC `media_type` hint. */
  readonly mediaType: string;
  /** The file extension: the `input_audio.format` of the REST API. */
  readonly format: string;
}

/**
 * Reads a file in the init stage (k6's open() works only there). Relative paths resolve against the
 * folder of the script (tools/load/), not the shell's working directory; absolute paths are safest.
 * The base64 text is built once and shared by every VU through a SharedArray (each VU still gets
 * its own copy of the string when it reads it).
 */
export function loadMedia(kind: 'image' | 'audio', path: string): MediaFile {
  const format = extensionOf(path);
  const types = kind === 'image' ? IMAGE_MEDIA_TYPES : AUDIO_MEDIA_TYPES;
  const mediaType = types[format];
  if (mediaType === undefined) {
    throw new Error(`${path}: an ${kind} file must end in one of .${Object.keys(types).join(', .')}`);
  }
  const shared = new SharedArray<string>(`${kind}:${path}`, () => [b64encode(open(path, 'b'), 'std')]);
  const base64 = shared[0];
  if (base64 === undefined || base64 === '') throw new Error(`${path} is empty`);
  return { path, base64, mediaType, format };
}

/** IMAGE_PATH, required: the image every request carries. */
export function imageFromEnv(): MediaFile {
  const path = requiredEnv(
    'IMAGE_PATH',
    'an image (jpg, png, webp, gif), e.g. the golden girl.jpg from shared/golden/*/inputs (absolute path)',
  );
  return loadMedia('image', path);
}

/** AUDIO_PATH, optional: an audio clip added to every request (wav, mp3, flac, ogg, opus, m4a, aac, webm). */
export function audioFromEnv(): MediaFile | undefined {
  const path = envString('AUDIO_PATH', '');
  return path === '' ? undefined : loadMedia('audio', path);
}

/** `data:<type>;base64,<payload>`: how the REST API takes inline images. */
export function dataUrl(file: MediaFile): string {
  return `data:${file.mediaType};base64,${file.base64}`;
}

// ---------------------------------------------------------------------------------------------
// Load profiles

/** The knobs of the load profiles; each script picks its own defaults. */
export interface LoadDefaults {
  /** RATE iterations per TIME_UNIT at the plateau of the `load` profile. */
  readonly rate: number;
  readonly timeUnit: string;
  /** VUS: concurrency of the `concurrency` profile, and the VUs pre-allocated for `load`. */
  readonly vus: number;
  /** MAX_VUS: the most VUs `load` may start when responses slow down. */
  readonly maxVus: number;
  /** DURATION: length of the plateau (`load`) or of the whole run (`concurrency`). */
  readonly duration: string;
  /** RAMP: ramp-up (and ramp-down) time of `load`. */
  readonly ramp: string;
  /** ITERATIONS of the `smoke` profile (one VU). */
  readonly iterations: number;
}

export const PROFILES = ['smoke', 'load', 'concurrency'] as const;
export type Profile = (typeof PROFILES)[number];

/**
 * One scenario named `name`, shaped by PROFILE:
 * - `smoke` (default): one VU, ITERATIONS iterations; a correctness run before a real one;
 * - `load`: an open model (ramping-arrival-rate): new requests start at RATE per TIME_UNIT whatever
 *   the latency, as independent users would, so queueing shows up as latency, not as less load;
 * - `concurrency`: a closed model (constant-vus): VUS requests in flight at all times, back to back.
 * `exec` names the exported function the scenario runs (default: the default export).
 */
export function scenarioFromEnv(
  name: string,
  defaults: LoadDefaults,
  exec?: string,
): Record<string, Scenario> {
  const profile = envChoice('PROFILE', PROFILES, 'smoke');
  const common = { tags: { profile }, ...(exec === undefined ? {} : { exec }) };
  const rate = envCount('RATE', defaults.rate);
  const timeUnit = envString('TIME_UNIT', defaults.timeUnit);
  const vus = envCount('VUS', defaults.vus);
  const duration = envString('DURATION', defaults.duration);
  const ramp = envString('RAMP', defaults.ramp);
  let scenario: Scenario;
  switch (profile) {
    case 'smoke':
      scenario = {
        executor: 'per-vu-iterations',
        vus: 1,
        iterations: envCount('ITERATIONS', defaults.iterations),
        maxDuration: envString('MAX_DURATION', '10m'),
        ...common,
      };
      break;
    case 'load':
      scenario = {
        executor: 'ramping-arrival-rate',
        startRate: 0,
        timeUnit,
        preAllocatedVUs: vus,
        maxVUs: Math.max(vus, envCount('MAX_VUS', defaults.maxVus)),
        stages: [
          { duration: ramp, target: rate },
          { duration, target: rate },
          { duration: ramp, target: 0 },
        ],
        ...common,
      };
      break;
    case 'concurrency':
      scenario = { executor: 'constant-vus', vus, duration, ...common };
      break;
  }
  return { [name]: scenario };
}

/** Percentiles shown in the end-of-test summary (p99 matters for streaming latency). */
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];

/** Error-rate thresholds: the pass/fail limit, and an early abort when most calls fail. */
export function errorRateThresholds(maxRate: number): Threshold[] {
  return [`rate<${maxRate}`, { threshold: 'rate<0.5', abortOnFail: true, delayAbortEval: '30s' }];
}

// ---------------------------------------------------------------------------------------------
// Readiness

/**
 * Stops the test before it starts when the gateway does not report the model ready
 * (`GET /v1/models`, extension `imagebind.ready`), so a cold or broken deployment is not measured.
 * READY_CHECK=false skips it. Call it from setup().
 */
export function assertModelReady(t: Target): void {
  if (!envBool('READY_CHECK', true)) return;
  const res = http.get(`${t.baseUrl}/v1/models`, {
    headers: authorization(),
    timeout: '30s',
    tags: { name: 'models' },
  });
  if (res.status !== 200) {
    throw new Error(`GET ${t.baseUrl}/v1/models answered ${res.status}: ${bodySnippet(res.body)}`);
  }
  const ready = res.json('data.0.imagebind.ready');
  if (ready !== true) {
    throw new Error(`the gateway at ${t.baseUrl} does not report ${t.model} ready yet (GET /v1/models)`);
  }
}

/** Logs the first few failures of each VU with enough detail to act on, without flooding the output. */
let failuresLogged = 0;
export function logFailure(what: string, detail: string): void {
  failuresLogged += 1;
  if (failuresLogged <= 3) console.warn(`VU ${__VU}: ${what}: ${detail.slice(0, 500)}`);
  if (failuresLogged === 3) console.warn(`VU ${__VU}: further failures are counted, not logged`);
}

/** The custom metrics both generation scripts (REST SSE, gRPC stream) record; create them at init. */
export function generationMetrics() {
  return {
    ttft: new Trend('ibllm_ttft_ms', true),
    serverTtft: new Trend('ibllm_server_ttft_ms', true),
    tokenRate: new Trend('ibllm_tokens_per_second'),
    tokens: new Counter('ibllm_completion_tokens'),
    finishes: new Counter('ibllm_finish_reasons'),
    errors: new Rate('ibllm_errors'),
  };
}

/**
 * Scenario and thresholds shared by the generation scripts: TTFT p95, median tokens/s, error
 * rate and checks; `extra` adds protocol-specific thresholds.
 */
export function generationOptions(scenario: string, extra: Record<string, Threshold[]> = {}): Options {
  return {
    scenarios: scenarioFromEnv(scenario, {
      rate: 2,
      timeUnit: '1s',
      vus: 20,
      maxVus: 200,
      duration: '5m',
      ramp: '1m',
      iterations: 3,
    }),
    thresholds: {
      ibllm_ttft_ms: [`p(95)<${envNumber('TTFT_P95_MS', 3000)}`],
      ibllm_tokens_per_second: [`p(50)>${envNumber('MIN_TOKENS_PER_SECOND', 5)}`],
      ibllm_errors: errorRateThresholds(envNumber('MAX_ERROR_RATE', 0.01)),
      checks: ['rate>0.99'],
      ...extra,
    },
    summaryTrendStats: SUMMARY_TREND_STATS,
  };
}
