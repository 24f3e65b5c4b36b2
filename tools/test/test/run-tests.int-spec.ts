// The runner that prints CI's closing line (tools/test/run-tests.mjs), run as CI runs it, on
// fixture suites whose hooks break: a failing hook must show up as "N failed", never as passed or
// skipped, and the exit status must say so too. Likewise a process a test leaves running.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..', '..', '..');
const RUNNER = join(ROOT, 'tools', 'test', 'run-tests.mjs');
const FIXTURES = join(ROOT, 'tools', 'test', 'fixtures', 'runner');
const work = mkdtempSync(join(tmpdir(), 'ibllm-runner-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs the runner on the fixture files whose path contains `filter`; returns its summary line. */
function runFixtures(filter: string): { status: number | null; summary: string; output: string } {
  const r = spawnSync(process.execPath, [RUNNER, '--root', FIXTURES, filter], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, IBLLM_TEST_REPORT: join(work, `${filter}.json`), CI: 'true' },
  });
  const output = `${r.stdout}\n${r.stderr}`;
  const summary =
    output
      .split('\n')
      .filter((l) => /^tests: \d+ passed, \d+ failed/.test(l))
      .at(-1) ?? '';
  return { status: r.status, summary, output };
}

describe('tools/test/run-tests.mjs', () => {
  it('counts the tests of a file whose beforeAll throws as failed, not skipped', () => {
    const r = runFixtures('before-all-throws');
    expect(r.summary).toBe('tests: 0 passed, 2 failed');
    expect(r.output).toContain('before-all-throws.fixture.ts: 2 test(s) never ran');
    expect(r.output).toContain('fixture: the builder broke');
    expect(r.status).not.toBe(0);
  });

  it('counts a file whose afterAll throws as one failure beside its passed test', () => {
    const r = runFixtures('after-all-throws');
    expect(r.summary).toBe('tests: 1 passed, 1 failed');
    expect(r.output).toContain('after-all-throws.fixture.ts: the file failed outside its tests');
    expect(r.status).not.toBe(0);
  });

  it('reports a skipped test as skipped and exits non-zero', () => {
    const r = runFixtures('skipped');
    expect(r.summary).toBe('tests: 1 passed, 0 failed, 1 skipped');
    expect(r.status).not.toBe(0);
  });

  it('fails the run when a process the tests started outlives them: named, killed, one failure', async () => {
    const r = runFixtures('leaks-process');
    expect(r.summary).toBe('tests: 1 passed, 1 failed');
    const line = /^failed: process (\d+) outlived the tests \(killed now\): (.*)$/m.exec(r.output);
    expect(line?.[2]).toContain('leaked-by-fixture');
    expect(r.status).not.toBe(0);
    const pid = Number(line![1]);
    const alive = (): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    // Killed; gone once init has reaped it.
    await expect.poll(alive, { timeout: 10_000, interval: 100 }).toBe(false);
  });

  it('passes a clean file with exit 0', () => {
    const r = runFixtures('clean');
    expect(r.summary).toBe('tests: 1 passed, 0 failed');
    expect(r.status).toBe(0);
  });
});
