// `buildEncoderRepository({ format: 'fp16' })` on the golden tiny-a checkpoint: every encoder's
// files, run through onnxruntime, against the official float32 outputs (MODEL_SPEC §3.2–§3.7).
// The fp32 build's parity (EMBED_REL_TOL = 1e-5) is asserted by the per-encoder specs; this one
// bounds what rounding the matrices to float16 adds, and checks the files really hold float16.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy } from '@imagebind-llm/checkpoint';
import { createOrtSession, hostTensor, type HostTensor } from '@imagebind-llm/inference';
import { goldenPath } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEncoderRepository } from './encoders.builder';
import { EMBEDDING_OUTPUT, HEAD_OUTPUT } from './imagebind';
import {
  embeddingErrors,
  fmtErrors,
  golden,
  groupedCloud,
  type EmbeddingErrors,
} from './imagebind/testing/encoder-harness';

/**
 * ‖ours − official‖₂ / ‖official‖₂ with every matrix rounded to float16. Rounding to nearest with
 * an 11-bit significand moves each weight by at most 2⁻¹¹ ≈ 4.9e-4 of its value, 2.8e-4 RMS
 * (uniform error, 2⁻¹¹/√3); the errors are independent, so each matmul's output moves by about
 * that RMS and the ≈ 10 matmuls a tiny-a input passes through add in quadrature, partly damped by
 * the LayerNorms. Measured on tiny-a: 4.3e-4 (text) to 6.3e-4 (vision head_prenorm), the norms
 * within 2.1e-5 (see the log lines); the fp32 build of the same files is at ≤ 6.2e-7. 2e-3 leaves
 * a 3× margin for other CPUs and is still 50× under a 10 % error (a mis-laid-out or dropped
 * tensor); the size check below fails if the matrices were not rounded at all.
 */
const FP16_REL_TOL = 2e-3;

const dir = mkdtempSync(join(tmpdir(), 'encoders-fp16-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bytesUnder = (path: string): number =>
  readdirSync(path, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.includes('.onnx'))
    .reduce((n, e) => n + statSync(join(e.parentPath, e.name)).size, 0);

beforeAll(async () => {
  for (const format of ['fp32', 'fp16'] as const) {
    await buildEncoderRepository({
      imagebind: goldenPath('imagebind_w3D.pth'),
      imagebindConfig: goldenPath('imagebind_config.json'),
      out: join(dir, format),
      format,
    });
  }
});

async function run(
  component: string,
  file: string,
  feeds: Record<string, HostTensor>,
): Promise<{ embedding: Float32Array; head: Float32Array }> {
  const session = await createOrtSession(join(dir, 'fp16', component, '1', file));
  try {
    const out = await session.run(feeds);
    return {
      embedding: out[EMBEDDING_OUTPUT]!.data as Float32Array,
      head: out[HEAD_OUTPUT]!.data as Float32Array,
    };
  } finally {
    await session.release();
  }
}

function expectFp16Parity(got: { embedding: Float32Array; head: Float32Array }, input: string): void {
  const errors: EmbeddingErrors = embeddingErrors(got.embedding, got.head, input);
  console.log(`fp16 ${input}: ${fmtErrors(errors)}`);
  for (const [what, value] of Object.entries(errors))
    expect(value, `${input} ${what} (${fmtErrors(errors)})`).toBeLessThanOrEqual(FP16_REL_TOL);
}

function textTokens(): BigInt64Array {
  const t = readNpy(goldenPath('expected/preprocess/text_a_dog.npy'));
  return new BigInt64Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
}

describe('encoders built with format fp16 (golden tiny-a)', () => {
  it('store their weights as float16: files about half the fp32 build, model.json says float16', () => {
    for (const component of ['imagebind-vision', 'imagebind-audio', 'imagebind-text', 'imagebind-point']) {
      const fp32 = bytesUnder(join(dir, 'fp32', component));
      const fp16 = bytesUnder(join(dir, 'fp16', component));
      // Vectors (norms, biases, tokens) stay float32 and the graph adds a Cast per matrix.
      expect(fp16 / fp32, component).toBeGreaterThan(0.49);
      expect(fp16 / fp32, component).toBeLessThan(0.53);
      const json = JSON.parse(readFileSync(join(dir, 'fp16', component, '1', 'model.json'), 'utf8')) as {
        dtype: string;
      };
      expect(json.dtype).toBe('float16');
    }
  });

  it('vision image: girl', async () => {
    const image = golden('expected/preprocess/image_girl.npy');
    expectFp16Parity(
      await run('imagebind-vision', 'image.onnx', { image: hostTensor('float32', [1, 3, 224, 224], image) }),
      'girl',
    );
  });

  it('audio: girl_bgm (3 clips)', async () => {
    const audio = golden('expected/preprocess/audio_girl_bgm.npy');
    expectFp16Parity(
      await run('imagebind-audio', 'model.onnx', {
        audio: hostTensor('float32', [1, 3, 1, 128, 204], audio),
      }),
      'girl_bgm',
    );
  });

  it('text: a_dog', async () => {
    expectFp16Parity(
      await run('imagebind-text', 'model.onnx', { tokens: hostTensor('int64', [1, 77], textTokens()) }),
      'a_dog',
    );
  });

  it('point: airplane', async () => {
    const { neighborhood, center } = groupedCloud('airplane');
    expectFp16Parity(
      await run('imagebind-point', 'model.onnx', {
        neighborhood: hostTensor('float32', [1, 512, 32, 3], neighborhood),
        center: hostTensor('float32', [1, 512, 3], center),
      }),
      'airplane',
    );
  });
});
