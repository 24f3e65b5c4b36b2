// createOrtSession's webgpuValidation reaches onnxruntime's WebGPU provider (lavapipe here): with
// Dawn's validation disabled a graph gives the same output as with onnxruntime's default, and a
// mode onnxruntime does not know is refused by onnxruntime itself (so the option is passed on).
import {
  createOrtSession,
  hostTensor,
  type HostTensor,
  type WebGpuValidationMode,
} from '@imagebind-llm/inference';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder, OnnxType, serializeModel } from './onnx-graph';

const dir = mkdtempSync(join(tmpdir(), 'ibllm-webgpu-options-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const model = join(dir, 'softmax.onnx');
{
  const g = new GraphBuilder('softmax');
  const x = g.input('x', OnnxType.FLOAT, ['n', 16]);
  g.output(g.op1('Softmax', [g.op1('Exp', [x])], {}), 'y', OnnxType.FLOAT, ['n', 16]);
  writeFileSync(model, serializeModel(g, { opsets: { '': 17 }, producerVersion: 'test' }));
}
const x = hostTensor(
  'float32',
  [3, 16],
  Float32Array.from({ length: 48 }, (_, i) => Math.sin(i) / 2),
);

async function runWith(validation?: WebGpuValidationMode): Promise<HostTensor> {
  let chosen: readonly string[] = [];
  const session = await createOrtSession(model, {
    providers: ['webgpu'],
    ...(validation === undefined ? {} : { webgpuValidation: validation }),
    onProviders: (providers) => {
      chosen = providers;
    },
  });
  try {
    expect(chosen[0]).toBe('webgpu');
    return (await session.run({ x }))['y']!;
  } finally {
    await session.release();
  }
}

describe('the WebGPU provider with webgpuValidation', () => {
  it('computes the same with Dawn validation disabled as with the default', async () => {
    const byDefault = await runWith();
    const disabled = await runWith('disabled');
    expect([...(disabled.data as Float32Array)]).toEqual([...(byDefault.data as Float32Array)]);
  });

  it('passes the mode on: onnxruntime refuses one it does not know', async () => {
    await expect(runWith('sometimes' as WebGpuValidationMode)).rejects.toThrow(/validation mode/i);
  });
});
