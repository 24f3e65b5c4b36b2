import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { float32Tensor, writeNpy } from '@imagebind-llm/checkpoint';
import { dot, l2Normalize } from '@imagebind-llm/domain';
import { EncoderPipeline, type EncodedInput } from '@imagebind-llm/inference';
import { CliError, requireString } from '../cli-error';
import type { Output } from './generate.command';
import { collectInputs, INPUT_OPTIONS, INPUTS_USAGE } from './inputs';

export const EMBED_USAGE = `ibllm embed --models REPO ${INPUTS_USAGE} [--json] [--dump DIR]

Preprocesses each input exactly as the official loaders, runs its ImageBind encoder and fuses the
weighted embeddings (weights divided by their sum + 1e-6, MODEL_SPEC §1.2).`;

/** Writes input.<m>.npy, embedding.<m>.npy (numbered when a modality repeats) and fused.npy. */
export function dumpEncoded(dir: string, encoded: readonly EncodedInput[], fused: Float32Array): void {
  mkdirSync(dir, { recursive: true });
  const seen = new Map<string, number>();
  for (const e of encoded) {
    const n = seen.get(e.modality) ?? 0;
    seen.set(e.modality, n + 1);
    const suffix = n === 0 ? e.modality : `${e.modality}.${n}`;
    writeNpy(join(dir, `input.${suffix}.npy`), float32Tensor(e.preprocessed.data, [...e.preprocessed.shape]));
    writeNpy(join(dir, `embedding.${suffix}.npy`), float32Tensor(e.embedding, [e.embedding.length]));
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
  const pipeline = new EncoderPipeline(repo);
  try {
    const { encoded, fused } = await pipeline.embed(inputs);
    if (values.dump !== undefined) dumpEncoded(values.dump, encoded, fused);
    if (values.json) {
      io.out(
        `${JSON.stringify({ embeddings: encoded.map((e) => ({ modality: e.modality, embedding: Array.from(e.embedding) })), fused: Array.from(fused) })}\n`,
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
