import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cgroupCpuQuota, defaultIntraOpThreads } from './cpu-threads';

describe('intra-op threads from the CPUs the process may use', () => {
  const roots: string[] = [];
  const cgroup = (files: Record<string, string>): string => {
    const root = mkdtempSync(join(tmpdir(), 'ibllm-cgroup-'));
    roots.push(root);
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(root, name, '..'), { recursive: true });
      writeFileSync(join(root, name), text);
    }
    return root;
  };
  afterEach(() => {
    for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
  });

  it('reads a cgroup v2 quota, and "max" as no limit', async () => {
    expect(await cgroupCpuQuota(cgroup({ 'cpu.max': '150000 100000\n' }))).toBe(1.5);
    expect(await cgroupCpuQuota(cgroup({ 'cpu.max': 'max 100000\n' }))).toBeUndefined();
  });

  it('reads a cgroup v1 quota, and -1 as no limit', async () => {
    const v1 = (quota: string) =>
      cgroup({ 'cpu/cpu.cfs_quota_us': `${quota}\n`, 'cpu/cpu.cfs_period_us': '100000\n' });
    expect(await cgroupCpuQuota(v1('400000'))).toBe(4);
    expect(await cgroupCpuQuota(v1('-1'))).toBeUndefined();
  });

  it('takes the tightest cpu.max from the process cgroup up to the root', async () => {
    const root = cgroup({
      'cpu.max': 'max 100000',
      'kubepods/cpu.max': '800000 100000',
      'kubepods/pod1/cpu.max': '250000 100000',
      'kubepods/pod1/app/cpu.max': 'max 100000',
    });
    expect(await cgroupCpuQuota(root, '/kubepods/pod1/app')).toBe(2.5);
    expect(await cgroupCpuQuota(root, '/kubepods')).toBe(8);
    expect(await cgroupCpuQuota(root, '/')).toBeUndefined();
    expect(await defaultIntraOpThreads(root, '/kubepods/pod1/app')).toBe(Math.min(availableParallelism(), 3));
  });

  it('finds no quota where there are no cgroup files', async () => {
    expect(await cgroupCpuQuota(cgroup({}))).toBeUndefined();
  });

  it('takes one thread per CPU, capped by the quota rounded up, never below one', async () => {
    const cpus = availableParallelism();
    expect(await defaultIntraOpThreads(cgroup({}))).toBe(cpus);
    expect(await defaultIntraOpThreads(cgroup({ 'cpu.max': 'max 100000' }))).toBe(cpus);
    expect(await defaultIntraOpThreads(cgroup({ 'cpu.max': '50000 100000' }))).toBe(1);
    expect(await defaultIntraOpThreads(cgroup({ 'cpu.max': '10000 100000' }))).toBe(1);
    expect(await defaultIntraOpThreads(cgroup({ 'cpu.max': '120000 100000' }))).toBe(Math.min(cpus, 2));
    expect(await defaultIntraOpThreads(cgroup({ 'cpu.max': '6400000 100000' }))).toBe(Math.min(cpus, 64));
  });
});
