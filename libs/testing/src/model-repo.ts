import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
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

/**
 * The model repository built from the golden tiny-a checkpoints (official formats) with the
 * compiled `ibllm models build`, cached under `<repo>/.models/test-golden-tiny-a` so the many
 * process tests share one build. It is built in a temp folder and renamed into place, so
 * concurrent test files never see a half-written repository. Needs `npm run build` first.
 */
export function goldenModelRepository(): string {
  const out = join(repoRoot(), '.models', 'test-golden-tiny-a');
  if (existsSync(join(out, BUILT_MARKER))) return out;
  const cli = join(repoRoot(), 'tools', 'cli', 'bin', 'ibllm.js');
  const tmp = `${out}.tmp-${process.pid}`;
  mkdirSync(join(repoRoot(), '.models'), { recursive: true });
  rmSync(tmp, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [cli, 'models', 'build', ...goldenBuildArgs(tmp)], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`building the golden model repository failed:\n${r.stderr}`);
  writeFileSync(join(tmp, BUILT_MARKER), new Date().toISOString());
  if (existsSync(join(out, BUILT_MARKER))) {
    rmSync(tmp, { recursive: true, force: true }); // another test file won the race
  } else {
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
  }
  return out;
}
