// The env schema each deployable really parses at boot, so the compose files and Dockerfiles are
// checked against the code rather than against a copy of its variable names. The gRPC backends
// (encoders, bind, decoder, retriever) take theirs from libs/serving; the gateway and the batch
// worker keep theirs in services/<name>/src.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv, type EnvSchema } from '@imagebind-llm/config';
import {
  bindEnvSchema,
  decoderEnvSchema,
  encoderEnvSchema,
  retrieverEnvSchema,
  type EncoderEnvDefaults,
} from '@imagebind-llm/serving';
// The module-boundary rule keeps tools from importing services. These two imports are read-only
// uses in a test: the deployment files must name exactly the variables the service code declares.
// eslint-disable-next-line @nx/enforce-module-boundaries -- test reads the service's env schema
import { batchWorkerEnvSchema } from '../../../services/batch-worker/src/env.schema';
// eslint-disable-next-line @nx/enforce-module-boundaries -- test reads the service's env schema
import { gatewayEnvSchema } from '../../../services/gateway/src/env.schema';
import { repoRoot } from './compose-model';

export interface AppService {
  readonly name: string;
  readonly schema: EnvSchema;
  /** Variables of its listeners (the gateway's carry a GATEWAY_ prefix). */
  readonly vars: { grpcHost: string; grpcPort: string; httpHost: string; httpPort: string };
  /** The ports the service listens on when its port variables are unset. */
  readonly defaultPorts: { grpc: number; http: number };
}

/** Every directory under services/ that is a deployable (has a package.json). */
export function serviceDirectories(): string[] {
  return readdirSync(join(repoRoot, 'services'))
    .filter((d) => existsSync(join(repoRoot, 'services', d, 'package.json')))
    .sort();
}

/**
 * An encoder's defaults live in its main.ts (`runEncoderService({ grpcPort: 50071, ... })`), which
 * starts the service when imported, so the numbers are read from the source text.
 */
function encoderDefinition(service: string): EncoderEnvDefaults {
  const path = join(repoRoot, 'services', service, 'src', 'main.ts');
  const main = readFileSync(path, 'utf8');
  const num = (key: string): number => {
    const match = new RegExp(`\\b${key}:\\s*(\\d+)`).exec(main);
    if (match === null) throw new Error(`${path}: no ${key} in the runEncoderService definition`);
    return Number(match[1]);
  };
  return {
    grpcPort: num('grpcPort'),
    httpPort: num('httpPort'),
    maxBatch: num('maxBatch'),
    maxQueue: num('maxQueue'),
  };
}

const PLAIN = { grpcHost: 'GRPC_HOST', grpcPort: 'GRPC_PORT', httpHost: 'HTTP_HOST', httpPort: 'HTTP_PORT' };
const GATEWAY = {
  grpcHost: 'GATEWAY_GRPC_HOST',
  grpcPort: 'GATEWAY_GRPC_PORT',
  httpHost: 'GATEWAY_HTTP_HOST',
  httpPort: 'GATEWAY_HTTP_PORT',
};

function appService(name: string, schema: EnvSchema, vars: AppService['vars']): AppService {
  // Required settings without a default get a stand-in; only the port defaults are read here.
  const parsed = parseEnv(name, schema, { MODEL_REPO: '/models' }) as Record<string, unknown>;
  return {
    name,
    schema,
    vars,
    defaultPorts: { grpc: Number(parsed[vars.grpcPort]), http: Number(parsed[vars.httpPort]) },
  };
}

const encoder = (name: string): AppService =>
  appService(name, encoderEnvSchema(encoderDefinition(name)), PLAIN);

/** The deployables, by directory name under services/. */
export const APP_SERVICES: Readonly<Record<string, AppService>> = {
  gateway: appService('gateway', gatewayEnvSchema, GATEWAY),
  decoder: appService('decoder', decoderEnvSchema, PLAIN),
  'encoder-vision': encoder('encoder-vision'),
  'encoder-audio': encoder('encoder-audio'),
  'encoder-text': encoder('encoder-text'),
  'encoder-point': encoder('encoder-point'),
  bind: appService('bind', bindEnvSchema, PLAIN),
  retriever: appService('retriever', retrieverEnvSchema, PLAIN),
  'batch-worker': appService('batch-worker', batchWorkerEnvSchema, PLAIN),
};

/** The modalities an encoder service's main.ts declares ('' for the other services). */
function modalitiesOf(service: string): string {
  const main = readFileSync(join(repoRoot, 'services', service, 'src', 'main.ts'), 'utf8');
  return /modalities:\s*\[([^\]]*)\]/.exec(main)?.[1] ?? '';
}

/** Whether the service's source decodes media with ffmpeg (video or non-WAV audio input). */
export function needsFfmpeg(service: string): boolean {
  return /'video'|'audio'/.test(modalitiesOf(service));
}

/**
 * Whether the service preprocesses with the ibllm_media addon (images, video frames, compressed
 * audio, point grouping), whose core module links libjpeg.so.62.
 */
export function needsMediaAddon(service: string): boolean {
  return /'image'|'video'|'audio'|'point'/.test(modalitiesOf(service));
}
