import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** One operator type on one execution provider, per run of the session. */
export interface OrtProfileOp {
  readonly op: string;
  readonly provider: string;
  /** Kernels of this type the provider ran per run. */
  readonly kernels: number;
  /** Their summed kernel time per run, µs (on a GPU provider: the host's time to record them). */
  readonly micros: number;
}

/**
 * What onnxruntime's profile of a session (OrtSessionOptions.profileFilePrefix) says about its
 * runs, averaged over the runs it recorded. For a GPU provider a kernel's time is what the host
 * spends on it (building and recording the dispatch), not the device's time: the figure that
 * bounds a decode step made of many small kernels.
 */
export interface OrtProfileSummary {
  /** The runs the profile recorded (model_run events). */
  readonly runs: number;
  /** Median wall time of one run, µs. */
  readonly runMicros: number;
  /** Kernels per run, by execution provider (e.g. WebGpuExecutionProvider, CPUExecutionProvider). */
  readonly kernels: Readonly<Record<string, number>>;
  /** Summed kernel time per run, µs, by execution provider. */
  readonly micros: Readonly<Record<string, number>>;
  /** Per operator type and provider, the most time first. */
  readonly ops: readonly OrtProfileOp[];
}

interface ProfileEvent {
  readonly cat?: unknown;
  readonly name?: unknown;
  readonly dur?: unknown;
  readonly args?: { readonly op_name?: unknown; readonly provider?: unknown };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Summarises the events of one onnxruntime profile (the JSON array the profiler writes). */
export function summarizeOrtProfile(events: readonly unknown[]): OrtProfileSummary {
  const runDurations: number[] = [];
  const byOp = new Map<string, { op: string; provider: string; kernels: number; micros: number }>();
  for (const raw of events) {
    const e = raw as ProfileEvent;
    const dur = typeof e.dur === 'number' ? e.dur : 0;
    if (e.cat === 'Session' && e.name === 'model_run') runDurations.push(dur);
    // each kernel appears as <node>_kernel_time, with _fence_before/_fence_after around it
    if (e.cat !== 'Node' || typeof e.name !== 'string' || !e.name.endsWith('_kernel_time')) continue;
    const op = typeof e.args?.op_name === 'string' ? e.args.op_name : '?';
    const provider = typeof e.args?.provider === 'string' ? e.args.provider : '?';
    const key = `${provider}\u0000${op}`;
    const entry = byOp.get(key) ?? { op, provider, kernels: 0, micros: 0 };
    entry.kernels += 1;
    entry.micros += dur;
    byOp.set(key, entry);
  }
  const runs = runDurations.length;
  if (runs === 0) throw new Error('the profile records no runs (no model_run events)');
  const kernels: Record<string, number> = {};
  const micros: Record<string, number> = {};
  const ops = [...byOp.values()]
    .map((o) => ({ op: o.op, provider: o.provider, kernels: o.kernels / runs, micros: o.micros / runs }))
    .sort((a, b) => b.micros - a.micros);
  for (const o of ops) {
    kernels[o.provider] = (kernels[o.provider] ?? 0) + o.kernels;
    micros[o.provider] = (micros[o.provider] ?? 0) + o.micros;
  }
  return { runs, runMicros: median(runDurations), kernels, micros, ops };
}

/**
 * Reads the newest profile written for `prefix` (onnxruntime names it `<prefix>_<time>.json`, next
 * to the prefix's directory) and summarises it.
 */
export function readOrtProfile(prefix: string): OrtProfileSummary {
  const dir = dirname(prefix);
  const stem = `${basename(prefix)}_`;
  const files = readdirSync(dir)
    .filter((f) => f.startsWith(stem) && f.endsWith('.json'))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (files.length === 0)
    throw new Error(`no onnxruntime profile ${prefix}_*.json (was the session released?)`);
  return summarizeOrtProfile(JSON.parse(readFileSync(files[0]!, 'utf8')) as unknown[]);
}
