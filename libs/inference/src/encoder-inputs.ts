import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  CLIP_VOCAB_SIZE,
  InThreadPreprocessor,
  groupPointCloud,
  tokenizeClipText,
  type PointGrouping,
  type PointGroups,
  type PreprocessOutput,
  type PreprocessRunner,
} from '@imagebind-llm/preprocess';
import type { TensorSpec } from './model-repository';
import { hostTensor, type HostTensor } from './session.port';

export type InputModality = 'image' | 'video' | 'audio' | 'text' | 'point';

export const INPUT_MODALITIES: readonly InputModality[] = ['image', 'video', 'audio', 'text', 'point'];

/** One weighted input: file bytes (with their name, for the format) or text. */
export interface ModalityInput {
  readonly modality: InputModality;
  readonly weight: number;
  readonly bytes?: Uint8Array;
  readonly fileName?: string;
  readonly text?: string;
}

export interface EncodedInput {
  readonly modality: InputModality;
  /** After ImageBind's postprocessor (and clip mean), [1024]. */
  readonly embedding: Float32Array;
  /** The preprocessed tensor the encoder saw. */
  readonly preprocessed: { readonly data: Float32Array; readonly shape: readonly number[] };
  /** Point inputs: how the cloud was grouped before the graph (for `--dump`). */
  readonly pointGroups?: PointGroupIndices;
}

/** FPS centres and kNN groups of one cloud as indices into it (MODEL_SPEC §3.7 steps 1–2). */
export interface PointGroupIndices extends PointGrouping {
  /** `[numGroup]` centre indices in FPS selection order. */
  readonly centerIndices: Int32Array;
  /** `[numGroup, groupSize]` neighbour indices, nearest first. */
  readonly groupIndices: Int32Array;
}

/** What preprocessing needs from the model repository. */
export interface EncoderInputOptions {
  /**
   * The point graph's grouping (its `neighborhood` input is [batch, numGroup, groupSize, 3]);
   * required for point inputs: it depends on the checkpoint, see `pointGroupingOf`.
   */
  readonly point?: PointGrouping;
}

/**
 * The grouping a point graph was built for, from its input specs in model.json: `neighborhood`
 * [batch, num_group, group_size, 3] (the checkpoint config's values, MODEL_SPEC §3.7).
 */
export function pointGroupingOf(inputs: readonly TensorSpec[], where = 'the point graph'): PointGrouping {
  const dims = inputs.find((spec) => spec.name === 'neighborhood')?.dims;
  const [, numGroup, groupSize, xyz] = dims ?? [];
  const positive = (d: unknown): d is number => typeof d === 'number' && Number.isInteger(d) && d > 0;
  if (dims?.length !== 4 || !positive(numGroup) || !positive(groupSize) || xyz !== 3) {
    throw new DomainError(
      ErrorCode.FailedPrecondition,
      `${where} has no neighborhood input [batch, num_group, group_size, 3] with numeric sizes ` +
        `(found ${dims === undefined ? 'none' : `[${dims.join(', ')}]`}); rebuild the repository with \`ibllm models build\``,
    );
  }
  return { numGroup, groupSize };
}

function requirePointGrouping(options: EncoderInputOptions): PointGrouping {
  if (options.point === undefined) {
    // A programming error: every caller holds the repository's graph.
    throw new Error('point inputs need the point graph grouping (pointGroupingOf its model.json inputs)');
  }
  return options.point;
}

/** The repository component and graph role (`model.json` files) that encodes each modality. */
export const ENCODER_COMPONENTS: Readonly<Record<InputModality, { component: string; role: string }>> = {
  image: { component: 'imagebind-vision', role: 'image' },
  video: { component: 'imagebind-vision', role: 'video' },
  audio: { component: 'imagebind-audio', role: 'model' },
  text: { component: 'imagebind-text', role: 'model' },
  point: { component: 'imagebind-point', role: 'model' },
};

/** An input ready for its encoder: the session feeds (a batch of one) and the tensor they came from. */
export interface PreprocessedEncoderInput {
  /** Graph inputs by name, each with a leading batch dimension of 1. */
  readonly feeds: Record<string, HostTensor>;
  /**
   * The preprocessed tensor as `--dump` writes it and `encoderFeedsFromPreprocessed` reads it back:
   * image [3, 224, 224], video [15, 3, 2, 224, 224], audio [3, 1, 128, 204], text the token ids
   * [77] as floats, point the cloud [N, 3] (grouping happens inside the encoder, MODEL_SPEC §2.5).
   */
  readonly preprocessed: EncodedInput['preprocessed'];
  /** Point inputs: the FPS centres and kNN groups behind the feeds. */
  readonly pointGroups?: PointGroupIndices;
}

function bytesOf(input: ModalityInput): Uint8Array {
  if (input.bytes === undefined || input.bytes.length === 0) {
    throw DomainError.invalidInput(`the ${input.modality} input is empty (0 bytes)`, input.modality);
  }
  return input.bytes;
}

/** The calling thread, for callers without a pool (the CLI's one-shot commands). */
const IN_THREAD = new InThreadPreprocessor();

function tensorOf(output: PreprocessOutput): { data: Float32Array; shape: number[] } {
  if (output.kind !== 'tensor') throw new Error(`preprocessing answered ${output.kind}, expected a tensor`);
  return { data: output.data, shape: output.shape };
}

/**
 * Decodes and preprocesses one input exactly as the official loaders do (MODEL_SPEC §2). The CPU
 * work runs on `runner`: a serving process passes its PreprocessPool so that none of it runs on
 * the event loop; without one it runs on the calling thread. Text (tokenising 77 ids) stays here.
 */
export async function preprocessEncoderInput(
  input: ModalityInput,
  options: EncoderInputOptions = {},
  runner: PreprocessRunner = IN_THREAD,
  signal?: AbortSignal,
): Promise<PreprocessedEncoderInput> {
  const run = async (task: Parameters<PreprocessRunner['run']>[0]): Promise<PreprocessOutput> =>
    runner.run(task, signal === undefined ? {} : { signal });
  switch (input.modality) {
    case 'image':
      return encoderFeedsFromPreprocessed(
        'image',
        tensorOf(await run({ kind: 'image', bytes: bytesOf(input) })),
      );
    case 'audio':
      return encoderFeedsFromPreprocessed(
        'audio',
        tensorOf(await run({ kind: 'audio', bytes: bytesOf(input) })),
      );
    case 'text': {
      if (input.text === undefined || input.text.trim() === '')
        throw DomainError.invalidInput('a text input needs non-empty text', 'text');
      const ids = tokenizeClipText(input.text);
      return {
        feeds: { tokens: hostTensor('int64', [1, ids.length], ids) },
        preprocessed: { data: Float32Array.from(ids, Number), shape: [ids.length] },
      };
    }
    case 'point': {
      const output = await run({
        kind: 'point',
        bytes: bytesOf(input),
        fileName: input.fileName ?? 'cloud.npy',
        grouping: requirePointGrouping(options),
      });
      if (output.kind !== 'point')
        throw new Error(`preprocessing answered ${output.kind}, expected a point cloud`);
      return pointFeeds({ data: output.points, shape: [output.count, 3] }, output.groups);
    }
    case 'video':
      return encoderFeedsFromPreprocessed(
        'video',
        tensorOf(await run({ kind: 'video', bytes: bytesOf(input) })),
      );
  }
}

/**
 * The feeds of a client's preprocessed tensor with its CPU work (point grouping: FPS and kNN) on
 * `runner`; the other modalities need none and are checked here.
 */
export async function encoderFeedsFromPreprocessedOn(
  modality: InputModality,
  preprocessed: EncodedInput['preprocessed'],
  options: EncoderInputOptions,
  runner: PreprocessRunner,
  signal?: AbortSignal,
): Promise<PreprocessedEncoderInput> {
  const { data, shape } = preprocessed;
  if (modality !== 'point' || shape.length !== 2 || shape[1] !== 3 || data.length !== shape[0]! * 3) {
    // Everything but a well-formed cloud: no heavy work, and the in-thread checks give the errors.
    return encoderFeedsFromPreprocessed(modality, preprocessed, options);
  }
  const output = await runner.run(
    { kind: 'point-group', points: data, grouping: requirePointGrouping(options) },
    signal === undefined ? {} : { signal },
  );
  if (output.kind !== 'point')
    throw new Error(`preprocessing answered ${output.kind}, expected a point cloud`);
  return pointFeeds({ data: output.points, shape: [output.count, 3] }, output.groups);
}

/** The point graph's feeds from a cloud's FPS centres and kNN groups (MODEL_SPEC §3.7). */
function pointFeeds(
  preprocessed: EncodedInput['preprocessed'],
  groups: PointGroups,
): PreprocessedEncoderInput {
  const { numGroup, groupSize, centerIndices, groupIndices } = groups;
  return {
    feeds: {
      neighborhood: hostTensor('float32', [1, numGroup, groupSize, 3], groups.neighborhoods),
      center: hostTensor('float32', [1, numGroup, 3], groups.centers),
    },
    preprocessed,
    pointGroups: { numGroup, groupSize, centerIndices, groupIndices },
  };
}

/**
 * The session feeds for an already preprocessed tensor in the layout `preprocessEncoderInput`
 * reports, so a client may skip decoding. It checks what a session could not survive or would
 * misread (size, rank, token ids outside the vocabulary, too few points); the caller checks the
 * remaining dims against model.json.
 */
export function encoderFeedsFromPreprocessed(
  modality: InputModality,
  preprocessed: EncodedInput['preprocessed'],
  options: EncoderInputOptions = {},
): PreprocessedEncoderInput {
  const { data, shape } = preprocessed;
  const count = shape.reduce((a, b) => a * b, 1);
  if (shape.length === 0 || count !== data.length) {
    throw DomainError.invalidInput(
      `the preprocessed ${modality} tensor has ${data.length} values; shape [${shape.join(', ')}] needs ${count}`,
      'preprocessed',
    );
  }
  switch (modality) {
    case 'image':
      return { feeds: { image: hostTensor('float32', [1, ...shape], data) }, preprocessed };
    case 'video':
      return { feeds: { video: hostTensor('float32', [1, ...shape], data) }, preprocessed };
    case 'audio':
      return { feeds: { audio: hostTensor('float32', [1, ...shape], data) }, preprocessed };
    case 'text': {
      if (shape.length !== 1) {
        throw DomainError.invalidInput(
          `preprocessed text is its token ids [length], got shape [${shape.join(', ')}]`,
          'preprocessed',
        );
      }
      const ids = new BigInt64Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const id = data[i]!;
        // An id outside the vocabulary would fail, inside the session, the whole batch it joins.
        if (!Number.isInteger(id) || id < 0 || id >= CLIP_VOCAB_SIZE) {
          throw DomainError.invalidInput(
            `preprocessed text token ${i} is ${id}; ids are integers in [0, ${CLIP_VOCAB_SIZE})`,
            'preprocessed',
          );
        }
        ids[i] = BigInt(id);
      }
      return { feeds: { tokens: hostTensor('int64', [1, ids.length], ids) }, preprocessed };
    }
    case 'point': {
      if (shape.length !== 2 || shape[1] !== 3) {
        throw DomainError.invalidInput(
          `a preprocessed point cloud is [N, 3], got shape [${shape.join(', ')}]`,
          'preprocessed',
        );
      }
      return pointFeeds(
        preprocessed,
        groupPointCloud({ points: data, count: shape[0]! }, requirePointGrouping(options)),
      );
    }
  }
}

// What serving needs to run preprocessing off its event loop, without depending on the package.
export {
  InThreadPreprocessor,
  mediaNativeStatus,
  PreprocessPool,
  setMediaNativeEnabled,
  type PreprocessLimits,
  type PreprocessPoolOptions,
  type PreprocessRunner,
} from '@imagebind-llm/preprocess';
