// The audio encoder graph against the official PyTorch outputs on the golden tiny-a checkpoint: the
// golden log-mel clips in, the stored embeddings out (MODEL_SPEC §3.3, §3.6).
import { hostTensor } from '@imagebind-llm/inference';
import { cosineSimilarity } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { EncoderHarness, fmtCosine, golden, MIN_COSINE } from './testing/encoder-harness';
import { buildAudioGraph } from './audio.builder';

const harness = new EncoderHarness('audio');
afterAll(() => harness.cleanup());
const runEncoder = harness.run.bind(harness);
const cosine = cosineSimilarity;
const fmt = fmtCosine;

describe('ImageBind audio encoder matches the official outputs (golden tiny-a)', () => {
  it('girl_bgm (3 clips, × 20, averaged after the postprocessor)', async () => {
    const audio = golden('expected/preprocess/audio_girl_bgm.npy');
    const got = await runEncoder('audio', async (w, c) => buildAudioGraph(w, c), {
      audio: hostTensor('float32', [1, 3, 1, 128, 204], audio),
    });
    const expected = golden('expected/embed/girl_bgm.npy');
    const embedding = cosine(got.embedding, expected);
    const head = cosine(got.head, golden('expected/embed/girl_bgm.prenorm.npy'));
    console.log(`audio/girl_bgm cosine: embedding ${fmt(embedding)}, head_prenorm ${fmt(head)}`);
    expect(embedding).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(head).toBeGreaterThanOrEqual(MIN_COSINE);
    // logit scale 20 on every clip, then the mean over clips (norm 19.8 in the manifest)
    const norm = (v: Float32Array): number => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    expect(norm(got.embedding)).toBeCloseTo(norm(expected), 3);
  });

  it('batch of 2: the clips of each row are averaged within that row only', async () => {
    const audio = golden('expected/preprocess/audio_girl_bgm.npy');
    const clip = audio.length / 3;
    const batch = new Float32Array(audio.length * 2);
    batch.set(audio);
    // row 1: the same clips in reverse order (the mean over clips does not depend on the order)
    for (let s = 0; s < 3; s++)
      batch.set(audio.subarray((2 - s) * clip, (3 - s) * clip), audio.length + s * clip);
    const got = await runEncoder('audio-batch', async (w, c) => buildAudioGraph(w, c), {
      audio: hostTensor('float32', [2, 3, 1, 128, 204], batch),
    });
    const expected = golden('expected/embed/girl_bgm.npy');
    const prenorm = golden('expected/embed/girl_bgm.prenorm.npy');
    for (let row = 0; row < 2; row++) {
      const e = got.embedding.subarray(row * 1024, (row + 1) * 1024);
      const h = got.head.subarray(row * 1024, (row + 1) * 1024);
      expect(cosine(e, expected)).toBeGreaterThanOrEqual(MIN_COSINE);
      expect(cosine(h, prenorm)).toBeGreaterThanOrEqual(MIN_COSINE);
    }
  });
});
