// Shared by the encoder parity specs: build a graph from the golden checkpoint, run it once.
// Test-only (excluded from the library build).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTorchCheckpoint, readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { createOrtSession, type HostTensor } from '@imagebind-llm/inference';
import { goldenPath } from '@imagebind-llm/testing';
import { serializeModel, type GraphBuilder } from '../../onnx/onnx-graph';
import { WeightStore } from '../../weights';
import { EMBEDDING_OUTPUT, HEAD_OUTPUT } from '../encoder-ops';
import { parseImageBindConfig, type ImageBindConfig } from '../imagebind-config';

export const MIN_COSINE = 0.99999;

export const fmtCosine = (cos: number): string =>
  `${cos.toFixed(9)} (1 − cos = ${(1 - cos).toExponential(1)})`;
export const golden = (file: string): Float32Array => toFloat32(readNpy(goldenPath(file)));

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
