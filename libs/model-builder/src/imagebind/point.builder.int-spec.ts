// The point encoder graph against the official PyTorch outputs on the golden tiny-a checkpoint. The
// graph takes the grouped cloud: the test builds it from the golden FPS centres (started at index 0)
// and kNN groups stored beside the embeddings (MODEL_SPEC §3.7, B10).
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
import { buildPointGraph } from './point.builder';

const MIN_COSINE = 0.99999;
const dir = mkdtempSync(join(tmpdir(), 'imagebind-point-'));
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
    const embedding = cosine(got.embedding, golden(`expected/embed/${input}.npy`));
    const head = cosine(got.head, golden(`expected/embed/${input}.prenorm.npy`));
    console.log(`point/${input} cosine: embedding ${fmt(embedding)}, head_prenorm ${fmt(head)}`);
    expect(embedding).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(head).toBeGreaterThanOrEqual(MIN_COSINE);
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
      const e = got.embedding.subarray(row * 1024, (row + 1) * 1024);
      const h = got.head.subarray(row * 1024, (row + 1) * 1024);
      expect(cosine(e, golden(`expected/embed/${input}.npy`))).toBeGreaterThanOrEqual(MIN_COSINE);
      expect(cosine(h, golden(`expected/embed/${input}.prenorm.npy`))).toBeGreaterThanOrEqual(MIN_COSINE);
    }
  });
});
