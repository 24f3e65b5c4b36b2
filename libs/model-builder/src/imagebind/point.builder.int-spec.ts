// The point encoder graph against the official PyTorch outputs on the golden tiny-a checkpoint. The
// graph takes the grouped cloud: the test builds it from the golden FPS centres (started at index 0)
// and kNN groups stored beside the embeddings (MODEL_SPEC §3.7, B10). Each output is checked by
// relative error and norm (EMBED_REL_TOL), the head output before the postprocessor included.
import { hostTensor } from '@imagebind-llm/inference';
import { afterAll, describe, it } from 'vitest';
import { EncoderHarness, expectEmbedding, fmtErrors, groupedCloud } from './testing/encoder-harness';
import { buildPointGraph } from './point.builder';

const harness = new EncoderHarness('point');
afterAll(() => harness.cleanup());
const runEncoder = harness.run.bind(harness);

describe('ImageBind point encoder matches the official outputs (golden tiny-a)', () => {
  it.each(['airplane', 'airplane_perm'])('%s', async (input) => {
    const { neighborhood, center } = groupedCloud(input);
    const got = await runEncoder(input, async (w, c) => buildPointGraph(w, c), {
      neighborhood: hostTensor('float32', [1, 512, 32, 3], neighborhood),
      center: hostTensor('float32', [1, 512, 3], center),
    });
    console.log(`point/${input} ${fmtErrors(expectEmbedding(got.embedding, got.head, input))}`);
  });

  it('batch of 2: airplane and airplane_perm in one run', async () => {
    const a = groupedCloud('airplane');
    const b = groupedCloud('airplane_perm');
    const cat = (x: Float32Array, y: Float32Array): Float32Array => {
      const z = new Float32Array(x.length + y.length);
      z.set(x);
      z.set(y, x.length);
      return z;
    };
    const got = await runEncoder('point-batch', async (w, c) => buildPointGraph(w, c), {
      neighborhood: hostTensor('float32', [2, 512, 32, 3], cat(a.neighborhood, b.neighborhood)),
      center: hostTensor('float32', [2, 512, 3], cat(a.center, b.center)),
    });
    for (const [row, input] of ['airplane', 'airplane_perm'].entries()) {
      expectEmbedding(
        got.embedding.subarray(row * 1024, (row + 1) * 1024),
        got.head.subarray(row * 1024, (row + 1) * 1024),
        input,
      );
    }
  });
});
