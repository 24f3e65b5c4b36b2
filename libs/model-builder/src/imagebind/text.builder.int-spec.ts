// The text encoder graph against the official PyTorch outputs on the golden tiny-a checkpoint: the
// golden token ids in, the stored embeddings out (MODEL_SPEC §3.4, B14).
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
import { buildTextGraph } from './text.builder';

const MIN_COSINE = 0.99999;
const dir = mkdtempSync(join(tmpdir(), 'imagebind-text-'));
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
    const expected = golden('expected/embed/a_dog.npy');
    const embedding = cosine(got.embedding, expected);
    const head = cosine(got.head, golden('expected/embed/a_dog.prenorm.npy'));
    console.log(`text/a_dog cosine: embedding ${fmt(embedding)}, head_prenorm ${fmt(head)}`);
    expect(embedding).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(head).toBeGreaterThanOrEqual(MIN_COSINE);
    const norm = (v: Float32Array): number => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
    expect(norm(got.embedding)).toBeCloseTo(norm(expected), 3);
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
    const expected = golden('expected/embed/a_dog.npy');
    expect(cosine(row(got.embedding, 0), expected)).toBeGreaterThanOrEqual(MIN_COSINE);
    expect(cosine(row(got.embedding, 1), expected)).toBeGreaterThanOrEqual(MIN_COSINE);
    const maxDiff = (a: Float32Array, b: Float32Array): number =>
      a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
    expect(maxDiff(row(got.head, 2), row(got.head, 3))).toBeLessThan(1e-5);
    expect(cosine(row(got.head, 2), row(got.head, 0))).toBeLessThan(0.99);
  });
});
