// The golden tiny-a imagebind_w3D.pth loads strictly against the key map built from its config.
import { readFileSync } from 'node:fs';
import { openTorchCheckpoint, validateStateDict } from '@imagebind-llm/checkpoint';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { parseImageBindConfig } from './imagebind-config';
import { imageBindKeys } from './imagebind-keys';

describe('imageBindKeys on the golden checkpoint', () => {
  it('matches every key and shape of tiny-a imagebind_w3D.pth (strict)', async () => {
    const config = parseImageBindConfig(
      JSON.parse(readFileSync(goldenPath('imagebind_config.json'), 'utf8')),
    );
    const ckpt = await openTorchCheckpoint(goldenPath('imagebind_w3D.pth'));
    try {
      const stateDict = ckpt.stateDict();
      const keys = imageBindKeys(config);
      expect(keys.size).toBe(266);
      expect(() => validateStateDict(stateDict, keys, { what: 'imagebind_w3D.pth' })).not.toThrow();
    } finally {
      await ckpt.close();
    }
  });
});
