// The vision encoder graph against the official PyTorch outputs on the golden tiny-a checkpoint:
// the golden preprocessed image and video tensors in, the stored embeddings out (MODEL_SPEC §3.2, §3.6).
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
import { buildVisionGraph } from './vision.builder';

const MIN_COSINE = 0.99999;
const dir = mkdtempSync(join(tmpdir(), 'imagebind-vision-'));
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
