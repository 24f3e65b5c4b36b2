import { existsSync } from 'node:fs';
import { policyProblems } from '@imagebind-llm/media-source';
import { redisConnectionOptions } from '@imagebind-llm/queue';
import { exposureProblem, parseRateOverrides } from './access';
import { batchMediaPolicy } from './batch/batch-backend';
import type { GatewayEnv } from './env.schema';
import { keysFromEnv } from './rest/api-keys';

/** The media policy's fields, named by the variables that set them. */
const POLICY_VARIABLES: readonly [string, string][] = [
  ['allowedHosts', 'GATEWAY_FETCH_ALLOWED_HOSTS'],
  ['fileRoot', 'GATEWAY_BATCH_FILE_ROOT'],
  ['objectStore.endpoint', 'GATEWAY_BATCH_OBJECT_STORE_ENDPOINT'],
  ['objectStore.buckets', 'GATEWAY_BATCH_OBJECT_STORE_BUCKETS'],
  ['maxBytes', 'GATEWAY_MAX_INPUT_BYTES'],
  ['timeoutMs', 'GATEWAY_FETCH_TIMEOUT_MS'],
];

function policyVariable(problem: string): string {
  const found = POLICY_VARIABLES.find(([field]) => problem.startsWith(field));
  return found === undefined ? problem : `${found[1]}: ${problem}`;
}

const TARGET_VARIABLES = [
  'GATEWAY_ENCODER_VISION_TARGET',
  'GATEWAY_ENCODER_AUDIO_TARGET',
  'GATEWAY_ENCODER_TEXT_TARGET',
  'GATEWAY_ENCODER_POINT_TARGET',
  'GATEWAY_RETRIEVER_TARGET',
  'GATEWAY_BIND_TARGET',
  'GATEWAY_DECODER_TARGET',
] as const;

/** `host:port` with a bracketed IPv6 literal or a host name / IPv4 address, port 1..65535. */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/**
 * Why a service address is unusable, or undefined. A grpc-js scheme target (`dns:///svc:port`,
 * `unix:...`) passes as written; otherwise every comma-separated entry must be host:port.
 */
export function targetProblem(value: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:(?!\d)/i.test(value) && !/^[^:]+:\d+$/.test(value)) return undefined;
  const parts = value
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length === 0) return 'names no address; write host:port[,host:port] or dns:///name:port';
  for (const part of parts) {
    const match = HOST_PORT.exec(part);
    const port = match === null ? 0 : Number(match[2]);
    if (match === null || port < 1 || port > 65535) {
      return `${JSON.stringify(part)} is not host:port (port 1..65535); write host:port[,host:port] or dns:///name:port`;
    }
  }
  return undefined;
}

function problemOf(check: () => unknown): string | undefined {
  try {
    check();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * What the schema cannot see one variable at a time: values parsed by the code that uses them
 * (API keys, rate overrides, media allow-lists, the Redis URL) and rules across variables (keys
 * beyond loopback, the targets of distributed mode, the repository of standalone mode). Run at
 * boot, before anything listens, so a mistake exits 78 with one line instead of a gateway that
 * starts and then answers 500 (issue #17 item 3). Each problem names the variable to set.
 */
export function gatewayConfigProblems(env: GatewayEnv): string[] {
  const problems: (string | undefined)[] = [exposureProblem(env)];
  if (env.GATEWAY_API_KEYS !== undefined) {
    const keys = env.GATEWAY_API_KEYS;
    problems.push(problemOf(() => keysFromEnv(keys, 'GATEWAY_API_KEYS')));
  }
  problems.push(problemOf(() => parseRateOverrides(env.GATEWAY_RATE_LIMIT_OVERRIDES)));
  // The policy every URL input is checked against: refused now rather than on each request.
  problems.push(...policyProblems(batchMediaPolicy(env)).map(policyVariable));
  if (
    env.GATEWAY_BATCH_OBJECT_STORE_ENDPOINT === undefined &&
    env.GATEWAY_BATCH_OBJECT_STORE_BUCKETS.length > 0
  ) {
    problems.push('GATEWAY_BATCH_OBJECT_STORE_BUCKETS is set without GATEWAY_BATCH_OBJECT_STORE_ENDPOINT');
  }
  if (env.GATEWAY_REDIS_URL !== undefined) {
    const url = env.GATEWAY_REDIS_URL;
    const problem = problemOf(() => redisConnectionOptions(url, 'producer'));
    if (problem !== undefined) problems.push(`GATEWAY_REDIS_URL: ${problem}`);
  }
  for (const name of TARGET_VARIABLES) {
    const value = env[name];
    const problem = value === undefined ? undefined : targetProblem(value);
    if (problem !== undefined) problems.push(`${name}: ${problem}`);
  }
  if (env.GATEWAY_MODE === 'distributed') {
    const missing = (
      ['GATEWAY_RETRIEVER_TARGET', 'GATEWAY_BIND_TARGET', 'GATEWAY_DECODER_TARGET'] as const
    ).filter((k) => env[k] === undefined);
    if (missing.length > 0) {
      problems.push(
        `distributed mode needs ${missing.join(', ')} (or run GATEWAY_MODE=standalone with GATEWAY_MODEL_REPO)`,
      );
    }
  } else if (env.GATEWAY_MODEL_REPO === undefined) {
    problems.push(
      'GATEWAY_MODEL_REPO must be set in standalone mode (build one with `ibllm models demo --out REPO`)',
    );
  } else if (!existsSync(env.GATEWAY_MODEL_REPO)) {
    problems.push(`GATEWAY_MODEL_REPO is "${env.GATEWAY_MODEL_REPO}", which does not exist`);
  }
  if (
    env.GATEWAY_PLAYGROUND &&
    env.GATEWAY_PLAYGROUND_DIR !== undefined &&
    !existsSync(env.GATEWAY_PLAYGROUND_DIR)
  ) {
    problems.push(`GATEWAY_PLAYGROUND_DIR is "${env.GATEWAY_PLAYGROUND_DIR}", which does not exist`);
  }
  return problems.filter((p): p is string => p !== undefined);
}
