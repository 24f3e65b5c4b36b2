// writeSyntheticImageBindCheckpoint as the full-size run uses it (issue #18): the plan of the real
// imagebind_huge + Point-Bind file, and a small config written, loaded strictly, built and run.
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTorchCheckpoint, validateStateDict } from '@imagebind-llm/checkpoint';
import { createOrtSession, hostTensor } from '@imagebind-llm/inference';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { buildEncoderRepository } from '../encoders.builder';
import { EMBEDDING_OUTPUT, imageBindKeys, parseImageBindConfig } from '../imagebind';
import {
  planSyntheticImageBindCheckpoint,
  writeSyntheticImageBindCheckpoint,
} from './imagebind-checkpoint.writer';

const dir = mkdtempSync(join(tmpdir(), 'synthetic-imagebind-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tinyConfigPath = goldenPath('imagebind_config.json');
const tinyConfig = parseImageBindConfig(JSON.parse(readFileSync(tinyConfigPath, 'utf8')));

describe('planSyntheticImageBindCheckpoint', () => {
  it('defaults to the real imagebind_w3D.pth: 1476 keys, 1,223,565,617 elements (MODEL_SPEC §3.8)', () => {
    const plan = planSyntheticImageBindCheckpoint({ seed: 1 });
    expect(plan.tensors).toBe(1476);
    expect(plan.parameters).toBe(1_223_565_617);
    // float32 everywhere but the two int64 BatchNorm counters (scalars: 8 bytes instead of 4)
    expect(plan.tensorBytes).toBe(4 * 1_223_565_617 + 2 * 4);
    // the pickle, zip headers (64-byte aligned data) and directory add well under 1 MB
    expect(plan.bytes - plan.tensorBytes).toBeGreaterThan(0);
    expect(plan.bytes - plan.tensorBytes).toBeLessThan(1e6);
    expect(plan.config.imagebind.vision_num_blocks).toBe(32);
  });

  it('follows a smaller config (a dry run: the huge widths with one block per trunk)', () => {
    const huge = planSyntheticImageBindCheckpoint().config;
    const config = {
      imagebind: {
        ...huge.imagebind,
        vision_num_blocks: 1,
        text_num_blocks: 1,
        audio_num_blocks: 1,
        depth_num_blocks: 1,
        thermal_num_blocks: 1,
        imu_num_blocks: 1,
      },
      point: { ...huge.point, depth: 1 },
    };
    const plan = planSyntheticImageBindCheckpoint({ config });
    let elements = 0;
    for (const shape of imageBindKeys(config).values()) elements += shape.reduce((a, b) => a * b, 1);
    expect(plan.parameters).toBe(elements);
    expect(plan.parameters).toBeLessThan(200e6);
    expect(plan.tensors).toBe(imageBindKeys(config).size);
  });
});

describe('writeSyntheticImageBindCheckpoint (tiny-a dimensions)', () => {
  it('writes the planned bytes, loads strictly, builds fp16 encoders that give finite, distinct embeddings', async () => {
    const path = join(dir, 'imagebind_w3D.pth');
    const messages: string[] = [];
    const plan = planSyntheticImageBindCheckpoint({ config: tinyConfig, path });
    const written = await writeSyntheticImageBindCheckpoint(path, {
      config: tinyConfig,
      seed: 5,
      onProgress: (m) => messages.push(m),
    });
    expect(written.bytes).toBe(statSync(path).size);
    expect(written.bytes).toBe(plan.bytes);
    expect(written).toMatchObject({ tensors: plan.tensors, parameters: plan.parameters, path });
    expect(messages[0]).toMatch(/266 tensors/);
    expect(messages.at(-1)).toMatch(/266\/266 tensors/);
    expect(messages.length).toBeLessThanOrEqual(22);

    const ckpt = await openTorchCheckpoint(path);
    try {
      expect(() =>
        validateStateDict(ckpt.stateDict(), imageBindKeys(tinyConfig), { what: 'imagebind_w3D.pth' }),
      ).not.toThrow();
    } finally {
      await ckpt.close();
    }

    const out = join(dir, 'repo');
    const components = await buildEncoderRepository({
      imagebind: path,
      imagebindConfig: tinyConfigPath,
      out,
      format: 'fp16',
    });
    expect(components.map((c) => c.component)).toEqual([
      'imagebind-vision',
      'imagebind-audio',
      'imagebind-text',
      'imagebind-point',
    ]);
    // Two different images: finite unit embeddings that are not the same vector.
    const session = await createOrtSession(join(out, 'imagebind-vision', '1', 'image.onnx'));
    try {
      const image = new Float32Array(2 * 3 * 224 * 224);
      for (let i = 0; i < image.length; i++) image[i] = Math.sin(i * (i < image.length / 2 ? 0.001 : 0.0173));
      const e = (await session.run({ image: hostTensor('float32', [2, 3, 224, 224], image) }))[
        EMBEDDING_OUTPUT
      ]!.data as Float32Array;
      expect(e.every(Number.isFinite)).toBe(true);
      let dot = 0;
      let n0 = 0;
      let n1 = 0;
      for (let i = 0; i < 1024; i++) {
        dot += e[i]! * e[1024 + i]!;
        n0 += e[i]! ** 2;
        n1 += e[1024 + i]! ** 2;
      }
      expect(n0).toBeCloseTo(1, 4);
      expect(n1).toBeCloseTo(1, 4);
      expect(dot).toBeLessThan(0.99);
    } finally {
      await session.release();
    }
  });
});
