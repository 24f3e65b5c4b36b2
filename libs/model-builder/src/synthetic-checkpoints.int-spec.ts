// Synthetic official-format checkpoints: the key plan against MODEL_SPEC's published counts, the
// values' scales, reproducibility, and a full `buildLanguageRepository` run on a tiny set.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTorchCheckpoint, shapeNumel, toFloat32, type TorchCheckpoint } from '@imagebind-llm/checkpoint';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { buildLanguageRepository } from './repository.builder';
import {
  planSyntheticLanguageCheckpoints,
  writeSyntheticLanguageCheckpoints,
  type SyntheticLanguageOptions,
} from './synthetic-checkpoints';

const dir = mkdtempSync(join(tmpdir(), 'synthetic-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;
const tmp = (name: string): string => join(dir, `${counter++}-${name}`);

const OFFICIAL: SyntheticLanguageOptions = {
  dim: 4096,
  nLayers: 32,
  nHeads: 32,
  multipleOf: 256,
  vocabSize: 32000,
  loraRank: 16,
  bindHidden: 16384,
  seed: 0,
};

const TINY: SyntheticLanguageOptions = {
  dim: 64,
  nLayers: 2,
  nHeads: 4,
  multipleOf: 32,
  vocabSize: 256,
  loraRank: 4,
  bindHidden: 256,
  seed: 7,
};

const elements = (ts: readonly { shape: readonly number[] }[]): number =>
  ts.reduce((n, t) => n + shapeNumel(t.shape), 0);

function stats(values: Float32Array): { mean: number; std: number; zeros: number } {
  let sum = 0;
  let sq = 0;
  let zeros = 0;
  for (const v of values) {
    sum += v;
    sq += v * v;
    if (v === 0) zeros++;
  }
  const mean = sum / values.length;
  return { mean, std: Math.sqrt(sq / values.length - mean * mean), zeros };
}

async function withCheckpoint<T>(path: string, use: (c: TorchCheckpoint) => Promise<T>): Promise<T> {
  const ckpt = await openTorchCheckpoint(path);
  try {
    return await use(ckpt);
  } finally {
    await ckpt.close();
  }
}

describe('planSyntheticLanguageCheckpoints', () => {
  it('has the official adapter key set: 720 tensors, 649.7 M elements (MODEL_SPEC §6.2, §6.4)', () => {
    const plan = planSyntheticLanguageCheckpoints(OFFICIAL);
    expect(plan.adapter).toHaveLength(720);
    expect(elements(plan.adapter)).toBe(649_663_488);
    // §6.4's trainable sets partition the file: 47 pre-training tensors, 673 fine-tuning ones.
    const pretrain = plan.adapter.filter(
      (t) => t.key.includes('gate') || t.key.startsWith('image_bind_') || t.key === 'prefix_query.weight',
    );
    expect(pretrain).toHaveLength(47);
    expect(elements(pretrain)).toBe(608_322_560);
    const finetune = plan.adapter.filter((t) => t.key.startsWith('llama.') && /norm|bias|lora/.test(t.key));
    expect(finetune).toHaveLength(673);
    expect(elements(finetune)).toBe(41_340_928);
    expect(
      plan.adapter.find((t) => t.key === 'llama.layers.31.feed_forward.lora_w2_l1.weight')?.shape,
    ).toEqual([16, 11008]);
    expect(plan.adapter.filter((t) => t.dtype === 'float16').map((t) => t.key)).toHaveLength(32);
    // LLaMA-7B: 6,738,415,616 parameters, plus rope.freqs [64].
    expect(plan.base).toHaveLength(32 * 9 + 3 + 1);
    expect(elements(plan.base)).toBe(6_738_415_616 + 64);
    expect(plan.base.at(-1)).toMatchObject({ key: 'rope.freqs', shape: [64], dtype: 'float16' });
  });

  it('adds the legacy bridge keys: LayerNorm bias and f1/f2/f3 biases (MODEL_SPEC §4)', () => {
    const plain = new Set(planSyntheticLanguageCheckpoints(TINY).adapter.map((t) => t.key));
    const legacy = planSyntheticLanguageCheckpoints({ ...TINY, legacyBind: true }).adapter;
    const added = legacy.filter((t) => !plain.has(t.key));
    expect(added.map((t) => `${t.key}[${t.shape.join(',')}]`).sort()).toEqual(
      [1, 2, 3]
        .flatMap((k) => [
          `image_bind_norm_${k}.bias[64]`,
          `image_bind_f1_${k}.bias[256]`,
          `image_bind_f2_${k}.bias[64]`,
          `image_bind_f3_${k}.bias[256]`,
        ])
        .sort(),
    );
    expect(legacy).toHaveLength(plain.size + 12);
  });

  it('rejects shapes LLaMA cannot have', () => {
    expect(() => planSyntheticLanguageCheckpoints({ ...TINY, nHeads: 5 })).toThrow(
      /dim 64 must split into 5 heads/,
    );
    expect(() => planSyntheticLanguageCheckpoints({ ...TINY, loraRank: 0 })).toThrow(
      /loraRank must be a positive/,
    );
  });
});

describe('writeSyntheticLanguageCheckpoints', () => {
  it('writes official-format files with sensible, reproducible values', async () => {
    const out = tmp('tiny');
    const written = await writeSyntheticLanguageCheckpoints(out, TINY);
    expect(written.adapter).toBe(join(out, '7B.pth'));
    expect(written.base).toBe(join(out, 'llama', '7B', 'consolidated.00.pth'));
    expect(JSON.parse(readFileSync(written.params, 'utf8'))).toEqual({
      dim: 64,
      multiple_of: 32,
      n_heads: 4,
      n_layers: 2,
      norm_eps: 1e-6,
      vocab_size: -1,
    });
    expect(written.files.map((f) => f.tensors)).toEqual([
      written.plan.adapter.length,
      written.plan.base.length,
    ]);

    await withCheckpoint(written.adapter, async (ckpt) => {
      expect([...(ckpt.root as Map<string, unknown>).keys()]).toEqual(['model']);
      const sd = ckpt.stateDict(['model']);
      expect([...sd.keys()]).toEqual(written.plan.adapter.map((t) => t.key));
      const read = async (key: string): Promise<Float32Array> => toFloat32(await sd.get(key)!.read());
      expect(sd.get('llama.layers.1.attention.gate')?.dtype).toBe('float16');
      expect(sd.get('image_bind_f1_1.weight')?.dtype).toBe('float32');
      // Linear weights: N(0, 1/fan_in); 16k samples give the std to within ~1 %.
      const f1 = stats(await read('image_bind_f1_1.weight'));
      expect(Math.abs(f1.std * Math.sqrt(64) - 1)).toBeLessThan(0.03);
      expect(Math.abs(f1.mean)).toBeLessThan(0.01);
      const f2 = stats(await read('image_bind_f2_1.weight'));
      expect(Math.abs(f2.std * Math.sqrt(256) - 1)).toBeLessThan(0.03);
      const norm = stats(await read('llama.layers.0.ffn_norm.weight'));
      expect(Math.abs(norm.mean - 1)).toBeLessThan(0.03);
      expect(norm.std).toBeGreaterThan(0.01);
      for (const key of [
        'llama.layers.0.attention.gate',
        'llama.layers.0.attention.wq.bias',
        'llama.layers.1.feed_forward.w2.bias',
        'llama.layers.1.attention.lora_wo_l2.weight',
        'image_bind_proj.bias',
      ]) {
        expect(stats(await read(key)).zeros, key).toBe(0);
      }
    });

    await withCheckpoint(written.base, async (ckpt) => {
      const sd = ckpt.stateDict();
      expect(new Set([...sd.values()].map((e) => e.dtype))).toEqual(new Set(['float16']));
      const freqs = toFloat32(await sd.get('rope.freqs')!.read());
      expect(freqs).toHaveLength(8);
      freqs.forEach((v, i) => expect(Math.abs(v / 10000 ** ((-2 * i) / 16) - 1)).toBeLessThan(1e-3));
      const out = stats(toFloat32(await sd.get('output.weight')!.read()));
      expect(Math.abs(out.std * Math.sqrt(64) - 1)).toBeLessThan(0.03);
    });

    const again = await writeSyntheticLanguageCheckpoints(tmp('tiny-again'), TINY);
    expect(readFileSync(again.adapter).equals(readFileSync(written.adapter))).toBe(true);
    expect(readFileSync(again.base).equals(readFileSync(written.base))).toBe(true);
    const reseeded = await writeSyntheticLanguageCheckpoints(tmp('tiny-seed'), { ...TINY, seed: 8 });
    expect(readFileSync(reseeded.adapter).equals(readFileSync(written.adapter))).toBe(false);
  });

  it.each([
    ['RMSNorm bind network', false],
    ['legacy LayerNorm bind network', true],
  ])('builds a model repository from them (%s)', async (_name, legacyBind) => {
    const out = tmp('build');
    const written = await writeSyntheticLanguageCheckpoints(out, {
      ...TINY,
      legacyBind,
      baseDtype: 'bfloat16',
    });
    copyFileSync(goldenPath('llama', 'tokenizer.model'), join(written.llamaDir, 'tokenizer.model'));
    const repo = join(out, 'repo');
    const summary = await buildLanguageRepository({
      adapter: written.adapter,
      llamaDir: written.llamaDir,
      llamaType: written.llamaType,
      out: repo,
    });
    expect(summary.llama).toMatchObject({
      dim: 64,
      nLayers: 2,
      nHeads: 4,
      headDim: 16,
      vocabSize: 256,
      ffnHidden: 192,
      loraRank: 4,
      queryLayer: 32,
    });
    expect(summary.bind).toEqual({ inDim: 1024, dim: 64, hidden: 256, blocks: 3, legacy: legacyBind });
    for (const file of [
      'bind/1/model.onnx',
      'llama-decoder/1/model.onnx',
      'llama-decoder/1/visual.onnx',
      'tokenizer/1/tokenizer.model',
    ]) {
      expect(existsSync(join(repo, file)), file).toBe(true);
    }
  });
});
