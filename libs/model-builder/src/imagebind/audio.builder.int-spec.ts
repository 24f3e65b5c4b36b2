// The audio encoder graph against the official PyTorch outputs on the golden tiny-a checkpoint: the
// golden log-mel clips in, the stored embeddings out (MODEL_SPEC §3.3, §3.6). Each output is
// checked by relative error and norm (EMBED_REL_TOL): the logit scale 20 gives the norm 19.8.
import { hostTensor } from '@imagebind-llm/inference';
import { afterAll, describe, it } from 'vitest';
import { EncoderHarness, expectEmbedding, fmtErrors, golden } from './testing/encoder-harness';
import { buildAudioGraph } from './audio.builder';

const harness = new EncoderHarness('audio');
afterAll(() => harness.cleanup());
const runEncoder = harness.run.bind(harness);

describe('ImageBind audio encoder matches the official outputs (golden tiny-a)', () => {
  it('girl_bgm (3 clips, × 20, averaged after the postprocessor)', async () => {
    const audio = golden('expected/preprocess/audio_girl_bgm.npy');
    const got = await runEncoder('audio', async (w, c) => buildAudioGraph(w, c), {
      audio: hostTensor('float32', [1, 3, 1, 128, 204], audio),
    });
    console.log(`audio/girl_bgm ${fmtErrors(expectEmbedding(got.embedding, got.head, 'girl_bgm'))}`);
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
    for (let row = 0; row < 2; row++)
      expectEmbedding(
        got.embedding.subarray(row * 1024, (row + 1) * 1024),
        got.head.subarray(row * 1024, (row + 1) * 1024),
        'girl_bgm',
      );
  });
});
