import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface RunningProcess {
  readonly child: ChildProcess;
  /** Every stdout line parsed as JSON (lines that are not JSON are kept as `{ raw }`). */
  readonly lines: Record<string, unknown>[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the first (past or future) stdout line matching `predicate`. */
  waitForLine(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Sends `signal` to the process's whole group (it and everything it started that did not leave
   * the group) and waits until the process has exited and the group is empty; SIGKILLs the group
   * after `timeoutMs`.
   */
  stop(
    signal?: NodeJS.Signals,
    timeoutMs?: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The variable tools/test/run-tests.mjs sets for one run (a list of run ids, one per nested
 * runner). Every process the tests start inherits it — through the environment, or through
 * testRunEnv() where a test builds one from scratch — so the runner finds any still alive at the
 * end of the run, fails the run and kills them.
 */
export const TEST_RUN_MARKER = 'IBLLM_TEST_RUN';

/** The run marker to add to an environment a test builds from scratch (empty outside the runner). */
export function testRunEnv(): Record<string, string> {
  const marker = process.env[TEST_RUN_MARKER];
  return marker === undefined ? {} : { [TEST_RUN_MARKER]: marker };
}

/** After SIGKILL, how long to wait for a process group to empty before giving up on it. */
const KILLED_GROUP_WAIT_MS = 5_000;

/**
 * Whether any process of the group `pgid` is still running. On Linux, read from /proc so that
 * zombies (exited, waiting for an init that may be slow or absent to reap them) do not count.
 */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (!existsSync('/proc/self/stat')) return true;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
      const [state, , group] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(group) === pgid && state !== 'Z') return true;
    } catch {
      // Gone meanwhile.
    }
  }
  return false;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is empty already.
  }
}

async function groupGone(pgid: number, deadline: number): Promise<boolean> {
  while (groupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/**
 * Starts a real process (e.g. a service's compiled main.js) for medium and e2e tests. Its stdout
 * is read as JSON lines so tests can wait for events such as `grpc.listening` and learn the port
 * an ephemeral bind picked. It runs in a process group of its own (detached), so stop() ends it
 * with whatever it started, and nothing of it survives a test that stops it; `env` is all of its
 * environment, plus the test run's marker (testRunEnv).
 */
export function startProcess(
  command: string,
  args: readonly string[],
  options: { env?: Readonly<Record<string, string | undefined>>; cwd?: string } = {},
): RunningProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...testRunEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: {
    predicate: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  if (child.stdout !== null) {
    createInterface({ input: child.stdout }).on('line', (text) => {
      let line: Record<string, unknown>;
      try {
        const parsed: unknown = JSON.parse(text);
        line =
          typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : { raw: text };
      } catch {
        line = { raw: text };
      }
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.predicate(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    });
  }
  const exitPromise = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });

  const describe = (): string =>
    `stdout:\n${lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${stderr}`;

  return {
    child,
    lines,
    stderr: () => stderr,
    async waitForLine(predicate, timeoutMs = 15_000) {
      const seen = lines.find(predicate);
      if (seen !== undefined) return seen;
      return new Promise((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (l: Record<string, unknown>) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no matching line within ${timeoutMs} ms\n${describe()}`));
        }, timeoutMs);
        waiters.push(waiter);
        void exitPromise.then(({ code, signal }) => {
          if (waiters.includes(waiter)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            clearTimeout(timer);
            reject(
              new Error(
                `process exited (code ${code}, signal ${signal}) before a matching line\n${describe()}`,
              ),
            );
          }
        });
      });
    },
    exited: () => exitPromise,
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      const pgid = child.pid;
      if (pgid === undefined) return exitPromise; // never started: an 'error', no group
      const deadline = Date.now() + timeoutMs;
      signalGroup(pgid, signal);
      const timer = setTimeout(() => signalGroup(pgid, 'SIGKILL'), timeoutMs);
      const result = await exitPromise;
      // The leader is gone; the rest of its group (e.g. a launcher's children) gets the same
      // deadline, then SIGKILL.
      if (!(await groupGone(pgid, deadline))) {
        signalGroup(pgid, 'SIGKILL');
        await groupGone(pgid, Date.now() + KILLED_GROUP_WAIT_MS);
      }
      clearTimeout(timer);
      return result;
    },
  };
}
