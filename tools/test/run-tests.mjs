#!/usr/bin/env node
// Runs the whole test suite with vitest and prints the closing line CI reads:
//   tests: N passed, N failed[, N skipped]
// Extra arguments go to vitest (e.g. a file filter). Exit status is vitest's, and non-zero as well
// when any test was skipped or left as todo: a skipped test must never count as passed silently.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const report = join(root, 'test-results', 'vitest.json');
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

let passed = 0;
let failed = 0;
let skipped = 0;
let ran = false;
try {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  passed = json.numPassedTests ?? 0;
  failed = json.numFailedTests ?? 0;
  skipped = (json.numPendingTests ?? 0) + (json.numTodoTests ?? 0);
  // A file that failed to load (syntax error, missing import) counts as a failure too.
  const brokenSuites = (json.testResults ?? []).filter(
    (s) => s.status === 'failed' && (s.assertionResults ?? []).length === 0,
  );
  failed += brokenSuites.length;
  ran = true;
} catch (error) {
  console.error(`could not read the vitest report ${report}: ${error.message}`);
}

const skippedPart = skipped > 0 ? `, ${skipped} skipped` : '';
console.log(`tests: ${passed} passed, ${failed} failed${skippedPart}`);
const status = run.status ?? 1;
process.exit(status !== 0 ? status : !ran || failed > 0 || skipped > 0 ? 1 : 0);
