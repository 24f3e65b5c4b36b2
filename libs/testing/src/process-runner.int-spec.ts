// The process runner the medium and e2e tests start real processes with: stop() ends the process's
// whole group, escalating to SIGKILL, and every process carries the test run's marker (the runner
// finds leftovers by it).
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { groupAlive, startProcess, TEST_RUN_MARKER, type RunningProcess } from './process-runner';

/** A node process that starts a grandchild in its group; the grandchild says when it is set up. */
function parentOf(grandchild: string): RunningProcess {
  const parent = `
    const { spawn } = require('node:child_process');
    spawn(process.execPath, ['-e', ${JSON.stringify(grandchild)}], { stdio: ['ignore', 'inherit', 'inherit'] });
    setInterval(() => {}, 1000);`;
  return startProcess(process.execPath, ['-e', parent]);
}

/** Whether `pid` is a running process (not a zombie waiting to be reaped). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

const READY = `console.log(JSON.stringify({ event: 'grandchild.ready', pid: process.pid }));`;

let started: RunningProcess | undefined;
afterEach(async () => {
  await started?.stop('SIGKILL');
  started = undefined;
});

describe('startProcess', () => {
  it('stop() signals the whole group: a grandchild that exits on SIGTERM is gone with its parent', async () => {
    started = parentOf(`${READY} setInterval(() => {}, 1000);`);
    const grandchild = Number((await started.waitForLine((l) => l['event'] === 'grandchild.ready'))['pid']);
    expect(running(grandchild)).toBe(true);
    const t0 = Date.now();
    expect(await started.stop('SIGTERM', 20_000)).toEqual({ code: null, signal: 'SIGTERM' });
    expect(running(grandchild)).toBe(false);
    expect(groupAlive(started.child.pid!)).toBe(false);
    // Without waiting for the SIGKILL.
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('stop() SIGKILLs the group after the timeout: a grandchild that ignores SIGTERM does not survive', async () => {
    started = parentOf(`process.on('SIGTERM', () => {}); ${READY} setInterval(() => {}, 1000);`);
    const grandchild = Number((await started.waitForLine((l) => l['event'] === 'grandchild.ready'))['pid']);
    const t0 = Date.now();
    await started.stop('SIGTERM', 1_000);
    expect(running(grandchild)).toBe(false);
    expect(groupAlive(started.child.pid!)).toBe(false);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });

  it("carries the test run's marker into an environment built from scratch", async () => {
    const saved = process.env[TEST_RUN_MARKER];
    process.env[TEST_RUN_MARKER] = 'outer-run inner-run';
    try {
      started = startProcess(
        process.execPath,
        ['-e', `console.log(JSON.stringify({ marker: process.env.${TEST_RUN_MARKER} ?? null }))`],
        { env: {} },
      );
      expect((await started.waitForLine((l) => 'marker' in l))['marker']).toBe('outer-run inner-run');
    } finally {
      if (saved === undefined) delete process.env[TEST_RUN_MARKER];
      else process.env[TEST_RUN_MARKER] = saved;
    }
  });
});
