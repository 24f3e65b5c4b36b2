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
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

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
  { cwd: root, stdio: 'inherit', env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' } },
);

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
const skippedPart = skipped > 0 ? `, ${skipped} skipped` : '';
console.log(`tests: ${passed} passed, ${failed} failed${skippedPart}`);
const status = run.status ?? 1;
process.exit(status !== 0 ? status : !ran || failed > 0 || skipped > 0 ? 1 : 0);
