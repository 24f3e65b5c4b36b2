import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import type { DType } from './tensor';
import { checkStateDict, StateDictMismatchError, validateStateDict } from './state-dict.validator';
import { openTorchCheckpoint } from './torch-checkpoint.reader';

/** MODEL_SPEC §6.2 at the tiny-a sizes (manifest.json: dim 64, 2 layers, 4 heads, bind hidden 256, LoRA rank 16, FFN 192). */
function adapterShapes(
  dim = 64,
  layers = 2,
  heads = 4,
  hidden = 256,
  rank = 16,
  ffn = 192,
): Map<string, number[]> {
  const m = new Map<string, number[]>([
    ['image_bind_proj.weight', [dim, 1024]],
    ['image_bind_proj.bias', [dim]],
    ['prefix_query.weight', [32, dim]],
    ['llama.norm.weight', [dim]],
  ]);
  for (const k of [1, 2, 3]) {
    m.set(`image_bind_norm_${k}.weight`, [dim]);
    m.set(`image_bind_f1_${k}.weight`, [hidden, dim]);
    m.set(`image_bind_f2_${k}.weight`, [dim, hidden]);
    m.set(`image_bind_f3_${k}.weight`, [hidden, dim]);
  }
  for (let i = 0; i < layers; i++) {
    const l = `llama.layers.${i}`;
    m.set(`${l}.attention.gate`, [1, heads, 1, 1]);
    m.set(`${l}.attention.wq.bias`, [dim]);
    m.set(`${l}.attention.wo.bias`, [dim]);
    for (const w of ['q', 'k', 'v', 'o']) {
      m.set(`${l}.attention.lora_w${w}_l1.weight`, [rank, dim]);
      m.set(`${l}.attention.lora_w${w}_l2.weight`, [dim, rank]);
    }
    m.set(`${l}.feed_forward.w1.bias`, [ffn]);
    m.set(`${l}.feed_forward.w2.bias`, [dim]);
    m.set(`${l}.feed_forward.w3.bias`, [ffn]);
    m.set(`${l}.feed_forward.lora_w1_l1.weight`, [rank, dim]);
    m.set(`${l}.feed_forward.lora_w1_l2.weight`, [ffn, rank]);
    m.set(`${l}.feed_forward.lora_w2_l1.weight`, [rank, ffn]);
    m.set(`${l}.feed_forward.lora_w2_l2.weight`, [dim, rank]);
    m.set(`${l}.feed_forward.lora_w3_l1.weight`, [rank, dim]);
    m.set(`${l}.feed_forward.lora_w3_l2.weight`, [ffn, rank]);
    m.set(`${l}.attention_norm.weight`, [dim]);
    m.set(`${l}.ffn_norm.weight`, [dim]);
  }
  return m;
}

const entry = (dtype: DType, shape: number[]): { dtype: DType; shape: number[] } => ({ dtype, shape });

describe('validateStateDict', () => {
  it('accepts the golden adapter checkpoint against the spec layout', async () => {
    const ckpt = await openTorchCheckpoint(goldenPath('7B.pth'));
    try {
      const expected = adapterShapes();
      expect(expected.size).toBe(60);
      expect(() =>
        validateStateDict(ckpt.stateDict(['model']), expected, {
          what: '7B.pth',
          allowedDtypes: ['float32', 'float16'],
        }),
      ).not.toThrow();
      // The same file checked for a wrong width: every tensor with a dim-sized axis is reported
      // (all but the 2 gates and the 10 FFN-width-only tensors), none hidden.
      const problems = checkStateDict(ckpt.stateDict(['model']), adapterShapes(128));
      expect(problems.missing).toEqual([]);
      expect(problems.shapeMismatches.length).toBe(48);
    } finally {
      await ckpt.close();
    }
  });

  it('lists every missing key, unexpected key, shape mismatch and unsupported dtype in one error', () => {
    const entries = new Map([
      ['a', entry('float32', [2, 3])],
      ['b', entry('float32', [4])],
      ['c', entry('int64', [])],
      ['rope.freqs', entry('float16', [64])],
      ['extra.weight', entry('float32', [1])],
    ]);
    const expected = new Map<string, number[]>([
      ['a', [3, 2]],
      ['b', [4]],
      ['c', []],
      ['missing.one', [1]],
      ['missing.two', [2]],
    ]);
    let error: unknown;
    try {
      validateStateDict(entries, expected, {
        what: 'ckpt.pth',
        allowUnexpected: ['rope.freqs'],
        allowedDtypes: ['float32', 'float16'],
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StateDictMismatchError);
    const e = error as StateDictMismatchError;
    expect(e.problems.missing).toEqual(['missing.one', 'missing.two']);
    expect(e.problems.unexpected).toEqual(['extra.weight']);
    expect(e.problems.shapeMismatches).toEqual([{ key: 'a', expected: [3, 2], actual: [2, 3] }]);
    expect(e.problems.unsupportedDtypes).toEqual([{ key: 'c', dtype: 'int64' }]);
    expect(e.message).toContain('ckpt.pth: state dict does not match the model');
    expect(e.message).toContain('2 missing key(s):\n    missing.one\n    missing.two');
    expect(e.message).toContain('1 unexpected key(s):\n    extra.weight');
    expect(e.message).toContain('a: expected [3, 2], found [2, 3]');
    expect(e.message).toContain('c: int64');
    expect(e.message).not.toContain('rope.freqs');
  });

  it('can allow missing and unexpected keys, and caps long listings', () => {
    const entries = new Map([['x', entry('float32', [1])]]);
    const expected = new Map<string, number[]>(Array.from({ length: 60 }, (_, i) => [`k${i}`, [1]]));
    expect(() =>
      validateStateDict(entries, expected, { allowMissing: true, allowUnexpected: true }),
    ).not.toThrow();
    expect(() =>
      validateStateDict(entries, expected, {
        allowMissing: (k) => k.startsWith('k'),
        allowUnexpected: ['x'],
      }),
    ).not.toThrow();
    expect(() =>
      validateStateDict(entries, expected, { allowMissing: true, allowUnexpected: ['y'] }),
    ).toThrow(/1 unexpected key\(s\):\n {4}x/);
    expect(() => validateStateDict(entries, expected)).toThrow(
      /60 missing key\(s\):[\s\S]*k49\n {4}\.\.\. and 10 more/,
    );
    expect(() => validateStateDict(entries, expected)).toThrow(/^checkpoint: /);
  });
});
