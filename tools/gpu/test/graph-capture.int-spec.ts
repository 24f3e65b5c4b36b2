// Medium test: tools/gpu/graph-capture/probe.c, the decoder's step graph under onnxruntime's WebGPU
// graph capture through the C API (onnxruntime-node cannot switch capture on). It compiles the
// probe as tools/gpu/prepare.sh does, builds a tiny step graph with bench/decoder, and decodes the
// same fixed ids with capture off and on, on the WebGPU provider (Mesa's lavapipe here, as the
// golden WebGPU tests): replayed steps must give the tokens the ordinary runs give, at every
// length, for one row and for several.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = resolve(__dirname, '..', '..', '..');
const lib = join(repoRoot, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1');

interface ProbeReport {
  onnxruntime: string;
  capture: number;
  batch: number;
  layers: number;
  steps: number;
  step_ms: number;
  tokens: number[];
}

describe('tools/gpu/graph-capture/probe.c', () => {
  let dir: string;
  let probe: string;
  const model = (): string => join(dir, 'model', 'decoder.step.onnx');
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'graph-capture-'));
    probe = join(dir, 'graph-capture-probe');
    const cc = spawnSync(
      'gcc',
      ['-O2', '-Wall', '-Wextra', '-Werror', '-o', probe, 'tools/gpu/graph-capture/probe.c', '-ldl'],
      { cwd: repoRoot, encoding: 'utf8' },
    );
    expect(cc.status, cc.stderr).toBe(0);
    const shape = [
      '--dim',
      '64',
      '--layers',
      '2',
      '--heads',
      '4',
      '--vocab',
      '500',
      '--capacity',
      '64',
      '--contexts',
      '8,24',
    ];
    const build = spawnSync(
      process.execPath,
      [
        'bench/decoder/run.mjs',
        '--provider',
        'webgpu',
        ...shape,
        ...['--format', 'int4', '--kv', 'float16', '--streams', '2'],
        ...['--model-dir', join(dir, 'model'), '--build-only'],
      ],
      { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 },
    );
    expect(build.status, build.stderr).toBe(0);
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function decode(capture: 0 | 1, batch: number): ProbeReport & { replays: number } {
    const args = [lib, model(), '2', '4', '16', '64', '64', String(capture), '20', String(batch)];
    const run = spawnSync(probe, args, {
      encoding: 'utf8',
      timeout: 120_000,
      env: {
        ...process.env,
        XDG_RUNTIME_DIR: process.env['XDG_RUNTIME_DIR'] ?? tmpdir(),
        GRAPH_CAPTURE_PROBE_LOG: 'info',
      },
    });
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as ProbeReport;
    expect([report.capture, report.batch, report.layers, report.steps]).toEqual([capture, batch, 2, 20]);
    expect(report.step_ms).toBeGreaterThan(0);
    // onnxruntime's info log names every run that replays a captured graph
    const replays = run.stderr.split('Replaying the captured WebGpuExecutionProvider graph').length - 1;
    return { ...report, replays };
  }

  it.each([1, 3])(
    'replays the captured step with the tokens of ordinary runs (%i rows)',
    (batch) => {
      const plain = decode(0, batch);
      const captured = decode(1, batch);
      expect(plain.onnxruntime).toBe('1.30.0');
      // a decode that tracks its ids and lengths, not one stuck on a token
      expect(new Set(plain.tokens).size).toBeGreaterThan(3);
      expect(captured.tokens).toEqual(plain.tokens);
      // with capture on, the first run records the step and every later one replays it
      expect([plain.replays, captured.replays]).toEqual([0, 19]);
    },
    120_000,
  );

  it('refuses bad arguments with a usage line', () => {
    const run = spawnSync(probe, [lib, model(), '2'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/usage: .*LIBONNXRUNTIME MODEL LAYERS/);
  });
});
