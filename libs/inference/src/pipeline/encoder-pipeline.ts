import { fuseEmbeddings } from '@imagebind-llm/domain';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  groupPointCloud,
  parsePointCloud,
  preprocessAudioAny,
  preprocessImage,
  preprocessVideo,
  tokenizeClipText,
} from '@imagebind-llm/preprocess';
import { listComponents, resolveComponent } from '../model-repository';
import { createOrtSession, type OrtSessionOptions } from '../ort-session.driver';
import { hostTensor, type HostTensor, type InferenceSessionPort } from '../session.port';
import { SingleFlight } from '../single-flight';

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
}

const COMPONENT: Readonly<Record<InputModality, { component: string; role: string }>> = {
  image: { component: 'imagebind-vision', role: 'image' },
  video: { component: 'imagebind-vision', role: 'video' },
  audio: { component: 'imagebind-audio', role: 'model' },
  text: { component: 'imagebind-text', role: 'model' },
  point: { component: 'imagebind-point', role: 'model' },
};

/**
 * The encoder half of ImageBind-LLM on one machine: preprocess each input exactly as the official
 * loaders (MODEL_SPEC §2), run its ImageBind encoder, and fuse the weighted embeddings (§1.2).
 * Sessions load on first use, once.
 */
export class EncoderPipeline {
  private readonly sessions: SingleFlight<InputModality, InferenceSessionPort>;
  private present: InputModality[] | undefined;

  constructor(
    private readonly repo: string,
    private readonly options: OrtSessionOptions = {},
  ) {
    this.sessions = new SingleFlight(async (m) => {
      const { component, role } = COMPONENT[m];
      return createOrtSession(resolveComponent(this.repo, component).file(role), this.options);
    });
  }

  /** Modalities whose encoder the repository has (read from disk once). */
  available(): InputModality[] {
    if (this.present === undefined) {
      const components = new Set(listComponents(this.repo).map((c) => c.component));
      this.present = INPUT_MODALITIES.filter((m) => components.has(COMPONENT[m].component));
    }
    return this.present;
  }

  private async preprocess(
    input: ModalityInput,
  ): Promise<{ feeds: Record<string, HostTensor>; shown: EncodedInput['preprocessed'] }> {
    switch (input.modality) {
      case 'image': {
        const { tensor } = await preprocessImage(this.bytesOf(input));
        return {
          feeds: { image: hostTensor('float32', [1, 3, 224, 224], tensor) },
          shown: { data: tensor, shape: [3, 224, 224] },
        };
      }
      case 'audio': {
        const { tensor, shape } = await preprocessAudioAny(this.bytesOf(input));
        return {
          feeds: { audio: hostTensor('float32', [1, ...shape], tensor) },
          shown: { data: tensor, shape },
        };
      }
      case 'text': {
        if (input.text === undefined || input.text.trim() === '')
          throw DomainError.invalidInput('a text input needs non-empty text', 'text');
        const ids = tokenizeClipText(input.text);
        return {
          feeds: { tokens: hostTensor('int64', [1, ids.length], ids) },
          shown: { data: Float32Array.from(ids, Number), shape: [ids.length] },
        };
      }
      case 'point': {
        const name = input.fileName ?? 'cloud.npy';
        const cloud = await parsePointCloud(this.bytesOf(input), name);
        const groups = groupPointCloud(cloud);
        return {
          feeds: {
            neighborhood: hostTensor(
              'float32',
              [1, groups.numGroup, groups.groupSize, 3],
              groups.neighborhoods,
            ),
            center: hostTensor('float32', [1, groups.numGroup, 3], groups.centers),
          },
          shown: { data: cloud.points, shape: [cloud.count, 3] },
        };
      }
      case 'video': {
        const { tensor, shape } = await preprocessVideo(this.bytesOf(input));
        return {
          feeds: { video: hostTensor('float32', [1, ...shape], tensor) },
          shown: { data: tensor, shape },
        };
      }
    }
  }

  private bytesOf(input: ModalityInput): Uint8Array {
    if (input.bytes === undefined || input.bytes.length === 0) {
      throw DomainError.invalidInput(`the ${input.modality} input is empty (0 bytes)`, input.modality);
    }
    return input.bytes;
  }

  async encode(input: ModalityInput): Promise<EncodedInput> {
    if (!this.available().includes(input.modality)) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        `the model repository has no ${COMPONENT[input.modality].component} component; build it with --imagebind`,
      );
    }
    const { feeds, shown } = await this.preprocess(input);
    const session = await this.sessions.get(input.modality);
    const out = await session.run(feeds, ['embedding']);
    return {
      modality: input.modality,
      embedding: out['embedding']!.data as Float32Array,
      preprocessed: shown,
    };
  }

  /** Encodes every input and fuses them: q = Σ w/(Σw + 1e-6) · l2n(e) (MODEL_SPEC §1.2, B2, B3). */
  async embed(inputs: readonly ModalityInput[]): Promise<{ encoded: EncodedInput[]; fused: Float32Array }> {
    if (inputs.length === 0) throw DomainError.invalidInput('at least one input is required', 'inputs');
    for (const i of inputs) {
      if (!(Number.isFinite(i.weight) && i.weight > 0))
        throw DomainError.invalidInput(
          `the ${i.modality} weight must be positive, got ${i.weight}`,
          'weight',
        );
    }
    const encoded: EncodedInput[] = [];
    for (const input of inputs) encoded.push(await this.encode(input));
    return {
      encoded,
      fused: fuseEmbeddings(
        encoded.map((e) => e.embedding),
        inputs.map((i) => i.weight),
      ),
    };
  }

  async close(): Promise<void> {
    const loaded = await Promise.allSettled(this.sessions.keys().map(async (m) => this.sessions.get(m)));
    for (const r of loaded) if (r.status === 'fulfilled') await r.value.release();
  }
}
