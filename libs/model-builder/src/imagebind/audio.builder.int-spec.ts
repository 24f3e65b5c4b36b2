// The audio encoder graph against the official PyTorch outputs on the golden tiny-a checkpoint: the
// golden log-mel clips in, the stored embeddings out (MODEL_SPEC §3.3, §3.6).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTorchCheckpoint, readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { createOrtSession, hostTensor, type HostTensor } from '@imagebind-llm/inference';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { serializeModel, type GraphBuilder } from '../onnx/onnx-graph';
import { WeightStore } from '../weights';
import { EMBEDDING_OUTPUT, HEAD_OUTPUT } from './encoder-ops';
import { parseImageBindConfig, type ImageBindConfig } from './imagebind-config';
import { buildAudioGraph } from './audio.builder';

const MIN_COSINE = 0.99999;
const dir = mkdtempSync(join(tmpdir(), 'imagebind-audio-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

const fmt = (cos: number): string => `${cos.toFixed(9)} (1 − cos = ${(1 - cos).toExponential(1)})`;
const golden = (file: string): Float32Array => toFloat32(readNpy(goldenPath(file)));

/** Builds a graph from the golden checkpoint, runs it once on `feeds`, returns both outputs [batch, E]. */
async function runEncoder(
  name: string,
  build: (store: WeightStore, config: ImageBindConfig) => Promise<GraphBuilder>,
  feeds: Record<string, HostTensor>,
): Promise<{ embedding: Float32Array; head: Float32Array }> {
  const config = parseImageBindConfig(JSON.parse(readFileSync(goldenPath('imagebind_config.json'), 'utf8')));
  const ckpt = await openTorchCheckpoint(goldenPath('imagebind_w3D.pth'));
  const path = join(dir, `${name}.onnx`);
  try {
    const graph = await build(new WeightStore(ckpt.stateDict()), config);
    writeFileSync(path, serializeModel(graph, { opsets: { '': 17 }, producerVersion: 'test' }));
  } finally {
    await ckpt.close();
  }
  const session = await createOrtSession(path);
  try {
    const result = await session.run(feeds);
    const embedding = result[EMBEDDING_OUTPUT]!;
    const head = result[HEAD_OUTPUT]!;
    const batch = Object.values(feeds)[0]!.dims[0]!;
    expect(embedding.dims).toEqual([batch, config.imagebind.out_embed_dim]);
    expect(head.dims).toEqual([batch, config.imagebind.out_embed_dim]);
    return { embedding: embedding.data as Float32Array, head: head.data as Float32Array };
  } finally {
    await session.release();
  }
}

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
