import { spawn, type ChildProcess } from 'node:child_process';
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
  /** Sends `signal` and waits for the exit; SIGKILLs after `timeoutMs`. */
  stop(
    signal?: NodeJS.Signals,
    timeoutMs?: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts a real process (e.g. a service's compiled main.js) for medium and e2e tests. Its stdout
 * is read as JSON lines so tests can wait for events such as `grpc.listening` and learn the port
 * an ephemeral bind picked.
 */
export function startProcess(
  command: string,
  args: readonly string[],
  options: { env?: Readonly<Record<string, string | undefined>>; cwd?: string } = {},
): RunningProcess {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
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
      if (child.exitCode !== null || child.signalCode !== null) return exitPromise;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const result = await exitPromise;
      clearTimeout(timer);
      return result;
    },
  };
}
