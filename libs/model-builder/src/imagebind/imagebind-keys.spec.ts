// The state-dict layout of imagebind_w3D.pth (MODEL_SPEC §3.8) from the config alone: the huge
// defaults must give exactly the verified key and element counts, and the JSON layout must parse.
import { describe, expect, it } from 'vitest';
import {
  defaultImageBindConfig,
  imageBindDerived,
  parseImageBindConfig,
  type ImageBindConfig,
} from './imagebind-config';
import { audioKeys, imageBindKeys, pointKeys, textKeys, visionKeys } from './imagebind-keys';

const elements = (keys: Map<string, number[]>): number =>
  [...keys.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);

describe('imageBindKeys', () => {
  it('imagebind_huge + Point-BERT: 1476 keys, 1,223,565,617 elements (MODEL_SPEC §3.8)', () => {
    const keys = imageBindKeys(defaultImageBindConfig());
    expect(keys.size).toBe(1476);
    expect(elements(keys)).toBe(1_223_565_617);
    expect(keys.get('modality_preprocessors.vision.rgbt_stem.proj.1.weight')).toEqual([1280, 3, 2, 14, 14]);
    expect(keys.get('modality_preprocessors.audio.pos_embedding_helper.pos_embed')).toEqual([1, 229, 768]);
    expect(keys.get('modality_trunks.audio.blocks.11.attn.bias_k')).toEqual([1, 1, 768]);
    expect(keys.has('modality_trunks.vision.blocks.0.attn.bias_k')).toBe(false);
    expect(keys.get('point_trunk.pc_projection')).toEqual([768, 512]);
    expect(keys.get('modality_heads.imu.3.weight')).toEqual([1024, 512]);
  });

  it('the encoder key sets are disjoint parts of the whole', () => {
    const c = defaultImageBindConfig();
    const all = imageBindKeys(c);
    const parts = [visionKeys(c), audioKeys(c), textKeys(c), pointKeys(c)];
    const seen = new Set<string>();
    for (const part of parts) {
      for (const [k, s] of part) {
        expect(seen.has(k)).toBe(false);
        seen.add(k);
        expect(all.get(k)).toEqual(s);
      }
    }
  });

  it('derives the huge token grids', () => {
    expect(imageBindDerived(defaultImageBindConfig())).toEqual({
      visionGrid: [16, 16],
      visionTokens: 256,
      audioGrid: [12, 19],
      audioTokens: 228,
      depthTokens: 196,
      thermalTokens: 196,
      imuTokens: 250,
    });
  });
});

describe('parseImageBindConfig', () => {
  it('reads its own layout back, point defaults filled from the yaml values', () => {
    const c = defaultImageBindConfig();
    expect(parseImageBindConfig(JSON.parse(JSON.stringify(c)))).toEqual(c);
    const { point, ...rest } = c;
    const minimal = {
      ...rest,
      point: {
        trans_dim: point.trans_dim,
        depth: point.depth,
        num_heads: point.num_heads,
        encoder_dims: 256,
      },
    };
    expect(parseImageBindConfig(minimal)).toEqual(c);
  });

  it('rejects missing or inconsistent values', () => {
    const c: ImageBindConfig = defaultImageBindConfig();
    expect(() => parseImageBindConfig({ point: c.point })).toThrow(/imagebind/);
    const { vision_num_heads: _, ...noHeads } = c.imagebind;
    expect(() => parseImageBindConfig({ imagebind: noHeads, point: c.point })).toThrow(/vision_num_heads/);
    expect(() =>
      parseImageBindConfig({ imagebind: { ...c.imagebind, vision_num_heads: 7 }, point: c.point }),
    ).toThrow(/divisible/);
    expect(() =>
      parseImageBindConfig({
        imagebind: c.imagebind,
        point: { ...c.point, pc_projection_shape: [512, 512] },
      }),
    ).toThrow(/pc_projection_shape/);
  });
});
