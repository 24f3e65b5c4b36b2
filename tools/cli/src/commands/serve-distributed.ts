import { type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { serviceMain, signalGroup, spawnService, type ServiceName } from './service-process';

/** The model services `--distributed` starts before the gateway, in the order of its summary. */
export const BACKEND_SERVICES: readonly ServiceName[] = [
  'encoder-vision',
  'encoder-audio',
  'encoder-text',
  'encoder-point',
  'retriever',
  'bind',
  'decoder',
];

/** How long one service may take from spawn to `service.ready` (real 7B weights load for minutes). */
const READY_TIMEOUT_MS = 15 * 60_000;
/** SIGTERM → SIGKILL: past the services' own drain (SHUTDOWN_GRACE_MS, 25 s by default). */
const STOP_GRACE_MS = 35_000;
/** Lines of each child's output kept to explain its failure. */
const TAIL_LINES = 20;
/** How often the children's log files are read. */
const FOLLOW_INTERVAL_MS = 100;

type ExitStatus = { readonly code: number | null; readonly signal: NodeJS.Signals | null };

/** One started service process: its output tail, readiness and exit. */
interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly tail: string[];
  readonly ready: Promise<{ grpcPort: number; httpPort: number }>;
  readonly exited: Promise<ExitStatus>;
  readonly logFile: string;
  status?: ExitStatus;
}

/** Where a ready service listens, as the summary prints it. */
export interface ReadyService {
  readonly name: string;
  readonly pid: number;
  readonly grpc: string;
  readonly http: string;
}

/** Why the platform stops: a signal to the launcher, or a child that went away on its own. */
type StopCause =
  | { readonly kind: 'signal'; readonly signal: NodeJS.Signals }
  | { readonly kind: 'failed'; readonly child: Child; readonly why: string };

export interface DistributedOptions {
  /** The model repository (absolute) every model service loads. */
  readonly repo: string;
  /** The launcher's environment plus the gateway flags, inherited by every child. */
  readonly env: Readonly<Record<string, string>>;
  readonly log: (line: string) => void;
  /** Where each service's output goes (<name>.log); a fresh temporary folder by default. */
  readonly logDir?: string;
}

function describeExit(status: ExitStatus): string {
  return status.signal === null ? `status ${String(status.code)}` : `signal ${status.signal}`;
}

/**
 * Follows a log file a child appends to: every complete new line, in order, from where it was
 * when followed. Polled, because the file outlives the launcher; a pipe would not (see startChild).
 */
class LogFollower {
  private readonly fd: number;
  private offset: number;
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  private readonly timer: NodeJS.Timeout;

  constructor(
    path: string,
    private readonly onLine: (line: string) => void,
  ) {
    this.fd = openSync(path, 'r');
    this.offset = fstatSync(this.fd).size;
    this.timer = setInterval(() => this.read(), FOLLOW_INTERVAL_MS);
  }

  /** Reads what was appended since the last call. */
  read(): void {
    const buffer = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = readSync(this.fd, buffer, 0, buffer.length, this.offset);
      if (n <= 0) return;
      this.offset += n;
      const lines = (this.partial + this.decoder.write(buffer.subarray(0, n))).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) this.onLine(line);
    }
  }

  /** Reads to the end (an unfinished last line included) and stops following. */
  close(): void {
    clearInterval(this.timer);
    this.read();
    const rest = this.partial + this.decoder.end();
    if (rest !== '') this.onLine(rest);
    closeSync(this.fd);
  }
}

/**
 * Starts a service with spawnService: in its own process group (a terminal's Ctrl-C reaches the
 * launcher alone, which stops the children in order) with an IPC channel it watches (it drains and
 * exits when the channel closes, so no child outlives the launcher, even one killed with SIGKILL).
 * Its stdout and stderr go to LOG_DIR/<name>.log, followed and passed on line by line (JSON log
 * lines to stdout, anything else to stderr). Not pipes: once a killed launcher's end of a pipe is gone, a service's logger
 * retries the write forever (EPIPE) and the service never finishes its drain.
 */
function startChild(name: string, main: string, env: Record<string, string>, logDir: string): Child {
  const logFile = join(logDir, `${name}.log`);
  const out = openSync(logFile, 'a');
  const tail: string[] = [];
  let onReady: (ports: { grpcPort: number; httpPort: number }) => void = () => undefined;
  const follower = new LogFollower(logFile, (line) => {
    (line.startsWith('{') ? process.stdout : process.stderr).write(`${line}\n`);
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    const ports = readyPorts(line);
    if (ports !== undefined) onReady(ports);
  });
  let proc: ChildProcess;
  try {
    proc = spawnService(main, env, ['ignore', out, out]);
  } finally {
    closeSync(out);
  }
  let settle: (status: ExitStatus) => void = () => undefined;
  const exited = new Promise<ExitStatus>((done) => {
    settle = done;
  });
  const ready = new Promise<{ grpcPort: number; httpPort: number }>((done, fail) => {
    onReady = done;
    void exited.then(notReady).catch(fail);
  });
  // Read only through waitReady's race: no unhandled rejection when the child exits later.
  ready.catch(() => undefined);
  const child: Child = { name, proc, tail, ready, exited, logFile };
  const finish = (status: ExitStatus): void => {
    if (child.status !== undefined) return;
    follower.close();
    child.status = status;
    settle(status);
  };
  proc.on('exit', (code, signal) => finish({ code, signal }));
  // A process that could not be started has no exit event of its own.
  proc.on('error', (error) => {
    tail.push(`could not run ${main}: ${error.message}`);
    finish({ code: 1, signal: null });
  });
  return child;
}

function notReady(status: ExitStatus): never {
  throw new Error(`exited with ${describeExit(status)} before it was ready`);
}

/** The ports of a `service.ready` log line (bootstrapService writes it once warm), else undefined. */
export function readyPorts(line: string): { grpcPort: number; httpPort: number } | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    if (parsed['event'] !== 'service.ready') return undefined;
    const grpcPort = parsed['grpcPort'];
    const httpPort = parsed['httpPort'];
    if (typeof grpcPort !== 'number' || typeof httpPort !== 'number') return undefined;
    return { grpcPort, httpPort };
  } catch {
    return undefined;
  }
}

const LOOPBACK = { grpc: '127.0.0.1', http: '127.0.0.1' };

/**
 * Where to reach the gateway: its bind hosts (GATEWAY_GRPC_HOST, GATEWAY_HTTP_HOST, set by --host),
 * a wildcard bind shown as loopback, an IPv6 address in brackets.
 */
export function gatewayHosts(env: Readonly<Record<string, string>>): { grpc: string; http: string } {
  const reach = (host: string | undefined): string => {
    if (host === undefined || host === '' || host === '0.0.0.0') return '127.0.0.1';
    if (host === '::') return '[::1]';
    return host.includes(':') ? `[${host}]` : host;
  };
  return { grpc: reach(env['GATEWAY_GRPC_HOST']), http: reach(env['GATEWAY_HTTP_HOST']) };
}

/** The summary printed once every process is ready: one row per service. */
export function summaryTable(services: readonly ReadyService[]): string {
  const rows = [
    ['service', 'pid', 'gRPC', 'HTTP'],
    ...services.map((s) => [s.name, String(s.pid), s.grpc, s.http]),
  ];
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, col) => cell.padEnd(widths[col]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * `ibllm serve --distributed`: every service its own process on loopback (the seven model
 * services on free ports, each loading the repository; the retriever seeds its visual cache from
 * it), then the gateway in distributed mode pointed at them. Waits for each `service.ready`, prints
 * a summary, and stops everything (gateway first, so it drains its calls while the services still
 * answer) on SIGINT/SIGTERM — exit 0 when every child stopped cleanly — or when any child exits
 * on its own: exit 1 naming it, with its last lines. Resolves with the launcher's exit status.
 */
export async function serveDistributed(options: DistributedOptions): Promise<number> {
  const { log } = options;
  const ownLogDir = options.logDir === undefined;
  const logDir = options.logDir ?? mkdtempSync(join(tmpdir(), 'ibllm-serve-'));
  if (!ownLogDir) mkdirSync(logDir, { recursive: true });
  const mains = new Map<string, string>(
    [...BACKEND_SERVICES, 'gateway' as const].map((service) => [service, serviceMain(service)]),
  );
  const children: Child[] = [];
  let stopRequested: (cause: StopCause) => void = () => undefined;
  const stop = new Promise<StopCause>((done) => {
    stopRequested = done;
  });
  let stopping = false;
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      // A second signal does not wait for the drain.
      log(`ibllm serve: ${signal} again; killing every service`);
      for (const c of children) if (c.status === undefined) signalGroup(c.proc, 'SIGKILL');
      return;
    }
    stopRequested({ kind: 'signal', signal });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const launch = (name: string, env: Record<string, string>): Child => {
    const child = startChild(name, mains.get(name)!, env, logDir);
    children.push(child);
    void child.exited.then((status) => {
      if (!stopping) stopRequested({ kind: 'failed', child, why: `exited with ${describeExit(status)}` });
    });
    return child;
  };
  const waitReady = async (child: Child): Promise<ReadyService> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, fail) => {
      timer = setTimeout(
        () => fail(new Error(`was not ready within ${READY_TIMEOUT_MS / 1000} s`)),
        READY_TIMEOUT_MS,
      );
    });
    try {
      const ports = await Promise.race([child.ready, timeout]);
      const host = child.name === 'gateway' ? gatewayHosts(options.env) : LOOPBACK;
      return {
        name: child.name,
        pid: child.proc.pid ?? 0,
        grpc: `${host.grpc}:${ports.grpcPort}`,
        http: `http://${host.http}:${ports.httpPort}`,
      };
    } catch (error) {
      stopRequested({ kind: 'failed', child, why: (error as Error).message });
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };
  // Settles with the value, or with the reason the platform is stopping, whichever comes first.
  const unlessStopped = <T>(work: Promise<T>): Promise<T | StopCause> =>
    Promise.race([work.catch(() => stop), stop]);

  let cause: StopCause;
  const started = async (): Promise<StopCause | ReadyService[]> => {
    // The model services listen on loopback only: they have no API keys, the gateway is the door.
    const serviceEnv = {
      ...options.env,
      MODEL_REPO: options.repo,
      GRPC_HOST: '127.0.0.1',
      HTTP_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      HTTP_PORT: '0',
    };
    const backends = BACKEND_SERVICES.map((service) => launch(service, serviceEnv));
    const ready = await unlessStopped(Promise.all(backends.map(waitReady)));
    if (!Array.isArray(ready)) return ready;
    const at = new Map(ready.map((s) => [s.name, s.grpc]));
    const gateway = launch('gateway', {
      ...options.env,
      GATEWAY_MODE: 'distributed',
      GATEWAY_ENCODER_VISION_TARGET: at.get('encoder-vision')!,
      GATEWAY_ENCODER_AUDIO_TARGET: at.get('encoder-audio')!,
      GATEWAY_ENCODER_TEXT_TARGET: at.get('encoder-text')!,
      GATEWAY_ENCODER_POINT_TARGET: at.get('encoder-point')!,
      GATEWAY_RETRIEVER_TARGET: at.get('retriever')!,
      GATEWAY_BIND_TARGET: at.get('bind')!,
      GATEWAY_DECODER_TARGET: at.get('decoder')!,
    });
    const front = await unlessStopped(waitReady(gateway));
    if (!('pid' in front)) return front;
    return [...ready, front];
  };
  const up = await started();
  if (Array.isArray(up)) {
    const gateway = up[up.length - 1]!;
    log(
      `ibllm serve --distributed: ${up.length} processes ready (their logs: ${logDir})\n${summaryTable(up)}`,
    );
    // One machine-readable line among the services' JSON logs, for supervisors and tests.
    process.stdout.write(
      `${JSON.stringify({
        level: 'info',
        time: new Date().toISOString(),
        service: 'ibllm',
        event: 'platform.ready',
        pid: process.pid,
        gateway: { grpc: gateway.grpc, http: gateway.http },
        services: up,
        msg: 'distributed platform ready',
      })}\n`,
    );
    cause = await stop;
  } else {
    cause = up;
  }
  stopping = true;
  if (cause.kind === 'failed') {
    const { child } = cause;
    log(
      `ibllm serve: ${child.name} (pid ${String(child.proc.pid)}) ${cause.why}; stopping every service. Its last lines (all in ${child.logFile}):`,
    );
    for (const line of child.tail) log(`  ${line}`);
  } else {
    log(`ibllm serve: ${cause.signal}; stopping every service (gateway first)`);
  }
  await stopChildren(children);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  const code = exitCode(cause, children, log);
  // A clean run leaves nothing behind; after a failure the logs are the evidence.
  if (code === 0 && ownLogDir) rmSync(logDir, { recursive: true, force: true });
  else if (code !== 0) log(`ibllm serve: the services' logs are kept in ${logDir}`);
  return code;
}

/** The launcher's exit status once every child is gone. */
function exitCode(cause: StopCause, children: readonly Child[], log: (line: string) => void): number {
  // 78: a service refused its configuration (the gateway: keys for a public --host) and said why.
  if (cause.kind === 'failed') return cause.child.status?.code === 78 ? 78 : 1;
  // Killed by the SIGTERM it was sent before it could install its own handler: stopped as asked.
  const unclean = children.filter(
    (c) => c.status !== undefined && c.status.code !== 0 && c.status.signal !== 'SIGTERM',
  );
  if (unclean.length === 0) return 0;
  log(
    `ibllm serve: not stopped cleanly: ${unclean.map((c) => `${c.name} (${describeExit(c.status!)})`).join(', ')}`,
  );
  return 1;
}

/** SIGTERM and wait; SIGKILL past the grace. */
async function stopChild(child: Child): Promise<void> {
  if (child.status !== undefined) return;
  signalGroup(child.proc, 'SIGTERM');
  const timer = setTimeout(() => signalGroup(child.proc, 'SIGKILL'), STOP_GRACE_MS);
  await child.exited;
  clearTimeout(timer);
}

/** The gateway first (it drains its streams while the services still answer), then the rest together. */
async function stopChildren(children: readonly Child[]): Promise<void> {
  const gateway = children.filter((c) => c.name === 'gateway');
  await Promise.all(gateway.map(stopChild));
  await Promise.all(children.filter((c) => c.name !== 'gateway').map(stopChild));
}
