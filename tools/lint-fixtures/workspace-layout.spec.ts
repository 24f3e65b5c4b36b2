// The layout is the architecture (STYLE.md): every project is tagged so the lint constraints
// apply to it, services never depend on each other, and heavy runtimes stay in their one lib.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..');

interface Pkg {
  name: string;
  nx?: { tags?: string[] };
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

function projects(dir: string): { dir: string; pkg: Pkg }[] {
  const base = join(root, dir);
  if (!existsSync(base)) return [];
  return readdirSync(base)
    .filter((d) => existsSync(join(base, d, 'package.json')))
    .map((d) => ({
      dir: `${dir}/${d}`,
      pkg: JSON.parse(readFileSync(join(base, d, 'package.json'), 'utf8')) as Pkg,
    }));
}

const libs = projects('libs');
const services = projects('services');

describe('workspace layout', () => {
  it('has the fixed top-level shape', () => {
    for (const entry of [
      'services',
      'proto',
      'deploy',
      'charts',
      'libs',
      'tools',
      'docker-compose.yml',
      'nx.json',
    ]) {
      expect(existsSync(join(root, entry)), entry).toBe(true);
    }
  });

  it('gives every lib and service exactly one type tag and one adapter tag', () => {
    expect(libs.length).toBeGreaterThan(0);
    expect(services.length).toBeGreaterThan(0);
    for (const { dir, pkg } of [...libs, ...services]) {
      const tags = pkg.nx?.tags ?? [];
      expect(
        tags.filter((t) => t.startsWith('type:')),
        dir,
      ).toHaveLength(1);
      expect(
        tags.filter((t) => t.startsWith('adapter:')),
        dir,
      ).toHaveLength(1);
      const expectedType = dir.startsWith('services/')
        ? 'type:service'
        : dir === 'libs/testing'
          ? 'type:test'
          : 'type:lib';
      expect(tags, dir).toContain(expectedType);
    }
  });

  it('keeps services from depending on each other', () => {
    const serviceNames = new Set(services.map((s) => s.pkg.name));
    for (const { dir, pkg } of services) {
      const deps = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies });
      expect(
        deps.filter((d) => serviceNames.has(d)),
        dir,
      ).toEqual([]);
    }
  });

  it('lists onnxruntime-node only in libs/inference and bullmq only in libs/queue', () => {
    for (const { dir, pkg } of [...libs, ...services]) {
      const deps = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies });
      if (dir !== 'libs/inference')
        expect(
          deps.filter((d) => d.startsWith('onnxruntime')),
          dir,
        ).toEqual([]);
      if (dir !== 'libs/queue') expect(deps, dir).not.toContain('bullmq');
    }
    expect(Object.keys(libs.find((l) => l.dir === 'libs/inference')!.pkg.dependencies ?? {})).toContain(
      'onnxruntime-node',
    );
  });

  it('skips onnxruntime-node install scripts (they download from unreachable hosts)', () => {
    const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      allowScripts?: Record<string, boolean>;
    };
    expect(rootPkg.allowScripts?.['onnxruntime-node']).toBe(false);
  });
});
