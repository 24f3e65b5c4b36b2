// Runs helm (v4, from tools/deploy/bin/ensure-helm.mjs) on a throwaway copy of charts/imagebind.
//
// Offline rendering: `helm template` and `helm lint` refuse a chart whose dependencies are missing
// from its charts/ folder, and the official Qdrant chart cannot be downloaded on the build machines
// (only npm and Debian are reachable). The copy therefore gets a placeholder subchart
// charts/qdrant/Chart.yaml — name and pinned version only, no templates — so our own templates
// render. The Qdrant chart's own objects (StatefulSet, Services, ConfigMap...) are NOT rendered or
// validated here; `helm dependency build` fetches the real chart for an install (deploy/README.md).
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

export const ROOT = join(__dirname, '..', '..', '..', '..');
export const CHART_DIR = join(ROOT, 'charts', 'imagebind');
export const ENV_DIR = join(ROOT, 'deploy', 'environments');
export const RELEASE = 'ibllm';
export const NAMESPACE = 'imagebind';

/** The environments the chart ships values for, plus the chart defaults. */
export const ENVIRONMENTS = ['default', 'dev', 'prod'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

export interface HelmResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A Kubernetes object as rendered: only the type fields are known up front. */
export interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly labels?: Record<string, string> };
  readonly [field: string]: unknown;
}

interface ChartDependency {
  readonly name: string;
  readonly version: string;
  readonly repository: string;
  readonly condition?: string;
}

let helmPath: string | undefined;

/** Path of the helm binary (installs it under .tools/ on first use; HELM_BIN overrides). */
export function helmBin(): string {
  helmPath ??= execFileSync(process.execPath, [join(ROOT, 'tools', 'deploy', 'bin', 'ensure-helm.mjs')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return helmPath;
}

export function chartDependencies(): ChartDependency[] {
  const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as {
    dependencies?: ChartDependency[];
  };
  return chart.dependencies ?? [];
}

/**
 * Copies the chart into a temp folder with a placeholder for every dependency (see the header).
 * Returns the copy's path and a cleanup function.
 */
export function prepareChart(): { dir: string; cleanup: () => void } {
  const work = mkdtempSync(join(tmpdir(), 'imagebind-chart-'));
  const dir = join(work, 'imagebind');
  cpSync(CHART_DIR, dir, {
    recursive: true,
    // A developer's `helm dependency build` output must not change what the tests render.
    filter: (src) => !src.startsWith(join(CHART_DIR, 'charts')),
  });
  for (const dep of chartDependencies()) {
    const sub = join(dir, 'charts', dep.name);
    mkdirSync(sub, { recursive: true });
    writeFileSync(
      join(sub, 'Chart.yaml'),
      `apiVersion: v2\nname: ${dep.name}\nversion: ${dep.version}\ndescription: offline placeholder for ${dep.repository}\n`,
    );
  }
  return { dir, cleanup: () => rmSync(work, { recursive: true, force: true }) };
}

export function helm(args: readonly string[]): HelmResult {
  const r = spawnSync(helmBin(), args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `-f` arguments of an environment. */
export function valuesArgs(env: Environment): string[] {
  return env === 'default' ? [] : ['-f', join(ENV_DIR, env, 'values.yaml')];
}

export function template(chartDir: string, env: Environment, extra: readonly string[] = []): HelmResult {
  return helm(['template', RELEASE, chartDir, '--namespace', NAMESPACE, ...valuesArgs(env), ...extra]);
}

export function lint(chartDir: string, env: Environment): HelmResult {
  return helm(['lint', '--strict', chartDir, '--namespace', NAMESPACE, ...valuesArgs(env)]);
}

/** Renders and parses; throws with helm's stderr when rendering fails. */
export function render(
  chartDir: string,
  env: Environment,
  extra: readonly string[] = [],
): {
  text: string;
  objects: K8sObject[];
} {
  const r = template(chartDir, env, extra);
  if (r.status !== 0) throw new Error(`helm template (${env} ${extra.join(' ')}) failed:\n${r.stderr}`);
  return { text: r.stdout, objects: parseManifests(r.stdout) };
}

/** Every non-empty document of a multi-document YAML stream; a YAML error throws. */
export function parseManifests(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML in rendered output: ${doc.errors[0]!.message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    objects.push(value as K8sObject);
  }
  return objects;
}

/** Keeps the rendered manifests for CI artefacts (test-results/ is uploaded). */
export function saveManifests(name: string, text: string): string {
  const dir = join(ROOT, 'test-results', 'helm');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, text);
  return file;
}
