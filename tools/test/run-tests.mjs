#!/usr/bin/env node
// Runs the whole test suite with vitest and prints the closing line CI reads:
//   tests: N passed, N failed[, N skipped]
// Extra arguments go to vitest (e.g. a file filter). Exit status is vitest's, and non-zero as well
// when any test was skipped or left as todo: a skipped test must never count as passed silently.
//
// How files count (vitest 4.1's JSON report): a file whose status is "failed" failed somewhere —
// a test, a hook, or the file itself. When a beforeAll throws, vitest reports the file's tests as
// *skipped*; they never ran, so here they count as failed. When an afterAll throws (or the file did
// not load), every test may say "passed" or there may be none: the file then counts one failure of
// its own. IBLLM_TEST_REPORT moves the JSON report (the runner's own fixture test uses it).
//
// No process the tests start may outlive them (a leaked gateway keeps its ports, keys and memory on
// the CI machine). The run's id goes into IBLLM_TEST_RUN, which every process the tests start
// inherits (the harness adds it to environments built from scratch: testRunEnv in libs/testing).
// Once vitest has exited, any process still carrying the id after a short grace is named, killed,
// and counted as one failure. Nested runners (the fixture test) append their own id to the list.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const MARKER = 'IBLLM_TEST_RUN';
const runId = `${process.pid}-${randomBytes(6).toString('hex')}`;
/** How long processes the tests stopped may take to finish exiting (a drain after SIGTERM). */
const LEFTOVER_GRACE_MS = 10_000;

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const report = process.env['IBLLM_TEST_REPORT'] || join(root, 'test-results', 'vitest.json');
mkdirSync(dirname(report), { recursive: true });
rmSync(report, { force: true });

const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const run = spawnSync(
  process.execPath,
  [
    vitest,
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${report}`,
    ...process.argv.slice(2),
  ],
  {
    cwd: root,
    stdio: 'inherit',
    env: {
      ...process.env,
      NX_DAEMON: 'false',
      NX_NO_CLOUD: 'true',
      [MARKER]: [process.env[MARKER], runId].filter(Boolean).join(' '),
    },
  },
);

/** The live processes (not zombies) whose environment carries this run's id: Linux /proc. */
function carriersOfRunId() {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const variable = readFileSync(`/proc/${entry}/environ`, 'latin1')
        .split('\0')
        .find((v) => v.startsWith(`${MARKER}=`));
      if (
        variable === undefined ||
        !variable
          .slice(MARKER.length + 1)
          .split(' ')
          .includes(runId)
      )
        continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      found.push({ pid: Number(entry), command });
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/** Processes of this run still alive after the grace: named, killed, returned. */
async function leftoverProcesses() {
  if (!existsSync('/proc/self/environ')) {
    console.log('leftover-process check skipped: no /proc on this system');
    return [];
  }
  const deadline = Date.now() + LEFTOVER_GRACE_MS;
  let alive = carriersOfRunId();
  while (alive.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    alive = carriersOfRunId();
  }
  for (const p of alive) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // Exited just now.
    }
  }
  return alive;
}
const leftovers = await leftoverProcesses();

const NOT_RUN = new Set(['skipped', 'pending', 'todo', 'disabled']);
let passed = 0;
let failed = 0;
let skipped = 0;
let ran = false;
/** Files that failed outside their tests: hook errors and load errors, named at the end. */
const fileFailures = [];
try {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  for (const file of json.testResults ?? []) {
    const results = file.assertionResults ?? [];
    const fileFailed = file.status === 'failed';
    let failedHere = 0;
    let notRun = 0;
    for (const test of results) {
      if (test.status === 'passed') passed++;
      else if (test.status === 'failed') failedHere++;
      else if (NOT_RUN.has(test.status)) notRun++;
      else failedHere++; // an unknown status is never a pass
    }
    if (fileFailed && notRun > 0) {
      // Reported skipped because a hook (or the collection) failed: they are failures.
      failedHere += notRun;
      fileFailures.push({ file: file.name, tests: notRun, message: file.message });
    } else {
      skipped += notRun;
    }
    if (fileFailed && failedHere === 0) {
      // Every test passed (or there were none), yet the file failed: an afterAll, or a load error.
      failedHere = 1;
      fileFailures.push({ file: file.name, tests: 0, message: file.message });
    }
    failed += failedHere;
  }
  ran = true;
} catch (error) {
  console.error(`could not read the vitest report ${report}: ${error.message}`);
}

for (const f of fileFailures) {
  const what = f.tests > 0 ? `${f.tests} test(s) never ran` : 'the file failed outside its tests';
  const why = String(f.message ?? '').split('\n')[0] || 'no message';
  console.log(`failed: ${relative(root, f.file)}: ${what} (hook or load error: ${why})`);
}
for (const p of leftovers) {
  console.log(`failed: process ${p.pid} outlived the tests (killed now): ${p.command.slice(0, 300)}`);
}
failed += leftovers.length;
const skippedPart = skipped > 0 ? `, ${skipped} skipped` : '';
console.log(`tests: ${passed} passed, ${failed} failed${skippedPart}`);
const status = run.status ?? 1;
process.exit(status !== 0 ? status : !ran || failed > 0 || skipped > 0 ? 1 : 0);
