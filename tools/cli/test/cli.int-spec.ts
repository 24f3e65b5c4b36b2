// The ibllm CLI as a user runs it: real processes on the compiled CLI (`npm run build` first).
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { goldenDir, maxAbsDifference, relativeError } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const BIN = join(__dirname, '..', 'bin', 'ibllm.js');
const golden = goldenDir();
const manifest = JSON.parse(readFileSync(join(golden, 'manifest.json'), 'utf8')) as {
  cases: { id: string; generated_ids?: number[]; instruction?: string; text_stripped?: string }[];
};
const demoCase = manifest.cases.find((c) => c.id === 'decode/demo_image+audio_knn-on')!;
const goldenF32 = (file: string): Float32Array => toFloat32(readNpy(join(golden, file)));
// The bounds golden-parity.int-spec holds for the same computation in-process (there: measured
// ~1e-6 relative for vectors, ≤ 4e-6 max |Δ| for the prefill logits; the manifest hints 1e-4 and
// 1e-3): ‖a−b‖/‖b‖ ≤ 1e-5 for cache output, v and layer offsets, max |Δ| ≤ 1e-4 for logits.
const VECTOR_REL_TOL = 1e-5;
const LOGIT_ABS_TOL = 1e-4;

function ibllm(
  args: string[],
  env: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let work: string;
let repo: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ibllm-cli-'));
  repo = join(work, 'repo');
  const r = ibllm([
    'models',
    'build',
    '--llama-dir',
    join(golden, 'llama'),
    '--adapter',
    join(golden, '7B.pth'),
    '--knn',
    join(golden, 'knn.index'),
    '--out',
    repo,
  ]);
  expect(r.stderr).toContain('wrote llama-decoder');
  expect(r.status).toBe(0);
}, 120_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('ibllm models build', () => {
  it('writes every component with model.json and source checksums', () => {
    for (const c of ['bind', 'llama-decoder', 'tokenizer', 'knn-cache']) {
      const json = JSON.parse(readFileSync(join(repo, c, '1', 'model.json'), 'utf8')) as {
        component: string;
        sources: { sha256: string }[];
      };
      expect(json.component).toBe(c);
      for (const s of json.sources) expect(s.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(existsSync(join(repo, 'llama-decoder', '1', 'model.onnx'))).toBe(true);
    expect(existsSync(join(repo, 'llama-decoder', '1', 'visual.onnx'))).toBe(true);
  });

  it('can put weights in external data files and the result still answers the same', () => {
    const ext = join(work, 'repo-ext');
    const b = ibllm([
      'models',
      'build',
      '--llama-dir',
      join(golden, 'llama'),
      '--adapter',
      join(golden, '7B.pth'),
      '--out',
      ext,
      '--external-data',
      'always',
    ]);
    expect(b.status).toBe(0);
    expect(existsSync(join(ext, 'llama-decoder', '1', 'model.onnx.data'))).toBe(true);
    const g = ibllm([
      'generate',
      '--models',
      ext,
      '--embedding',
      join(golden, 'expected/fusion/image+audio_w1-1_knn-off/q.npy'),
      '--prompt',
      demoCase.instruction!,
      '--temperature',
      '0',
      '--max-new-tokens',
      '24',
      '--json',
    ]);
    expect(g.status).toBe(0);
    const knnOff = manifest.cases.find((c) => c.id === 'decode/image+audio_knn-off')!;
    expect((JSON.parse(g.stdout) as { generated_ids: number[] }).generated_ids).toEqual(knnOff.generated_ids);
  });

  it('refuses a --quant-block it cannot build, naming the choices', () => {
    const args = [
      'models',
      'build',
      '--llama-dir',
      join(golden, 'llama'),
      '--adapter',
      join(golden, '7B.pth'),
    ];
    const odd = ibllm([
      ...args,
      '--out',
      join(work, 'repo-odd'),
      '--quantize',
      'int4',
      '--quant-block',
      '48',
    ]);
    expect(odd.status).not.toBe(0);
    expect(odd.stderr).toContain('--quant-block must be 32, 64, 128, got "48"');
    const plain = ibllm([...args, '--out', join(work, 'repo-plain'), '--quant-block', '128']);
    expect(plain.status).not.toBe(0);
    expect(plain.stderr).toContain('--quant-block applies to --quantize int8|int4 only');
    expect(existsSync(join(work, 'repo-odd'))).toBe(false);
  });

  // Measured on this set: fp16 4.6e-4, int8 1.4e-2, int4 0.20, int4 with 128-input blocks 0.22 (random Gaussian weights are the
  // worst case for block quantization: no outliers to spare, every weight equally important; the
  // quantized formats also round activations to int8 per 32-block, MatMulNBits accuracy_level 4 —
  // int8 was 9.2e-3 and int4 0.24 with float32 activations).
  it.each([
    [['--dtype', 'fp16'], 2e-3],
    [['--quantize', 'int8'], 3e-2],
    [['--quantize', 'int4'], 0.5],
    [['--quantize', 'int4', '--quant-block', '128'], 0.5],
  ] as const)(
    'builds %j models whose prefill logits stay within %d (relative) of the official ones',
    (flags, bound) => {
      const out = join(work, `repo-${flags.join('')}`);
      const b = ibllm([
        'models',
        'build',
        '--llama-dir',
        join(golden, 'llama'),
        '--adapter',
        join(golden, '7B.pth'),
        '--out',
        out,
        ...flags,
      ]);
      expect(b.status).toBe(0);
      const json = JSON.parse(readFileSync(join(out, 'llama-decoder', '1', 'model.json'), 'utf8')) as {
        dtype: string;
        config: { quantBlock?: number };
      };
      expect(json.dtype).toBe({ fp16: 'float16', int8: 'int8', int4: 'int4' }[flags[1]]);
      expect(json.config.quantBlock).toBe(flags[0] === '--quantize' ? Number(flags[3] ?? 32) : undefined);
      const dump = join(work, `dump-${flags.join('')}`);
      const g = ibllm([
        'generate',
        '--models',
        out,
        '--embedding',
        join(golden, 'expected/fusion/image+audio_w1-1_knn-off/q.npy'),
        '--prompt',
        demoCase.instruction!,
        '--temperature',
        '0',
        '--max-new-tokens',
        '2',
        '--json',
        '--dump',
        dump,
      ]);
      expect(g.status).toBe(0);
      const got = toFloat32(readNpy(join(dump, 'prefill_logits.npy')));
      const want = toFloat32(readNpy(join(golden, 'expected/decode/image+audio_knn-off/prefill_logits.npy')));
      let num = 0;
      let den = 0;
      want.forEach((w, i) => {
        num += (got[i]! - w) ** 2;
        den += w * w;
      });
      expect(Math.sqrt(num / den)).toBeLessThan(bound);
    },
  );

  it.each([
    [['--adapter', 'x.pth'], /--out is required/],
    [['--adapter', 'x.pth', '--out', '/tmp/x'], /--llama-dir is required/],
    [['--out', '/tmp/x'], /nothing to build/],
    [
      ['--llama-dir', '/nope', '--adapter', '/nope/7B.pth', '--out', '/tmp/x'],
      /adapter checkpoint not found: \/nope\/7B\.pth/,
    ],
    [['--bogus'], /Unknown option '--bogus'/],
  ])('refuses bad usage %j with one line and exit status 2', (args, message) => {
    const r = ibllm(['models', 'build', ...args]);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(message);
  });

  it('names the file and the problem for a truncated checkpoint', () => {
    const bad = join(work, 'truncated');
    mkdirSync(join(bad, 'llama', '7B'), { recursive: true });
    copyFileSync(join(golden, '7B.pth'), join(bad, '7B.pth'));
    truncateSync(join(bad, '7B.pth'), 300_000);
    for (const f of ['consolidated.00.pth', 'params.json'])
      copyFileSync(join(golden, 'llama', '7B', f), join(bad, 'llama', '7B', f));
    copyFileSync(join(golden, 'llama', 'tokenizer.model'), join(bad, 'llama', 'tokenizer.model'));
    const r = ibllm([
      'models',
      'build',
      '--llama-dir',
      join(bad, 'llama'),
      '--adapter',
      join(bad, '7B.pth'),
      '--out',
      join(bad, 'repo'),
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/7B\.pth/);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^ibllm: .*7B\.pth/);
  });

  it('lists missing keys when the adapter is the wrong checkpoint', () => {
    const bad = join(work, 'wrong');
    mkdirSync(join(bad, 'llama', '7B'), { recursive: true });
    for (const f of ['consolidated.00.pth', 'params.json'])
      copyFileSync(join(golden, 'llama', '7B', f), join(bad, 'llama', '7B', f));
    copyFileSync(join(golden, 'llama', 'tokenizer.model'), join(bad, 'llama', 'tokenizer.model'));
    // the base LLaMA file is a valid .pth but not an adapter
    const r = ibllm([
      'models',
      'build',
      '--llama-dir',
      join(bad, 'llama'),
      '--adapter',
      join(golden, 'llama', '7B', 'consolidated.00.pth'),
      '--out',
      join(bad, 'repo'),
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/prefix_query\.weight|image_bind_proj\.weight/);
  });
});

/** `ibllm generate` of the official demo case: its golden fused q, greedy, 24 tokens. */
const greedyDemo = (): string[] => [
  'generate',
  '--models',
  repo,
  '--embedding',
  join(golden, 'expected/fusion/image+audio_w1-1_knn-on/q.npy'),
  '--prompt',
  demoCase.instruction!,
  '--temperature',
  '0',
  '--max-new-tokens',
  '24',
];

describe('ibllm generate', () => {
  it('reproduces the official greedy answer and dumps every intermediate', () => {
    const dump = join(work, 'dump');
    const r = ibllm([...greedyDemo(), '--json', '--dump', dump]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as {
      generated_ids: number[];
      finish_reason: string;
      cache: { ids: number[] };
    };
    expect(out.generated_ids).toEqual(demoCase.generated_ids);
    expect(out.finish_reason).toBe('length');
    const shapes: Record<string, number[]> = {
      'fused.npy': [1024],
      'cached.npy': [1024],
      'visual_query.npy': [64],
      'layer_offsets.npy': [2, 64],
      'prefill_logits.npy': [32000],
    };
    for (const [file, shape] of Object.entries(shapes))
      expect(readNpy(join(dump, file)).shape, file).toEqual(shape);
    const tokens = JSON.parse(readFileSync(join(dump, 'tokens.json'), 'utf8')) as {
      generated_ids: number[];
      text: string;
    };
    expect(tokens.generated_ids).toEqual(demoCase.generated_ids);
    expect(tokens.text.trim()).toBe(demoCase.text_stripped);
    // every intermediate against what the official code computed for the same fused query
    const dumped = (file: string): Float32Array => toFloat32(readNpy(join(dump, file)));
    const fusion = 'expected/fusion/image+audio_w1-1_knn-on';
    expect(Array.from(dumped('fused.npy'))).toEqual(Array.from(goldenF32(`${fusion}/q.npy`)));
    const errors = {
      cached: relativeError(dumped('cached.npy'), goldenF32(`${fusion}/q_knn.npy`)),
      visualQuery: relativeError(dumped('visual_query.npy'), goldenF32(`${fusion}/v.npy`)),
      layerOffsets: relativeError(dumped('layer_offsets.npy'), goldenF32(`${fusion}/c.npy`)),
    };
    for (const [what, e] of Object.entries(errors)) expect(e, what).toBeLessThanOrEqual(VECTOR_REL_TOL);
    const logitError = maxAbsDifference(
      dumped('prefill_logits.npy'),
      goldenF32('expected/decode/demo_image+audio_knn-on/prefill_logits.npy'),
    );
    console.log(`ibllm generate --dump: ${JSON.stringify(errors)}, prefill logits max |Δ| ${logitError}`);
    expect(logitError).toBeLessThanOrEqual(LOGIT_ABS_TOL);
  });

  it('streams the official answer as plain text to stdout and a summary to stderr without --json', () => {
    const c = manifest.cases.find((x) => x.id === 'decode/demo3d_point_knn-on')!;
    const r = ibllm([
      'generate',
      '--models',
      repo,
      '--embedding',
      join(golden, 'expected/fusion/point_knn-on/q.npy'),
      '--prompt',
      c.instruction!,
      '--temperature',
      '0',
      '--max-new-tokens',
      '24',
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(c.text_stripped);
    expect(r.stderr).toMatch(/\[24 tokens, finish: length, seed \d+/);
  });

  it('runs where --providers or EXECUTION_PROVIDERS says, reports it in --json, and answers the same', () => {
    const args = [...greedyDemo(), '--json'];
    type Out = {
      generated_ids: number[];
      providers: Record<string, string>;
      kv_cache: string;
      decode_steps: string;
    };
    const cpu = ibllm(args);
    expect(cpu.status).toBe(0);
    const onCpu = JSON.parse(cpu.stdout) as Out;
    expect(onCpu.providers).toEqual({ bind: 'cpu', visual: 'cpu', decoder: 'cpu' });
    expect(onCpu.kv_cache).toBe('host');
    expect(onCpu.decode_steps).toBe('general');
    // WebGPU (software Vulkan here): the same official tokens, the KV cache on the device
    const flag = ibllm([...args, '--providers', 'webgpu,cpu']);
    expect(flag.status, flag.stderr).toBe(0);
    const onGpu = JSON.parse(flag.stdout) as Out;
    expect(onGpu.providers).toEqual({ bind: 'webgpu', visual: 'webgpu', decoder: 'webgpu' });
    expect(onGpu.kv_cache).toBe('device');
    expect(onGpu.decode_steps).toBe('step');
    expect(onGpu.generated_ids).toEqual(demoCase.generated_ids);
    const fromEnv = JSON.parse(ibllm(args, { EXECUTION_PROVIDERS: 'webgpu' }).stdout) as Out;
    expect(fromEnv.providers['decoder']).toBe('webgpu');
    // --providers wins over the environment
    const both = JSON.parse(
      ibllm([...args, '--providers', 'cpu'], { EXECUTION_PROVIDERS: 'webgpu' }).stdout,
    ) as Out;
    expect(both.providers['decoder']).toBe('cpu');
    // four CLI processes, three on WebGPU over software Vulkan: 22 s alone on 2 cores, more under
    // the suite's parallel load (CI once passed 30 s)
  }, 120_000);

  it('refuses an unknown execution provider with exit status 2, from the flag or the environment', () => {
    const flag = ibllm([
      'generate',
      '--models',
      repo,
      '--embedding',
      'E',
      '--prompt',
      'x',
      '--providers',
      'tpu',
    ]);
    expect(flag.status).toBe(2);
    expect(flag.stderr.trim()).toMatch(
      /^ibllm: --providers "tpu": unknown provider tpu; use a comma-separated list of cuda, tensorrt, webgpu, cpu$/,
    );
    const env = ibllm(['embed', '--models', repo, '--text', 'a'], { EXECUTION_PROVIDERS: 'gpu' });
    expect(env.status).toBe(2);
    expect(env.stderr).toMatch(/EXECUTION_PROVIDERS "gpu": unknown provider gpu/);
  });

  it('samples reproducibly with a seed', () => {
    const args = [
      'generate',
      '--models',
      repo,
      '--embedding',
      join(golden, 'expected/fusion/text_knn-off/q.npy'),
      '--prompt',
      'Say something.',
      '--temperature',
      '0.8',
      '--top-p',
      '0.9',
      '--seed',
      '1234',
      '--max-new-tokens',
      '12',
      '--json',
    ];
    const a = JSON.parse(ibllm(args).stdout) as { generated_ids: number[] };
    const b = JSON.parse(ibllm(args).stdout) as { generated_ids: number[] };
    expect(a.generated_ids).toEqual(b.generated_ids);
  });

  it.each([
    [['--prompt', 'x'], /--models is required/],
    [['--models', 'R', '--embedding', 'E', '--prompt', 'x', '--cache', 'maybe'], /--cache must be on or off/],
    [
      ['--models', 'R', '--embedding', 'E', '--prompt', 'x', '--top-p', '1.5'],
      /--top-p must be a number in \[0, 1\]/,
    ],
    [
      ['--models', 'R', '--embedding', 'E', '--prompt', 'x', '--max-new-tokens', '0'],
      /--max-new-tokens must be an integer in \[1, 512\], got "0"/,
    ],
    [['--models', 'R', '--image', 'a.jpg', '--prompt', 'x'], /--image a\.jpg: ENOENT/],
    [['--models', 'R', '--prompt', 'x'], /give the inputs .* or a fused query with --embedding/],
    [
      ['--models', 'R', '--embedding', 'E', '--prompt', 'x', '--seed=-1'],
      /--seed must be an integer in \[0, 9007199254740991\], got "-1"/,
    ],
  ])('refuses %j with exit status 2 and one line', (args, message) => {
    const r = ibllm(['generate', ...args]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  it('refuses a prompt that does not fit the 512-token context with a clear message', () => {
    const r = ibllm([
      'generate',
      '--models',
      repo,
      '--embedding',
      join(golden, 'expected/fusion/text_knn-off/q.npy'),
      '--prompt',
      'word '.repeat(600),
      '--cache',
      'off',
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/tokens/);
    expect(r.stderr).toMatch(/512/);
  });

  it('refuses an embedding of the wrong size', () => {
    const bad = join(work, 'bad.npy');
    writeFileSync(bad, readFileSync(join(golden, 'expected/fusion/image+audio_w1-1_knn-on/c.npy')));
    const r = ibllm(['generate', '--models', repo, '--embedding', bad, '--prompt', 'x']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/expected one fused query|1024/);
  });
});
