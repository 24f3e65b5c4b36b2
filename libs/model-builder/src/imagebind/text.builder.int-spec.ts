// The text encoder graph against the official PyTorch outputs on the golden tiny-a checkpoint: the
// golden token ids in, the stored embeddings out (MODEL_SPEC §3.4, B14). Each output is checked by
// relative error and norm (EMBED_REL_TOL): the learned logit scale gives the norm 14.6.
import { hostTensor } from '@imagebind-llm/inference';
import { readNpy } from '@imagebind-llm/checkpoint';
import { cosineSimilarity, goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { EncoderHarness, expectEmbedding, fmtErrors } from './testing/encoder-harness';
import { buildTextGraph } from './text.builder';

const harness = new EncoderHarness('text');
afterAll(() => harness.cleanup());
const runEncoder = harness.run.bind(harness);
const cosine = cosineSimilarity;

function tokenIds(): BigInt64Array {
  const t = readNpy(goldenPath('expected/preprocess/text_a_dog.npy'));
  expect(t.dtype).toBe('int64');
  return new BigInt64Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
}

describe('ImageBind text encoder matches the official outputs (golden tiny-a)', () => {
  it('a_dog (causal mask, pooled at the EOT, learned logit scale)', async () => {
    const got = await runEncoder('text', async (w, c) => buildTextGraph(w, c), {
      tokens: hostTensor('int64', [1, 77], tokenIds()),
    });
    console.log(`text/a_dog ${fmtErrors(expectEmbedding(got.embedding, got.head, 'a_dog'))}`);
  });

  it('pools at the first largest id (B14): ids after it do not matter, truncated rows pool at SOT', async () => {
    const dog = tokenIds();
    const rows: bigint[][] = [Array.from(dog)];
    // row 1: a second EOT and other ids after the first EOT (position 4): causal attention means
    // the pooled token cannot see them
    rows.push(Array.from(dog, (v, i) => (i < 5 ? v : BigInt(i === 9 ? 49407 : 1000 + i))));
    // rows 2, 3: 77 tokens with no EOT (truncated): the largest id is the SOT at position 0
    rows.push([49406n, ...Array.from({ length: 76 }, (_, i) => BigInt(300 + i))]);
    rows.push([49406n, ...Array.from({ length: 76 }, (_, i) => BigInt(40000 - 7 * i))]);
    const ids = new BigInt64Array(rows.flat());
    const got = await runEncoder('text-batch', async (w, c) => buildTextGraph(w, c), {
      tokens: hostTensor('int64', [4, 77], ids),
    });
    const row = (v: Float32Array, r: number): Float32Array => v.subarray(r * 1024, (r + 1) * 1024);
    expectEmbedding(row(got.embedding, 0), row(got.head, 0), 'a_dog');
    expectEmbedding(row(got.embedding, 1), row(got.head, 1), 'a_dog');
    const maxDiff = (a: Float32Array, b: Float32Array): number =>
      a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
    expect(maxDiff(row(got.head, 2), row(got.head, 3))).toBeLessThan(1e-5);
    expect(cosine(row(got.head, 2), row(got.head, 0))).toBeLessThan(0.99);
  });
});
