// onnxruntime's profiler through createOrtSession (profileFilePrefix) and readOrtProfile: a graph of
// three kernels that onnxruntime cannot fuse, run a known number of times on the CPU and on WebGPU
// (lavapipe here), in the calling thread and in a worker session.
import { createOrtSession, hostTensor, readOrtProfile, summarizeOrtProfile } from '@imagebind-llm/inference';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, OnnxType, serializeModel } from './onnx-graph';

const dir = mkdtempSync(join(tmpdir(), 'ibllm-profile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const model = join(dir, 'three.onnx');
{
  const g = new GraphBuilder('three_kernels');
  const x = g.input('x', OnnxType.FLOAT, ['n', 8]);
  g.output(g.op1('Cos', [g.op1('Softmax', [g.op1('Exp', [x])], {})]), 'y', OnnxType.FLOAT, ['n', 8]);
  writeFileSync(model, serializeModel(g, { opsets: { '': 17 }, producerVersion: 'test' }));
}

const RUNS = 5;

describe.each([
  { provider: 'cpu', ep: 'CPUExecutionProvider', thread: 'caller' },
  { provider: 'cpu', ep: 'CPUExecutionProvider', thread: 'worker' },
  { provider: 'webgpu', ep: 'WebGpuExecutionProvider', thread: 'worker' },
] as const)('an onnxruntime profile on $provider ($thread thread)', ({ provider, ep, thread }) => {
  it('counts every kernel of every run, by provider and operator', async () => {
    const prefix = join(dir, `profile-${provider}-${thread}`);
    const session = await createOrtSession(model, {
      providers: [provider],
      thread,
      profileFilePrefix: prefix,
    });
    const x = hostTensor(
      'float32',
      [2, 8],
      Float32Array.from({ length: 16 }, (_, i) => i / 16),
    );
    for (let i = 0; i < RUNS; i++) await session.run({ x });
    await session.release();
    const profile = readOrtProfile(prefix);
    expect(profile.runs).toBe(RUNS);
    expect(profile.runMicros).toBeGreaterThan(0);
    for (const op of ['Exp', 'Softmax', 'Cos']) {
      const entry = profile.ops.find((o) => o.op === op);
      expect(entry, op).toBeDefined();
      expect(entry!.provider).toBe(ep);
      expect(entry!.kernels).toBe(1);
    }
    // on a GPU provider the copies in and out are kernels too
    expect(profile.kernels[ep]).toBeGreaterThanOrEqual(3);
    if (provider === 'cpu') expect(profile.kernels).toEqual({ [ep]: 3 });
    expect(profile.micros[ep]).toBeGreaterThan(0);
    // the WebGPU provider times each GPU program with timestamp queries (lavapipe has them)
    if (provider === 'webgpu') {
      expect(profile.devicePrograms).toBeGreaterThanOrEqual(3);
      expect(profile.deviceMicros).toBeGreaterThan(0);
      expect(profile.ops.find((o) => o.op === 'Softmax')!.deviceMicros).toBeGreaterThan(0);
    } else {
      expect(profile.devicePrograms).toBe(0);
      expect(profile.deviceMicros).toBe(0);
    }
  });
});

describe('summarizeOrtProfile', () => {
  it('refuses a profile with no runs', () => {
    expect(() => summarizeOrtProfile([{ cat: 'Session', name: 'session_initialization', dur: 5 }])).toThrow(
      /no runs/,
    );
  });
});
