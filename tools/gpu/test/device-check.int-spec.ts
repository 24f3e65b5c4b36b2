// Medium test: the device check (tools/gpu/decoder-check.sh) as far as a CPU machine can take it.
// The GPU machine is lent to few sessions, so a check that no longer bundles or whose flags the
// bench no longer takes would only show there, in a lease's minutes (it happened: the bundle lost
// two exports the bench had started to import, and nothing here noticed). This bundles
// bench/decoder/run.mjs exactly as tools/gpu/prepare.sh does and runs the bundle the way the
// script does — a build-only pass, then the measurement — on a tiny model: int4 on the WebGPU
// provider (Mesa's lavapipe here, as the golden WebGPU parity tests) and fp16 with float16 compute
// on the CPU. It checks what the device run reports: the provider, where the slot cache lives,
// decode steps at each context, and bytes per row and step that do not grow with the context.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = resolve(__dirname, '..', '..', '..');
const script = readFileSync(join(repoRoot, 'tools', 'gpu', 'decoder-check.sh'), 'utf8');
const bench = readFileSync(join(repoRoot, 'bench', 'decoder', 'run.mjs'), 'utf8');

/** Flags of other commands in the script (nvidia-smi, node, xz, …), not the bench's. */
const NOT_BENCH = new Set(['query-gpu', 'version', 'max-old-space-size']);

interface BenchReport {
  provider: string;
  format: string;
  half_compute: boolean;
  state_location: string;
  step_graph: 'step' | 'general';
  step_graph_speedup?: Record<string, Record<string, number>>;
  steps: Record<string, Record<string, { step_ms: number; tok_s: number }>>;
  transfer_bytes_per_row_step: Record<string, number>;
  profile: StepProfile;
  profile_2: StepProfile;
}

interface StepProfile {
  graph: 'step' | 'general';
  /** With the step graph: the general graph's steps, profiled in the same session. */
  general?: StepProfile;
  context: number;
  rows: number;
  steps: number;
  kernels_per_step: Record<string, number>;
  us_per_kernel: Record<string, number>;
  device_programs_per_step: number;
  device_us_per_step: number;
  top_ops: { op: string; provider: string; kernels: number }[];
}

describe('tools/gpu/decoder-check.sh, short of the GPU', () => {
  // Inside node_modules/.cache: the bundle imports onnxruntime-node, which resolves from there.
  let dir: string;
  let bundle: string;
  beforeAll(() => {
    const cache = join(repoRoot, 'node_modules', '.cache');
    mkdirSync(cache, { recursive: true });
    dir = mkdtempSync(join(cache, 'gpu-check-'));
    bundle = join(dir, 'bench.mjs');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('passes the bench only flags it takes', () => {
    const flags = new Set([...script.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!));
    const benchFlags = [...flags].filter((f) => !NOT_BENCH.has(f));
    expect(benchFlags).toEqual(expect.arrayContaining(['provider', 'format', 'model-dir', 'build-only']));
    const options = bench.slice(
      bench.indexOf('parseArgs({'),
      bench.indexOf('\n});', bench.indexOf('parseArgs({')),
    );
    for (const flag of benchFlags)
      expect(options, `--${flag} in decoder-check.sh`).toMatch(new RegExp(`(^|\\s|')${flag}'?:`, 'm'));
  });

  it('bundles the bench as prepare.sh does', () => {
    const rolldown = join(repoRoot, 'node_modules', '.bin', 'rolldown');
    const run = spawnSync(rolldown, ['-c', 'tools/gpu/rolldown.config.mjs', '--file', bundle], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    expect(run.stderr + run.stdout, 'rolldown').not.toMatch(/error/i);
    expect(run.status).toBe(0);
    expect(existsSync(bundle)).toBe(true);
  }, 60_000);

  /** The script's two passes on a tiny model; the last line of the measurement is its JSON. */
  function measure(provider: string, format: string, extra: string[]): BenchReport {
    const shape = [
      ...['--provider', provider, '--dim', '64', '--layers', '1', '--heads', '2', '--vocab', '500'],
      ...['--streams', '2', '--capacity', '40', '--contexts', '8,24', '--tokens', '4', '--prompt', '4'],
      ...[
        '--kv',
        'float16',
        '--sections',
        'steps',
        '--reps',
        '1',
        '--profile-steps',
        '2',
        '--profile-streams',
      ],
      ...['--json'],
      ...['--format', format, ...extra],
      ...['--model-dir', join(dir, 'models', format)],
    ];
    const run = (args: string[]) =>
      spawnSync(process.execPath, [bundle, ...args], { cwd: dir, encoding: 'utf8', timeout: 170_000 });
    const build = run([...shape, '--build-only']);
    expect(build.status, build.stderr).toBe(0);
    const measured = run(shape);
    expect(measured.status, measured.stderr).toBe(0);
    const last = measured.stdout.trim().split('\n').at(-1)!;
    return JSON.parse(last) as BenchReport;
  }

  function expectDecodeReport(report: BenchReport): void {
    expect(Object.keys(report.steps).sort()).toEqual(['24', '8']);
    for (const byStreams of Object.values(report.steps)) {
      for (const streams of ['1', '2']) expect(byStreams[streams]!.tok_s).toBeGreaterThan(0);
    }
    const bytes = report.transfer_bytes_per_row_step;
    expect(bytes['8']).toBeGreaterThan(0);
    expect(bytes['24']).toBe(bytes['8']);
  }

  it('measures int4 on the WebGPU provider with the slot cache on the device', () => {
    const report = measure('webgpu', 'int4', []);
    expect(report.provider).toBe('webgpu');
    expect(report.format).toBe('int4');
    expect(report.state_location).toBe('device');
    expectDecodeReport(report);
    // decode steps run the step graph, and the general graph's were timed beside them
    expect(report.step_graph).toBe('step');
    expect(Object.keys(report.step_graph_speedup!).sort()).toEqual(['24', '8']);
    for (const byRows of Object.values(report.step_graph_speedup!))
      for (const rows of ['1', '2']) expect(byRows[rows]).toBeGreaterThan(0);
    // the profiles of two steps (one row at context 8, two at 24) of each graph: the kernels,
    // on the device, and the GPU programs' own time (lavapipe has timestamp queries)
    for (const [profile, rows, context] of [
      [report.profile, 1, 8],
      [report.profile_2, 2, 24],
    ] as const) {
      const general = profile.general!;
      for (const [p, graph] of [
        [profile, 'step'],
        [general, 'general'],
      ] as const) {
        expect([p.graph, p.rows, p.context, p.steps]).toEqual([graph, rows, context, 2]);
        const onDevice = p.kernels_per_step['WebGpuExecutionProvider']!;
        expect(onDevice).toBeGreaterThan(p.kernels_per_step['CPUExecutionProvider'] ?? 0);
        expect(p.us_per_kernel['WebGpuExecutionProvider']).toBeGreaterThan(0);
        expect(p.device_programs_per_step).toBeGreaterThan(0);
        expect(p.device_us_per_step).toBeGreaterThan(0);
      }
      // the step graph: one fused attention per layer, no mask work on the CPU, fewer kernels
      // (at this width the general graph's attention ops outweigh its matmuls in the top ops)
      expect(profile.top_ops.some((o) => o.op === 'GroupQueryAttention')).toBe(true);
      expect(profile.top_ops.some((o) => o.op === 'MatMulNBits')).toBe(true);
      expect(profile.kernels_per_step['CPUExecutionProvider'] ?? 0).toBe(0);
      expect(profile.kernels_per_step['WebGpuExecutionProvider']).toBeLessThan(
        general.kernels_per_step['WebGpuExecutionProvider']!,
      );
    }
  }, 180_000);

  it('measures fp16 with float16 compute (--half-compute) on the CPU', () => {
    const report = measure('cpu', 'fp16', ['--half-compute']);
    expect(report.format).toBe('fp16');
    expect(report.half_compute).toBe(true);
    expect(report.state_location).toBe('host');
    expectDecodeReport(report);
  }, 180_000);
});
