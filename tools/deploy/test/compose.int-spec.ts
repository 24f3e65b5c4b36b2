// Medium test: docker-compose itself (the Debian package, v1.29; `config` needs no Docker engine)
// validates docker-compose.yml alone and with the GPU overlay, refuses to run without the API keys,
// and resolves both to the same services as the reader that compose.spec.ts checks.
// A missing docker-compose binary fails these tests: it is never a reason to skip them.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadCompose, projectOf, repoRoot, type ComposeService, type Env } from './compose-model';

const KEYS = { GATEWAY_API_KEYS: 'tenant-a:key-a', BATCH_WORKER_API_KEY: 'worker-key' };
const FILE_SETS = {
  base: ['docker-compose.yml'],
  gpu: ['docker-compose.yml', 'docker-compose.gpu.yml'],
} as const;

// An empty env file and HOME: nothing from the developer's shell, ~/.docker or a local .env leaks in.
const scratch = mkdtempSync(join(tmpdir(), 'ibllm-compose-'));
const emptyEnvFile = join(scratch, 'empty.env');
writeFileSync(emptyEnvFile, '');
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function dockerCompose(files: readonly string[], args: string[], env: Env): Run {
  const run = spawnSync(
    'docker-compose',
    ['--project-name', 'ibllm-test', '--env-file', emptyEnvFile, ...files.flatMap((f) => ['-f', f]), ...args],
    {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { PATH: process.env['PATH'], HOME: scratch, ...env },
      timeout: 60_000,
    },
  );
  if (run.error !== undefined) {
    const missing = (run.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      missing
        ? 'docker-compose is not installed: `apt-get install docker-compose` (the Debian package, v1.29; ' +
            '.ci/run must install it). These checks need no Docker engine, and they are never skipped.'
        : `docker-compose did not run: ${run.error.message}`,
    );
  }
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** What the checks compare: everything the static reader extracts, paths made absolute. */
function comparable(service: ComposeService): Record<string, unknown> {
  return {
    image: service.image,
    build:
      service.build === undefined
        ? undefined
        : { ...service.build, context: resolve(repoRoot, service.build.context) },
    environment: service.environment,
    // Merging files, docker-compose may reorder lists whose order does not matter.
    volumes: service.volumes
      .map((v) => ({ type: v.type, source: v.source, target: v.target, readOnly: v.readOnly }))
      .sort((a, b) => a.target.localeCompare(b.target)),
    tmpfs: service.tmpfs,
    ports: [...service.ports].sort((a, b) => a.target - b.target),
    readOnly: service.readOnly,
    dependsOn: service.dependsOn,
    networks: [...service.networks].sort(),
    healthcheck: service.healthcheck?.test,
    gpuDevices: service.gpuDevices,
  };
}

describe('docker-compose', () => {
  it('is installed', () => {
    const run = dockerCompose([], ['version', '--short'], {});
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  describe.each(Object.entries(FILE_SETS))('%s', (_label, files) => {
    it('accepts the files (config -q), without warnings', () => {
      const run = dockerCompose(files, ['config', '-q'], KEYS);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stderr, 'docker-compose warnings').toBe('');
    });

    it('refuses to run without the API keys, saying what to set', () => {
      for (const missing of Object.keys(KEYS)) {
        const run = dockerCompose(files, ['config', '-q'], { ...KEYS, [missing]: undefined });
        expect(run.status, `without ${missing}`).not.toBe(0);
        expect(run.stderr, `without ${missing}`).toContain(`set ${missing} to`);
      }
    });

    it('resolves to what compose.spec.ts checks', () => {
      const run = dockerCompose(files, ['config'], KEYS);
      expect(run.status, run.stderr).toBe(0);
      const theirs = projectOf(parse(run.stdout));
      const ours = loadCompose(files, KEYS);
      expect(Object.keys(theirs.services).sort()).toEqual(Object.keys(ours.services).sort());
      for (const [name, service] of Object.entries(ours.services)) {
        expect(comparable(theirs.services[name]!), name).toEqual(comparable(service));
      }
      expect(theirs.networks).toEqual(ours.networks);
      expect(theirs.volumes.sort()).toEqual(ours.volumes.sort());
    });
  });
});
