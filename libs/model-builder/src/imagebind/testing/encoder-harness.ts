// Shared by the encoder parity specs: build a graph from the golden checkpoint, run it once.
// Test-only (excluded from the library build).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTorchCheckpoint, readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { createOrtSession, type HostTensor } from '@imagebind-llm/inference';
import { goldenPath, l2Norm, relativeError } from '@imagebind-llm/testing';
import { expect } from 'vitest';
import { serializeModel, type GraphBuilder } from '../../onnx/onnx-graph';
import { WeightStore } from '../../weights';
import { EMBEDDING_OUTPUT, HEAD_OUTPUT } from '../encoder-ops';
import { parseImageBindConfig, type ImageBindConfig } from '../imagebind-config';

/**
 * ‖ours − official‖₂ / ‖official‖₂ for the graphs fed the stored preprocessed tensors. The manifest's
 * hint is ~1e-4; the official outputs are float32 on CPU like ours, and what remains is summation
 * order (fused attention, LayerNorm in one op, float32 GELU) through the blocks and the head,
 * measured at ≤ 6.2e-7 on every modality (see the log lines). 1e-5 keeps a 16× margin for other CPUs and is the bound golden-parity
 * already holds for the language path; a dropped logit scale (×20 audio, ×14.6 text) or a missing
 * normalisation is off by orders of magnitude.
 */
export const EMBED_REL_TOL = 1e-5;

export const golden = (file: string): Float32Array => toFloat32(readNpy(goldenPath(file)));

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

/**
 * The point encoder's inputs from the golden FPS centres and kNN groups stored beside the
 * embeddings (MODEL_SPEC §3.7, B10): neighborhood = X[idx] − center, center = X[fps].
 */
export function groupedCloud(input: string): { neighborhood: Float32Array; center: Float32Array } {
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

/** Relative errors of one encoder output row against `expected/embed/<input>.{npy,l2.npy,prenorm.npy}`. */
export interface EmbeddingErrors {
  /** the embedding after the postprocessor (normalise, × logit scale, clip mean) */
  readonly embedding: number;
  /** its L2-normalised form, as forward_visual uses it */
  readonly l2: number;
  /** the head output before the postprocessor */
  readonly head: number;
  /** |‖ours‖ − ‖official‖| / ‖official‖ of the embedding: the logit scale and the clip mean */
  readonly norm: number;
  /** the same for the head output */
  readonly headNorm: number;
}

const normalise = (v: Float32Array): Float32Array => {
  const n = l2Norm(v);
  return v.map((x) => x / n);
};

export function embeddingErrors(embedding: Float32Array, head: Float32Array, input: string): EmbeddingErrors {
  const e = golden(`expected/embed/${input}.npy`);
  const h = golden(`expected/embed/${input}.prenorm.npy`);
  return {
    embedding: relativeError(embedding, e),
    l2: relativeError(normalise(embedding), golden(`expected/embed/${input}.l2.npy`)),
    head: relativeError(head, h),
    norm: Math.abs(l2Norm(embedding) - l2Norm(e)) / l2Norm(e),
    headNorm: Math.abs(l2Norm(head) - l2Norm(h)) / l2Norm(h),
  };
}

export const fmtErrors = (e: EmbeddingErrors): string =>
  `rel. error embedding ${e.embedding.toExponential(2)}, l2 ${e.l2.toExponential(2)}, head_prenorm ${e.head.toExponential(2)}; norm ${e.norm.toExponential(2)}, head norm ${e.headNorm.toExponential(2)}`;

/** Every error of `embeddingErrors` within `tol` (EMBED_REL_TOL unless a test says why not). */
export function expectEmbedding(
  embedding: Float32Array,
  head: Float32Array,
  input: string,
  tol = EMBED_REL_TOL,
): EmbeddingErrors {
  const errors = embeddingErrors(embedding, head, input);
  for (const [what, value] of Object.entries(errors))
    expect(value, `${input} ${what} (${fmtErrors(errors)})`).toBeLessThanOrEqual(tol);
  return errors;
}

export class EncoderHarness {
  private readonly dir: string;

  constructor(prefix: string) {
    this.dir = mkdtempSync(join(tmpdir(), `imagebind-${prefix}-`));
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Builds a graph from the golden checkpoint, runs it once on `feeds`, returns both outputs [batch, E]. */
  async run(
    name: string,
    build: (store: WeightStore, config: ImageBindConfig) => Promise<GraphBuilder>,
    feeds: Record<string, HostTensor>,
  ): Promise<{ embedding: Float32Array; head: Float32Array; dims: readonly number[] }> {
    const config = parseImageBindConfig(
      JSON.parse(readFileSync(goldenPath('imagebind_config.json'), 'utf8')),
    );
    const ckpt = await openTorchCheckpoint(goldenPath('imagebind_w3D.pth'));
    const path = join(this.dir, `${name}.onnx`);
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
      if (embedding.dims.join() !== head.dims.join())
        throw new Error('embedding and head outputs differ in shape');
      return {
        embedding: embedding.data as Float32Array,
        head: head.data as Float32Array,
        dims: embedding.dims,
      };
    } finally {
      await session.release();
    }
  }
}
