// Parity of the language path with the official implementation, on the golden tiny-a set
// (shared/golden/tiny-a: official-format checkpoints and what the official PyTorch code produced).
// The repository is built from the checkpoint files exactly as `ibllm models build` does.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { LanguagePipeline } from '@imagebind-llm/inference';
import { buildLanguageRepository } from '@imagebind-llm/model-builder';
import { goldenDir, maxAbsDifference, relativeError } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Tolerances (issue #3): ‖a−b‖₂/‖b‖₂ ≤ 1e-5 for vectors, max |Δ| ≤ 1e-4 for logits. The official
// outputs were computed in float32 on CPU like ours; the remaining differences are summation
// order (merged LoRA, fused QKV, float64 accumulation in the cache blend), measured at ~1e-6.
const VECTOR_REL_TOL = 1e-5;
const LOGIT_ABS_TOL = 1e-4;

interface FusionCase {
  id: string;
  knn: { enabled: boolean; cache_size?: number; cache_t?: number; cache_weight?: number };
  outputs: Record<string, { file: string }>;
}
interface DecodeCase {
  id: string;
  fusion_case: string;
  instruction: string;
  input: string | null;
  prompt_ids: number[];
  max_gen_len: number;
  gates_zero: boolean;
  generated_ids: number[];
  outputs: Record<string, { file: string }>;
}

const dir = goldenDir();
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
  cases: (FusionCase | DecodeCase)[];
};
const fusionCases = manifest.cases.filter((c) => c.id.startsWith('fusion/')) as FusionCase[];
const decodeCases = manifest.cases.filter((c) => c.id.startsWith('decode/')) as DecodeCase[];
const load = (file: string): Float32Array => toFloat32(readNpy(join(dir, file)));
const loadInt = (file: string): number[] => Array.from(toFloat32(readNpy(join(dir, file))));

let repo: string;
let pipeline: LanguagePipeline;
/** Our visual offsets per fusion case, computed from the golden q through our cache and bind. */
const offsetsByFusion = new Map<string, Float32Array>();

beforeAll(async () => {
  repo = mkdtempSync(join(tmpdir(), 'ibllm-golden-repo-'));
  await buildLanguageRepository({
    adapter: join(dir, '7B.pth'),
    llamaDir: join(dir, 'llama'),
    llamaType: '7B',
    knn: join(dir, 'knn.index'),
    out: repo,
  });
  pipeline = await LanguagePipeline.load(repo, { maxBatch: 8 });
}, 120_000);

afterAll(async () => {
  await pipeline?.close();
  rmSync(repo, { recursive: true, force: true });
});

describe('fusion → cache → bind → layer offsets', () => {
  it.each(fusionCases.map((c) => [c.id, c] as const))('%s', async (_id, c) => {
    let q = load(c.outputs['q']!.file);
    if (c.knn.enabled) {
      const { blended, neighbours } = pipeline.blend(q, {
        enabled: true,
        size: c.knn.cache_size!,
        temperature: c.knn.cache_t!,
        weight: c.knn.cache_weight!,
      });
      expect(neighbours.map((n) => n.id)).toEqual(loadInt(c.outputs['knn_ids']!.file));
      expect(
        maxAbsDifference(
          Float32Array.from(neighbours, (n) => n.score),
          load(c.outputs['knn_scores']!.file),
        ),
      ).toBeLessThan(1e-6);
      expect(relativeError(blended, load(c.outputs['q_knn']!.file))).toBeLessThanOrEqual(VECTOR_REL_TOL);
      q = blended;
    }
    const v = await pipeline.project(q);
    expect(relativeError(v, load(c.outputs['v']!.file))).toBeLessThanOrEqual(VECTOR_REL_TOL);
    const offsets = await pipeline.layerOffsets(v);
    expect(relativeError(offsets, load(c.outputs['c']!.file))).toBeLessThanOrEqual(VECTOR_REL_TOL);
    offsetsByFusion.set(c.id, offsets);
  });
});

function requestFor(c: DecodeCase, extra: { resumeIds?: number[]; maxNewTokens?: number } = {}) {
  const offsets = offsetsByFusion.get(c.fusion_case);
  if (offsets === undefined) throw new Error(`fusion case ${c.fusion_case} did not run`);
  return {
    promptIds: c.prompt_ids,
    // gates forced to zero: the visual term vanishes, c_l = 0 (MODEL_SPEC §9 item 6)
    layerOffsets: c.gates_zero ? new Float32Array(offsets.length) : offsets,
    sampling: { temperature: 0, topP: 0.75, seed: 0n },
    maxNewTokens: extra.maxNewTokens ?? c.max_gen_len,
    wantPrefillLogits: true,
    ...(extra.resumeIds === undefined ? {} : { resumeIds: extra.resumeIds }),
  };
}

describe('greedy decoding', () => {
  it.each(decodeCases.map((c) => [c.id, c] as const))(
    '%s: prompt ids, prefill logits, 24 greedy tokens',
    async (_id, c) => {
      const ids = pipeline.tokenizer.encode(
        c.input === null
          ? (await import('@imagebind-llm/tokenizer')).formatPrompt(c.instruction)
          : (await import('@imagebind-llm/tokenizer')).formatPrompt(c.instruction, c.input),
        { bos: true },
      );
      expect(ids).toEqual(c.prompt_ids);
      const result = await pipeline.engine.generate(requestFor(c));
      expect(
        maxAbsDifference(result.prefillLogits!, load(c.outputs['prefill_logits']!.file)),
      ).toBeLessThanOrEqual(LOGIT_ABS_TOL);
      expect(result.tokenIds).toEqual(c.generated_ids);
      expect(result.tokenIds).toEqual(loadInt(c.outputs['generated_ids']!.file));
    },
  );

  it('gives the same tokens when every case decodes in one batch (rows of different lengths and visual vectors)', async () => {
    const results = await Promise.all(decodeCases.map(async (c) => pipeline.engine.generate(requestFor(c))));
    results.forEach((r, i) => expect(r.tokenIds, decodeCases[i]!.id).toEqual(decodeCases[i]!.generated_ids));
  });

  it('continues exactly where a broken stream stopped when resumed from the tokens already sent', async () => {
    const c = decodeCases.find((x) => x.id === 'decode/demo_image+audio_knn-on')!;
    const resumed = await pipeline.engine.generate(requestFor(c, { resumeIds: c.generated_ids.slice(0, 9) }));
    expect(resumed.tokenIds).toEqual(c.generated_ids);
  });

  it('visual input changes the answer: gates at zero and the real gates disagree', () => {
    const withGates = decodeCases.find((x) => x.id === 'decode/demo_image+audio_knn-on')!;
    const noGates = decodeCases.find((x) => x.id === 'decode/gates0_image+audio_knn-on')!;
    expect(withGates.generated_ids).not.toEqual(noGates.generated_ids);
  });
});
