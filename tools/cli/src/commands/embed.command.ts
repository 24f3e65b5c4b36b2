import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { float32Tensor, writeNpy, type RawTensor } from '@imagebind-llm/checkpoint';
import { dot, l2Normalize } from '@imagebind-llm/domain';
import { EncoderPipeline, type EncodedInput, type PointGroupIndices } from '@imagebind-llm/inference';
import { CliError, requireString } from '../cli-error';
import type { Output } from './generate.command';
import { collectInputs, INPUT_OPTIONS, INPUTS_USAGE } from './inputs';
import { PROVIDER_OPTIONS, providerPreference, PROVIDERS_HELP, PROVIDERS_USAGE } from '../providers';

export const EMBED_USAGE = `ibllm embed --models REPO ${INPUTS_USAGE} [--json] [--dump DIR] ${PROVIDERS_USAGE}

Preprocesses each input exactly as the official loaders, runs its ImageBind encoder and fuses the
weighted embeddings (weights divided by their sum + 1e-6, MODEL_SPEC §1.2). --dump DIR writes
input.<m>.npy, embedding.<m>.npy and fused.npy, and for a point cloud its FPS centres
(fps_idx.point.npy, int64) and kNN groups (groups.point.npy, int32, rows sorted ascending).

${PROVIDERS_HELP}`;

/**
 * A point input's grouping in the golden files' layout (`<name>.fps_idx.npy`, `<name>.groups.npy`):
 * FPS centres int64 [num_group] in selection order; groups int32 [num_group, group_size], each row
 * sorted ascending (the order inside a group does not reach the embedding, MODEL_SPEC §3.7).
 */
export function pointGroupTensors(groups: PointGroupIndices): { fpsIdx: RawTensor; groups: RawTensor } {
  const { numGroup, groupSize } = groups;
  const fps = BigInt64Array.from(groups.centerIndices, (i) => BigInt(i));
  const sorted = new Int32Array(groups.groupIndices);
  for (let g = 0; g < numGroup; g++) sorted.subarray(g * groupSize, (g + 1) * groupSize).sort();
  return {
    fpsIdx: { dtype: 'int64', shape: [numGroup], data: new Uint8Array(fps.buffer) },
    groups: { dtype: 'int32', shape: [numGroup, groupSize], data: new Uint8Array(sorted.buffer) },
  };
}

/**
 * Writes input.<m>.npy, embedding.<m>.npy (numbered when a modality repeats) and fused.npy; for
 * point inputs also fps_idx.<m>.npy and groups.<m>.npy (see pointGroupTensors).
 */
export function dumpEncoded(dir: string, encoded: readonly EncodedInput[], fused: Float32Array): void {
  mkdirSync(dir, { recursive: true });
  const seen = new Map<string, number>();
  for (const e of encoded) {
    const n = seen.get(e.modality) ?? 0;
    seen.set(e.modality, n + 1);
    const suffix = n === 0 ? e.modality : `${e.modality}.${n}`;
    writeNpy(join(dir, `input.${suffix}.npy`), float32Tensor(e.preprocessed.data, [...e.preprocessed.shape]));
    writeNpy(join(dir, `embedding.${suffix}.npy`), float32Tensor(e.embedding, [e.embedding.length]));
    if (e.pointGroups !== undefined) {
      const { fpsIdx, groups } = pointGroupTensors(e.pointGroups);
      writeNpy(join(dir, `fps_idx.${suffix}.npy`), fpsIdx);
      writeNpy(join(dir, `groups.${suffix}.npy`), groups);
    }
  }
  writeNpy(join(dir, 'fused.npy'), float32Tensor(fused, [fused.length]));
}

export async function embed(argv: string[], io: Output): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      models: { type: 'string' },
      json: { type: 'boolean', default: false },
      dump: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      ...PROVIDER_OPTIONS,
      ...INPUT_OPTIONS,
    },
    strict: true,
  });
  if (values.help === true) {
    io.log(EMBED_USAGE);
    return;
  }
  const repo = requireString(values, 'models');
  const inputs = collectInputs(values);
  if (inputs.length === 0)
    throw new CliError('give at least one input: --image, --video, --audio, --text or --point');
  const pipeline = new EncoderPipeline(repo, { providers: providerPreference(values) });
  try {
    const { encoded, fused } = await pipeline.embed(inputs);
    if (values.dump !== undefined) dumpEncoded(values.dump, encoded, fused);
    if (values.json) {
      io.out(
        `${JSON.stringify({ embeddings: encoded.map((e) => ({ modality: e.modality, embedding: Array.from(e.embedding) })), fused: Array.from(fused), providers: pipeline.providers })}\n`,
      );
      return;
    }
    const units = encoded.map((e) => l2Normalize(e.embedding));
    encoded.forEach((e, i) => {
      const norm = Math.sqrt(dot(e.embedding, e.embedding));
      io.out(
        `${e.modality.padEnd(6)} ‖e‖=${norm.toFixed(4)}  [${Array.from(e.embedding.slice(0, 4), (v) => v.toFixed(4)).join(', ')}, …]\n`,
      );
      for (let j = 0; j < i; j++)
        io.out(
          `       cos(${encoded[j]!.modality}, ${e.modality}) = ${dot(units[i]!, units[j]!).toFixed(4)}\n`,
        );
    });
    io.out(`fused  ‖q‖=${Math.sqrt(dot(fused, fused)).toFixed(4)}\n`);
  } finally {
    await pipeline.close();
  }
}
