// The point encoder graph against the official PyTorch outputs on the golden tiny-a checkpoint. The
// graph takes the grouped cloud: the test builds it from the golden FPS centres (started at index 0)
// and kNN groups stored beside the embeddings (MODEL_SPEC §3.7, B10). Each output is checked by
// relative error and norm (EMBED_REL_TOL), the head output before the postprocessor included.
import { hostTensor } from '@imagebind-llm/inference';
import { readNpy } from '@imagebind-llm/checkpoint';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { EncoderHarness, expectEmbedding, fmtErrors, golden } from './testing/encoder-harness';
import { buildPointGraph } from './point.builder';

const harness = new EncoderHarness('point');
afterAll(() => harness.cleanup());
const runEncoder = harness.run.bind(harness);

function indices(file: string): number[] {
  const t = readNpy(goldenPath(file));
  if (t.dtype === 'int64') {
    const v = new BigInt64Array(
      t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength),
    );
    return Array.from(v, Number);
  }
  expect(t.dtype).toBe('int32');
  return Array.from(
    new Int32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength)),
  );
}

/** neighborhood = X[idx] − center, center = X[fps], from the golden indices. */
function groupedCloud(input: string): { neighborhood: Float32Array; center: Float32Array } {
  const points = golden(`expected/preprocess/point_${input}.npy`);
  const fps = indices(`expected/embed/${input}.fps_idx.npy`);
  const groups = indices(`expected/embed/${input}.groups.npy`);
  const numGroup = fps.length;
  const k = groups.length / numGroup;
  expect([numGroup, k]).toEqual([512, 32]);
  const center = new Float32Array(numGroup * 3);
  const neighborhood = new Float32Array(numGroup * k * 3);
  for (let g = 0; g < numGroup; g++) {
    const c = fps[g]!;
    for (let a = 0; a < 3; a++) center[g * 3 + a] = points[c * 3 + a]!;
    for (let j = 0; j < k; j++) {
      const p = groups[g * k + j]!;
      for (let a = 0; a < 3; a++) neighborhood[(g * k + j) * 3 + a] = points[p * 3 + a]! - points[c * 3 + a]!;
    }
  }
  return { neighborhood, center };
}

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
