import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { float32Tensor, writeNpy, type RawTensor } from '@imagebind-llm/checkpoint';
import { dot, l2Normalize } from '@imagebind-llm/domain';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  ENCODER_COMPONENTS,
  encoderFeedsFromPreprocessed,
  InThreadPreprocessor,
  pointGroupingOf,
  resolveComponent,
  type EncodedInput,
  type ModalityInput,
  type PointGroupIndices,
} from '@imagebind-llm/inference';
import { createLogger } from '@imagebind-llm/observability';
import {
  createLocalEncoders,
  embedInputs,
  localModalities,
  PROTO_MODALITY,
  type HopContext,
  type PlatformBackends,
  type PlatformInput,
  type RoutedModality,
} from '@imagebind-llm/serving';
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

/** An input from the command line as the platform's orchestration takes it. */
function platformInput(input: ModalityInput): PlatformInput {
  const modality = PROTO_MODALITY[input.modality];
  if (input.modality === 'text') {
    const value = input.text ?? '';
    return {
      modality,
      weight: input.weight,
      source: { kind: 'encode', input: { source: { $case: 'text', value }, mediaType: '' } },
    };
  }
  // Point clouds are parsed by extension (MODEL_SPEC §2.5): the file name is the hint.
  const mediaType = input.modality === 'point' ? (input.fileName ?? '') : '';
  const value = Buffer.from(input.bytes ?? new Uint8Array());
  return {
    modality,
    weight: input.weight,
    source: { kind: 'encode', input: { source: { $case: 'content', value }, mediaType } },
  };
}

/** The call context of a one-shot command: no deadline, no cancellation, no log lines. */
export function oneShotContext(): HopContext {
  return {
    requestId: 'cli',
    logger: createLogger({ service: 'ibllm', level: 'silent' }),
    deadline: Number.POSITIVE_INFINITY,
    signal: new AbortController().signal,
  };
}

/** A command line holds what it holds: no per-request limits beyond each file's own. */
export const ONE_SHOT_ENCODER_LIMITS = {
  maxInputs: Number.MAX_SAFE_INTEGER,
  maxInputBytes: Number.MAX_SAFE_INTEGER,
} as const;

/** The encoders the inputs need; fails naming the component the repository lacks. */
export function encodersFor(repo: string, inputs: readonly ModalityInput[]): RoutedModality[] {
  const present = localModalities(repo);
  for (const input of inputs) {
    if (!present.includes(input.modality)) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `the model repository has no ${ENCODER_COMPONENTS[input.modality].component} component; build it with --imagebind`,
      );
    }
  }
  return [...new Set(inputs.map((i) => i.modality))];
}

/**
 * Encodes and fuses the inputs with the orchestration of serving (libs/serving platform) over
 * `backends`' encoders; with `withPreprocessed`, each input's encoder input comes back too (--dump).
 */
export async function embedWith(
  backends: Pick<PlatformBackends, 'encoder'>,
  repo: string,
  inputs: readonly ModalityInput[],
  withPreprocessed: boolean,
): Promise<{ encoded: EncodedInput[]; fused: Float32Array }> {
  const { perInput, fused } = await embedInputs(backends, inputs.map(platformInput), oneShotContext(), {
    includePreprocessed: withPreprocessed,
  });
  const encoded = inputs.map((input, i): EncodedInput => {
    const { embedding, preprocessed } = perInput[i]!;
    if (preprocessed === undefined) {
      return {
        modality: input.modality,
        embedding,
        preprocessed: { data: new Float32Array(0), shape: [0] },
      };
    }
    // The FPS centres and kNN groups of a cloud, for --dump: the grouping the encoder ran (MODEL_SPEC §3.7).
    const pointGroups = input.modality === 'point' ? pointGroupsOf(repo, preprocessed) : undefined;
    return {
      modality: input.modality,
      embedding,
      preprocessed,
      ...(pointGroups === undefined ? {} : { pointGroups }),
    };
  });
  return { encoded, fused };
}

/**
 * `ibllm embed`: the in-process encoders of standalone serving, only those the inputs need, on
 * `providers`, then embedWith. `providers` of the answer: the execution provider of each encoder
 * component used.
 */
export async function embedLocally(
  repo: string,
  inputs: readonly ModalityInput[],
  options: { readonly providers: readonly string[]; readonly withPreprocessed: boolean },
): Promise<{ encoded: EncodedInput[]; fused: Float32Array; providers: Record<string, string> }> {
  const encoders = await createLocalEncoders({
    modelRepo: repo,
    modalities: encodersFor(repo, inputs),
    // One-shot: the calling thread.
    preprocessing: new InThreadPreprocessor(),
    providers: options.providers,
    limits: ONE_SHOT_ENCODER_LIMITS,
  });
  try {
    const embedded = await embedWith(encoders, repo, inputs, options.withPreprocessed);
    return { ...embedded, providers: { ...encoders.providers } };
  } finally {
    await encoders.close();
  }
}

function pointGroupsOf(repo: string, cloud: EncodedInput['preprocessed']): PointGroupIndices | undefined {
  const { component, role } = ENCODER_COMPONENTS.point;
  const resolved = resolveComponent(repo, component);
  const grouping = pointGroupingOf(resolved.json.graphs?.[role]?.inputs ?? [], `${resolved.dir}/model.json`);
  return encoderFeedsFromPreprocessed('point', cloud, { point: grouping }).pointGroups;
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
  const { encoded, fused, providers } = await embedLocally(repo, inputs, {
    providers: providerPreference(values),
    withPreprocessed: values.dump !== undefined,
  });
  if (values.dump !== undefined) dumpEncoded(values.dump, encoded, fused);
  if (values.json) {
    io.out(
      `${JSON.stringify({ embeddings: encoded.map((e) => ({ modality: e.modality, embedding: Array.from(e.embedding) })), fused: Array.from(fused), providers })}\n`,
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
}
