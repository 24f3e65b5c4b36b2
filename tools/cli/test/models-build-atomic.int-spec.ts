// `ibllm models build` interrupted: exit status 130, a clear message, and the repository at --out
// exactly as it was — encoders and language side together (one commit for the whole build).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileDigests, goldenBuildArgs } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../src/cli-error';
import type { ProgressSink } from '../src/progress-line';
import { modelsBuild } from '../src/commands/models-build.command';

const root = mkdtempSync(join(tmpdir(), 'models-build-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const BIN = join(__dirname, '..', 'bin', 'ibllm.js');

/** Runs the compiled CLI and sends `signal` when a stderr line starts with `when`. */
async function interruptedRun(
  args: string[],
  when: string,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; stderr: string[] }> {
  const child = spawn(process.execPath, [BIN, 'models', 'build', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr }).on('line', (line) => {
    stderr.push(line);
    if (line.startsWith(when)) child.kill(signal);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, stderr };
}

const quiet: ProgressSink = { write: () => undefined, isTTY: false };

describe('ibllm models build, interrupted', () => {
  it('exits 130, says so, and leaves the repository built before byte for byte', async () => {
    const out = join(root, 'repo');
    const lines: string[] = [];
    await modelsBuild(goldenBuildArgs(out), (l) => lines.push(l), { progress: quiet });
    expect(lines.at(-1)).toMatch(/^done in /);
    const before = fileDigests(out);
    expect(Object.keys(before).some((f) => f.startsWith('imagebind-vision/1/'))).toBe(true);

    const controller = new AbortController();
    const log: string[] = [];
    const error = await modelsBuild(
      goldenBuildArgs(out),
      (l) => {
        log.push(l);
        // The encoders are built by now and the decoder too: only the commit would replace them.
        if (l.startsWith('building llama-decoder/visual.onnx')) controller.abort();
      },
      { progress: quiet, signal: controller.signal },
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(130);
    expect((error as CliError).message).toBe(`interrupted: removed the partial build; ${out} is as it was`);
    expect(log.some((l) => l.startsWith('wrote '))).toBe(false);
    expect(fileDigests(out)).toEqual(before);
  });

  it('a failing build says the repository was left as it was and rethrows the cause', async () => {
    const out = join(root, 'fresh');
    const log: string[] = [];
    const args = goldenBuildArgs(out).map((a) => (a.endsWith('knn.index') ? join(root, 'missing.index') : a));
    await expect(modelsBuild(args, (l) => log.push(l), { progress: quiet })).rejects.toThrow(
      /knn index not found/,
    );
    expect(log.at(-1)).toBe(`build failed: removed the partial build; ${out} is as it was`);
    // The encoders had been built into staging: nothing of them is left, not even the folder.
    expect(existsSync(out)).toBe(false);
  });

  it('on a real SIGINT / SIGTERM the process exits 130 / 143 and removes the components it had staged', async () => {
    const out = join(root, 'signals');
    // The encoders are new here (only the language side was built before): they must not appear.
    const g = goldenBuildArgs(out);
    const languageOnly = g.flatMap((arg, i) =>
      arg.startsWith('--imagebind') || (g[i - 1] ?? '').startsWith('--imagebind') ? [] : [arg],
    );
    await modelsBuild(languageOnly, () => undefined, { progress: quiet });
    const before = fileDigests(out);
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const run = await interruptedRun(g, 'building imagebind-text/', signal);
      expect(run.code).toBe(code);
      expect(run.stderr.at(-1)).toBe(`ibllm: interrupted: removed the partial build; ${out} is as it was`);
      expect(fileDigests(out)).toEqual(before);
      expect(readdirSync(out).sort()).toEqual(['bind', 'knn-cache', 'llama-decoder', 'tokenizer']);
    }
  });
});
