import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** One operator type on one execution provider, per run of the session. */
export interface OrtProfileOp {
  readonly op: string;
  readonly provider: string;
  /** Kernels of this type the provider ran per run. */
  readonly kernels: number;
  /** Their summed kernel time per run, µs, as the profiler records it around each kernel. */
  readonly micros: number;
  /**
   * Device time per run, µs, of the GPU programs these kernels dispatched (the WebGPU provider's
   * timestamp queries; 0 where the provider or adapter records none).
   */
  readonly deviceMicros: number;
}

/**
 * What onnxruntime's profile of a session (OrtSessionOptions.profileFilePrefix) says about its
 * runs, averaged over the runs it recorded. A kernel's time is what the profiler measures around
 * its call on the host; the WebGPU provider also records each GPU program's own duration with
 * timestamp queries (`Api` events). Host time far above device time is a step bounded by the host's
 * cost per kernel, not by the device.
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
  /** GPU programs dispatched per run and their summed device time per run, µs (0 without them). */
  readonly devicePrograms: number;
  readonly deviceMicros: number;
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
  // GPU programs: `Api` events named <node>&<op type>&<program>
  const deviceByOp = new Map<string, number>();
  let programs = 0;
  for (const raw of events) {
    const e = raw as ProfileEvent;
    const dur = typeof e.dur === 'number' ? e.dur : 0;
    if (e.cat === 'Session' && e.name === 'model_run') runDurations.push(dur);
    if (e.cat === 'Api' && typeof e.name === 'string' && e.name.split('&').length === 3) {
      const op = e.name.split('&')[1]!;
      deviceByOp.set(op, (deviceByOp.get(op) ?? 0) + dur);
      programs += 1;
      continue;
    }
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
  // device time goes to the GPU provider's entry of the op (the one that dispatches programs)
  const ops = [...byOp.values()]
    .map((o) => ({
      op: o.op,
      provider: o.provider,
      kernels: o.kernels / runs,
      micros: o.micros / runs,
      deviceMicros: o.provider === 'CPUExecutionProvider' ? 0 : (deviceByOp.get(o.op) ?? 0) / runs,
    }))
    .sort((a, b) => b.micros - a.micros);
  let deviceMicros = 0;
  for (const micros of deviceByOp.values()) deviceMicros += micros / runs;
  for (const o of ops) {
    kernels[o.provider] = (kernels[o.provider] ?? 0) + o.kernels;
    micros[o.provider] = (micros[o.provider] ?? 0) + o.micros;
  }
  return {
    runs,
    runMicros: median(runDurations),
    kernels,
    micros,
    devicePrograms: programs / runs,
    deviceMicros,
    ops,
  };
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
