import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { goldenDir } from './golden';

/** The repository root (libs/testing/{src,dist} sit two levels below it). */
export function repoRoot(): string {
  return resolve(__dirname, '..', '..', '..');
}

const BUILT_MARKER = '.built-ok';

/** `ibllm models build` arguments that build every component from the golden tiny-a files into `out`. */
export function goldenBuildArgs(out: string): string[] {
  const g = goldenDir();
  return [
    '--imagebind',
    join(g, 'imagebind_w3D.pth'),
    '--imagebind-config',
    join(g, 'imagebind_config.json'),
    '--llama-dir',
    join(g, 'llama'),
    '--adapter',
    join(g, '7B.pth'),
    '--knn',
    join(g, 'knn.index'),
    '--out',
    out,
  ];
}

/** Every file below `dir` (sorted), skipping nothing: dist folders hold only build output. */
function filesBelow(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .sort();
}

/**
 * What the cached repository was built from: the compiled code of every lib and of the CLI (their
 * contents) and the golden files (names, sizes, modification times). Any change — a builder fix, a
 * rebuilt lib, new golden data — gives another fingerprint, and the repository is built again.
 */
function buildFingerprint(): string {
  const root = repoRoot();
  const hash = createHash('sha256');
  const libs = join(root, 'libs');
  const code = [
    ...readdirSync(libs).flatMap((lib) => filesBelow(join(libs, lib, 'dist'))),
    ...filesBelow(join(root, 'tools', 'cli', 'dist')),
  ];
  for (const file of code) hash.update(`${relative(root, file)}\0`).update(readFileSync(file));
  for (const file of filesBelow(goldenDir())) {
    const st = statSync(file);
    hash.update(`${relative(goldenDir(), file)}\0${st.size}\0${st.mtimeMs}\0`);
  }
  return hash.digest('hex');
}

function builtWith(dir: string): string | undefined {
  const marker = join(dir, BUILT_MARKER);
  return existsSync(marker) ? readFileSync(marker, 'utf8').trim() : undefined;
}

/**
 * The model repository built from the golden tiny-a checkpoints (official formats) with the
 * compiled `ibllm models build`, cached under `<repo>/.models/test-golden-tiny-a` so the many
 * process tests share one build. The cache is kept only while it was built by the same compiled
 * code from the same golden files (see `buildFingerprint`); otherwise it is built again. It is
 * built in a temp folder and renamed into place, so concurrent test files never see a
 * half-written repository. Needs `npm run build` first.
 */
export function goldenModelRepository(): string {
  const out = join(repoRoot(), '.models', 'test-golden-tiny-a');
  const fingerprint = buildFingerprint();
  if (builtWith(out) === fingerprint) return out;
  const cli = join(repoRoot(), 'tools', 'cli', 'bin', 'ibllm.js');
  const tmp = `${out}.tmp-${process.pid}`;
  mkdirSync(join(repoRoot(), '.models'), { recursive: true });
  rmSync(tmp, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [cli, 'models', 'build', ...goldenBuildArgs(tmp)], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`building the golden model repository failed:\n${r.stderr}`);
  writeFileSync(join(tmp, BUILT_MARKER), `${fingerprint}\n`);
  if (builtWith(out) === fingerprint) {
    rmSync(tmp, { recursive: true, force: true }); // another test file won the race
  } else {
    const stale = `${out}.stale-${process.pid}`;
    if (existsSync(out)) renameSync(out, stale);
    renameSync(tmp, out);
    rmSync(stale, { recursive: true, force: true });
  }
  return out;
}
