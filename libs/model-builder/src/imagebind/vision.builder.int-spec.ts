// The vision encoder graph against the official PyTorch outputs on the golden tiny-a checkpoint:
// the golden preprocessed image and video tensors in, the stored embeddings out (MODEL_SPEC §3.2, §3.6).
import { hostTensor } from '@imagebind-llm/inference';
import { cosineSimilarity } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { EncoderHarness, fmtCosine, golden, MIN_COSINE } from './testing/encoder-harness';
import { buildVisionGraph } from './vision.builder';

const harness = new EncoderHarness('vision');
afterAll(() => harness.cleanup());
const runEncoder = harness.run.bind(harness);
const cosine = cosineSimilarity;
const fmt = fmtCosine;

describe('ImageBind vision encoder matches the official outputs (golden tiny-a)', () => {
  it('image: girl', async () => {
    const image = golden('expected/preprocess/image_girl.npy');
    const got = await runEncoder('image', async (w, c) => buildVisionGraph(w, c, { input: 'image' }), {
      image: hostTensor('float32', [1, 3, 224, 224], image),
    });
    const embedding = cosine(got.embedding, golden('expected/embed/girl.npy'));
    const head = cosine(got.head, golden('expected/embed/girl.prenorm.npy'));
    console.log(`vision/girl cosine: embedding ${fmt(embedding)}, head_prenorm ${fmt(head)}`);
    expect(embedding).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(head).toBeGreaterThanOrEqual(MIN_COSINE);
  });

  it('image batch of 2: rows are independent', async () => {
    const image = golden('expected/preprocess/image_girl.npy');
    const batch = new Float32Array(image.length * 2);
    batch.set(
      image.map((v) => -v),
      0,
    );
    batch.set(image, image.length);
    const got = await runEncoder('image-batch', async (w, c) => buildVisionGraph(w, c, { input: 'image' }), {
      image: hostTensor('float32', [2, 3, 224, 224], batch),
    });
    const row1 = got.embedding.subarray(1024, 2048);
    expect(cosine(row1, golden('expected/embed/girl.npy'))).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(
      cosine(got.head.subarray(1024, 2048), golden('expected/embed/girl.prenorm.npy')),
    ).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(cosine(got.embedding.subarray(0, 1024), row1)).toBeLessThan(0.99);
  });

  it('video: landscape (15 clips, averaged after the postprocessor)', async () => {
    const video = golden('expected/preprocess/video_landscape.f16.npy');
    const got = await runEncoder('video', async (w, c) => buildVisionGraph(w, c, { input: 'video' }), {
      video: hostTensor('float32', [1, 15, 3, 2, 224, 224], video),
    });
    const expected = golden('expected/embed/landscape.npy');
    const embedding = cosine(got.embedding, expected);
    const head = cosine(got.head, golden('expected/embed/landscape.prenorm.npy'));
    console.log(`vision/landscape cosine: embedding ${fmt(embedding)}, head_prenorm ${fmt(head)}`);
    expect(embedding).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(head).toBeGreaterThanOrEqual(MIN_COSINE);
    // the clip mean is not re-normalised: its norm (0.98 here) must come out as well
    const norm = (v: Float32Array): number => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    expect(norm(got.embedding)).toBeCloseTo(norm(expected), 4);
  });
});
