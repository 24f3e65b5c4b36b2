import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';

/**
 * Intra-op threads for an onnxruntime session when the configuration leaves it to us (0 or
 * unset): one per CPU this process may run on — its affinity mask, capped by a cgroup CPU quota
 * (a Kubernetes `resources.limits.cpu`) — and at least one.
 *
 * onnxruntime's own default (intraOpNumThreads 0) counts physical cores through its CPU topology
 * probe. On the 2-vCPU build VMs that probe finds one core: every session ran on one thread (one
 * core busy, `Threads:` unchanged from an explicit 1) and a 4-bit MatMulNBits at decode shape ran
 * 1.4–2.4× slower than with 2 threads (bench/decoder/matmul-nbits.mjs --threads 0 | 2). A quota,
 * on the other hand, is invisible to it: on a 64-core node with a 4-CPU limit it would start 64
 * threads that the kernel throttles.
 */
export async function defaultIntraOpThreads(cgroupRoot?: string, self?: string): Promise<number> {
  // This process's own answer is read once: every session of a standalone server asks for it.
  if (cgroupRoot === undefined && self === undefined) return (processDefault ??= threadsFor());
  return threadsFor(cgroupRoot, self);
}

let processDefault: Promise<number> | undefined;

async function threadsFor(cgroupRoot = '/sys/fs/cgroup', self?: string): Promise<number> {
  const cpus = availableParallelism();
  const quota = await cgroupCpuQuota(cgroupRoot, self);
  return Math.max(1, quota === undefined ? cpus : Math.min(cpus, Math.ceil(quota)));
}

/**
 * CPUs' worth of time per period the cgroup grants, the tightest along the way from this process's
 * cgroup up to the root (cgroup v2 `cpu.max`; v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`);
 * undefined when unlimited or unreadable. `self` is this process's v2 cgroup path (from
 * /proc/self/cgroup; "/" inside a container with its own cgroup namespace).
 */
export async function cgroupCpuQuota(
  cgroupRoot = '/sys/fs/cgroup',
  self?: string,
): Promise<number | undefined> {
  const own = self ?? (await readText('/proc/self/cgroup'))?.match(/^0::(\S*)$/m)?.[1] ?? '/';
  const parts = own.split('/').filter((p) => p.length > 0 && p !== '..');
  let tightest: number | undefined;
  for (let depth = parts.length; depth >= 0; depth--) {
    const dir = [cgroupRoot, ...parts.slice(0, depth)].join('/');
    const v2 = (await readText(`${dir}/cpu.max`))?.trim().split(/\s+/);
    const q = v2 === undefined ? undefined : ratio(v2[0], v2[1]);
    if (q !== undefined) tightest = Math.min(tightest ?? q, q);
  }
  if (tightest !== undefined) return tightest;
  const quota = await readText(`${cgroupRoot}/cpu/cpu.cfs_quota_us`);
  const period = await readText(`${cgroupRoot}/cpu/cpu.cfs_period_us`);
  return ratio(quota?.trim(), period?.trim());
}

function ratio(quota: string | undefined, period: string | undefined): number | undefined {
  const q = Number(quota);
  const p = Number(period);
  // "max" (v2) or -1 (v1) mean no limit
  return Number.isFinite(q) && q > 0 && Number.isFinite(p) && p > 0 ? q / p : undefined;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}
