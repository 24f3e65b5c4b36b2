import { spawn, type ChildProcess, type StdioNull, type StdioPipe } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { CliError } from '../cli-error';

/**
 * The services `ibllm serve` runs. Each is a dependency of this CLI's package (package.json), so
 * Nx sees the edge and builds them before the CLI, and they are found as installed packages.
 */
export type ServiceName =
  | 'gateway'
  | 'encoder-vision'
  | 'encoder-audio'
  | 'encoder-text'
  | 'encoder-point'
  | 'retriever'
  | 'bind'
  | 'decoder';

const requireHere = createRequire(__filename);

/** The compiled entry point (package.json `main`) of a service's workspace package. */
export function serviceMain(service: ServiceName): string {
  const name = `@imagebind-llm/${service}`;
  let manifest: string;
  try {
    manifest = requireHere.resolve(`${name}/package.json`);
  } catch {
    throw new CliError(`the ${service} service (${name}) is not installed beside ibllm; run \`npm install\``);
  }
  const { main } = JSON.parse(readFileSync(manifest, 'utf8')) as { main?: string };
  const entry = resolve(dirname(manifest), main ?? 'index.js');
  if (!existsSync(entry)) {
    throw new CliError(
      `the ${service} service is not built (${entry} is missing); run \`npm run build\` first`,
    );
  }
  return entry;
}

/** Preloaded into each service: it exits when the launcher's end of the IPC channel closes. */
const LAUNCHER_WATCH = join(__dirname, '..', 'launcher-watch.js');

/** Started services not yet exited: their process groups get SIGTERM if the launcher exits first. */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

type Stdio = StdioNull | StdioPipe | 'inherit' | number;

/**
 * Starts a service so that it cannot outlive this launcher:
 * - in its own process group (a terminal's Ctrl-C reaches the launcher alone, which stops the
 *   services itself — one signal each, not the terminal's plus the launcher's), stopped as a group
 *   (signalGroup);
 * - with an IPC channel the service watches (launcher-watch, then closeOnSignals): if the launcher
 *   dies, even by SIGKILL, the channel closes and the service drains and exits;
 * - and if the launcher exits with services still running (an error), they get SIGTERM.
 */
export function spawnService(
  main: string,
  env: Readonly<Record<string, string>>,
  stdio: readonly [Stdio, Stdio, Stdio],
): ChildProcess {
  if (!existsSync(LAUNCHER_WATCH)) {
    throw new CliError(`ibllm is not built (${LAUNCHER_WATCH} is missing); run \`npm run build\` first`);
  }
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const child of running) signalGroup(child, 'SIGTERM');
    });
  }
  const child = spawn(process.execPath, ['--require', LAUNCHER_WATCH, main], {
    env,
    stdio: [...stdio, 'ipc'],
    detached: true,
  });
  if (child.pid !== undefined) {
    running.add(child);
    child.once('exit', () => running.delete(child));
  }
  return child;
}

/** Sends `signal` to a started service's whole process group (it and anything it started). */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}
