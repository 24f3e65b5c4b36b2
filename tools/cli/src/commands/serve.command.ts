import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CliError } from '../cli-error';
import { serveDistributed } from './serve-distributed';
import { serviceMain, signalGroup, spawnService } from './service-process';

export const SERVE_USAGE = `ibllm serve [--standalone | --distributed] [--models REPO] [--host 127.0.0.1]
            [--grpc-port 50051] [--http-port 8080] [--api-keys tenant:key,...] [--data-dir DIR]
            [--redis redis://HOST:6379] [--no-batch-worker] [--log-dir DIR]

Runs the gateway: the public gRPC API (GatewayService), the OpenAI-compatible REST API
(/v1/chat/completions, /v1/embeddings, /v1/models) and /metrics /healthz /readyz.
--standalone hosts every service (encoders, retriever on the embedded vector store, bind,
decoder) in that one process from the model repository --models (build one with
\`ibllm models demo --out REPO\`). --distributed runs every service as its own process on this
machine instead: encoder-vision, encoder-audio, encoder-text, encoder-point, retriever (embedded
store, visual cache seeded from REPO), bind and decoder on free 127.0.0.1 ports, then the gateway
pointed at them. Once all are ready it prints a table (service, pid, gRPC and HTTP address); on
SIGINT/SIGTERM it stops them all, gateway first, and exits 0; if one exits on its own it stops
the rest and exits 1 naming it, with its last log lines. Each service's output goes to
DIR/<service>.log (--log-dir; a temporary folder by default, removed after a clean stop) and is
passed on. --host, the ports, --api-keys, --data-dir and --redis are the gateway's; the other
services read the rest of the environment (EXECUTION_PROVIDERS, INTRA_OP_THREADS, LOG_LEVEL, ...). With neither flag the gateway calls
services already running at the GATEWAY_*_TARGET addresses in the environment.
On 127.0.0.1 or ::1 no API key is needed; on any other address (127.0.0.2 and localhost
included) the gateway refuses to start without --api-keys (or GATEWAY_API_KEYS), exiting 78.
Ports 0 pick free ports; the chosen ones are printed in the "service.ready" log line.
--redis (or GATEWAY_REDIS_URL) turns on batch jobs (\`ibllm batch ...\`); with --standalone the
same process also runs a batch worker for them, whose items skip the public rate limit (it is
part of the server, not a client). --no-batch-worker (GATEWAY_BATCH_WORKER=false) leaves the
queue to separate batch-worker processes.`;

function port(text: string | undefined, flag: string): string | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) > 65535)
    throw new CliError(`${flag} must be a port number 0..65535, got ${JSON.stringify(text)}`);
  return text;
}

/**
 * `ibllm serve`: maps flags onto the gateway's environment and runs it as the one platform
 * process, passing signals through (SIGTERM → drain → exit 0) and exiting with its status.
 */
export async function serve(argv: string[], log: (line: string) => void): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      standalone: { type: 'boolean', default: false },
      distributed: { type: 'boolean', default: false },
      models: { type: 'string' },
      host: { type: 'string' },
      'grpc-port': { type: 'string' },
      'http-port': { type: 'string' },
      'api-keys': { type: 'string' },
      'data-dir': { type: 'string' },
      redis: { type: 'string' },
      'no-batch-worker': { type: 'boolean', default: false },
      'log-dir': { type: 'string' },
    },
    allowPositionals: false,
  });
  if (values.standalone && values.distributed) {
    throw new CliError('--standalone and --distributed exclude each other: one process, or one per service');
  }
  const mode = values.standalone ? '--standalone' : values.distributed ? '--distributed' : undefined;
  if (mode !== undefined && values.models === undefined) {
    throw new CliError(`${mode} needs --models REPO (build one with \`ibllm models demo --out REPO\`)`);
  }
  if (values.models !== undefined && !existsSync(values.models)) {
    throw new CliError(`--models ${values.models} does not exist`);
  }
  // The launcher passes its environment through: the gateway validates it (GATEWAY_* variables).
  // eslint-disable-next-line no-restricted-properties -- inherited, not read, by the launcher
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  const set = (name: string, value: string | undefined): void => {
    if (value !== undefined) env[name] = value;
  };
  if (values.standalone) env['GATEWAY_MODE'] = 'standalone';
  set('GATEWAY_MODEL_REPO', values.models === undefined ? undefined : resolve(values.models));
  set('GATEWAY_GRPC_HOST', values.host);
  set('GATEWAY_HTTP_HOST', values.host);
  set('GATEWAY_GRPC_PORT', port(values['grpc-port'], '--grpc-port'));
  set('GATEWAY_HTTP_PORT', port(values['http-port'], '--http-port'));
  set('GATEWAY_API_KEYS', values['api-keys']);
  set('GATEWAY_DATA_DIR', values['data-dir']);
  if (values.redis !== undefined && !/^rediss?:\/\/\S+$/.test(values.redis)) {
    throw new CliError(`--redis must be a redis:// or rediss:// URL, got ${JSON.stringify(values.redis)}`);
  }
  set('GATEWAY_REDIS_URL', values.redis);
  if (values['no-batch-worker']) env['GATEWAY_BATCH_WORKER'] = 'false';
  if (values['log-dir'] !== undefined && !values.distributed) {
    throw new CliError('--log-dir is for --distributed (the other modes log to standard output)');
  }
  if (values.distributed) {
    process.exitCode = await serveDistributed({
      repo: resolve(values.models!),
      env,
      log,
      ...(values['log-dir'] === undefined ? {} : { logDir: resolve(values['log-dir']) }),
    });
    return;
  }
  // Its own process group and an IPC channel (spawnService): the gateway stops when this launcher
  // does, or drains and exits when it dies, even by SIGKILL. Standard input stays here: a process
  // outside the terminal's foreground group must not read it.
  const child = spawnService(serviceMain('gateway'), env, ['ignore', 'inherit', 'inherit']);
  const forward = (signal: NodeJS.Signals): void => {
    signalGroup(child, signal);
  };
  process.on('SIGTERM', forward);
  process.on('SIGINT', forward);
  const code = await new Promise<number>((done) => {
    child.on('exit', (status, signal) => done(status ?? (signal === null ? 1 : 128 + 15)));
    child.on('error', (error) => {
      log(`could not start the gateway: ${error.message}`);
      done(1);
    });
  });
  // 78: the gateway refused its configuration and already said why in one line.
  if (code !== 0 && code !== 78) log(`gateway exited with status ${code}`);
  process.exitCode = code;
}
