import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from './safetensors.reader';
import { toFloat32, type RawTensor } from './tensor';
import { openTensorFile } from './tensor-file.reader';
import { openTorchCheckpoint } from './torch-checkpoint.reader';

const dir = mkdtempSync(join(tmpdir(), 'ckpt-any-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('openTensorFile', () => {
  it('gives the same tensors for a .pth and its safetensors conversion', async () => {
    const pth = await openTensorFile(goldenPath('7B.pth'), { prefixPath: ['model'] });
    const converted = new Map<string, RawTensor>();
    try {
      expect(pth.format).toBe('torch');
      for (const [key, entry] of pth.tensors) converted.set(key, await entry.read());
    } finally {
      await pth.close();
    }
    // The extension says nothing: detection is by content.
    const path = join(dir, 'adapter.pth');
    await writeSafetensors(path, converted);
    const st = await openTensorFile(path);
    try {
      expect(st.format).toBe('safetensors');
      expect([...st.tensors.keys()]).toEqual([...converted.keys()]);
      const gate = st.tensors.get('llama.layers.1.attention.gate')!;
      expect(gate.dtype).toBe('float16');
      expect(toFloat32(await gate.read())).toEqual(
        toFloat32(converted.get('llama.layers.1.attention.gate')!),
      );
    } finally {
      await st.close();
    }
  });

  it('passes torch errors through (wrong prefix)', async () => {
    await expect(openTensorFile(goldenPath('7B.pth'), { prefixPath: ['state_dict'] })).rejects.toThrow(
      /\["state_dict"\] not found in the checkpoint \(keys: "model"\)/,
    );
    const ckpt = await openTorchCheckpoint(goldenPath('7B.pth'));
    await ckpt.close();
  });
});
