import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  float32Tensor,
  readFloat32Tensor,
  type CallContext,
  type ServiceHandlers,
} from '@imagebind-llm/grpc-kit';
import { ENCODER_COMPONENTS, type InputModality } from '@imagebind-llm/inference';
import { commonV1, type encoderV1 } from '@imagebind-llm/proto';
import type { BatchingMetrics } from './batching-metrics';
import type { EncoderItem, EncoderModelInfo, EncoderRuntime } from './encoder-runtime';
import { PROTO_MODALITY, ROUTE } from '../platform/embed-inputs';
import { inputFileName } from './media-hint';
import type { ModelSlot, ModelSlotState } from './model-slot';

/** Per-request limits of EncoderService (env ENCODER_MAX_INPUTS, ENCODER_MAX_INPUT_BYTES). */
export interface EncoderLimits {
  /** Most inputs in one Encode request. */
  readonly maxInputs: number;
  /** Largest single input: content bytes, UTF-8 text, or preprocessed tensor bytes. */
  readonly maxInputBytes: number;
}

export const DEFAULT_ENCODER_LIMITS: EncoderLimits = { maxInputs: 64, maxInputBytes: 32 * 1024 * 1024 };

export interface EncoderServiceOptions {
  /** The modalities this replica serves; any other is refused with INVALID_ARGUMENT naming these. */
  readonly modalities: readonly InputModality[];
  readonly limits?: EncoderLimits;
  readonly metrics?: BatchingMetrics;
}

const STATE: Readonly<Record<ModelSlotState, commonV1.ModelState>> = {
  loading: commonV1.ModelState.MODEL_STATE_LOADING,
  ready: commonV1.ModelState.MODEL_STATE_READY,
  failed: commonV1.ModelState.MODEL_STATE_FAILED,
  // A closing replica is still loaded; readiness (NOT_SERVING) tells callers to go elsewhere.
  closed: commonV1.ModelState.MODEL_STATE_READY,
};

/** The metrics label of a modality's model (matches EncoderModelInfo.label). */
function labelOf(modality: InputModality): string {
  return `${ENCODER_COMPONENTS[modality].component}:${modality}`;
}

/**
 * EncoderService (proto/imagebind/encoder/v1) over an EncoderRuntime: request validation, the
 * mapping between the contract and the runtime, and per-request metrics. Hosted by the four
 * encoder services and, in process, by standalone mode.
 */
export class EncoderServiceImpl {
  private readonly limits: EncoderLimits;
  private readonly served: string;

  constructor(
    private readonly slot: ModelSlot<EncoderRuntime>,
    private readonly options: EncoderServiceOptions,
  ) {
    if (options.modalities.length === 0)
      throw new RangeError('an encoder service serves at least one modality');
    this.limits = options.limits ?? DEFAULT_ENCODER_LIMITS;
    this.served = options.modalities.map((m) => commonV1.modalityToJSON(PROTO_MODALITY[m])).join(', ');
  }

  handlers(): ServiceHandlers<typeof encoderV1.EncoderServiceService> {
    return {
      encode: (request, ctx) => this.encode(request, ctx),
      getModelStatus: () => this.getModelStatus(),
    };
  }

  async encode(
    request: encoderV1.EncodeRequest,
    ctx?: Pick<CallContext, 'signal' | 'deadline'>,
  ): Promise<encoderV1.EncodeResponse> {
    let label = 'unknown';
    try {
      const modality = this.modalityOf(request.modality);
      label = labelOf(modality);
      const component = ENCODER_COMPONENTS[modality].component;
      const wanted = request.model ?? { name: '', version: '' };
      if (wanted.name !== '' && wanted.name !== component) {
        throw new DomainError(
          ErrorCode.NotFound,
          `model.name: this replica encodes ${modality} with ${component}, not ${wanted.name}; leave it empty for the default`,
          { field: 'model.name' },
        );
      }
      const items = this.itemsOf(request, modality);
      const runtime = this.slot.get();
      const info = runtime.modelInfo().find((m) => m.modality === modality);
      if (info === undefined)
        throw new DomainError(ErrorCode.Internal, `the runtime has no ${modality} model`);
      if (wanted.version !== '' && wanted.version !== info.version) {
        throw new DomainError(
          ErrorCode.NotFound,
          `model.version: ${component} version ${wanted.version} is not loaded here (loaded: ${info.version})`,
          { field: 'model.version' },
        );
      }
      const encoded = await runtime.encode(modality, items, {
        ...(ctx === undefined ? {} : { signal: ctx.signal, deadline: ctx.deadline }),
        keepPreprocessed: request.includePreprocessed,
      });
      const response: encoderV1.EncodeResponse = {
        embeddings: encoded.map((e) => ({
          embedding: float32Tensor(e.embedding, [e.embedding.length]),
          unnormalized: request.includeUnnormalized
            ? float32Tensor(e.unnormalized, [e.unnormalized.length])
            : undefined,
          preprocessed:
            e.preprocessed === undefined
              ? undefined
              : float32Tensor(e.preprocessed.data, e.preprocessed.shape),
        })),
        model: { name: info.component, version: info.version },
      };
      this.options.metrics?.request(label);
      return response;
    } catch (error) {
      this.options.metrics?.request(label, error);
      throw error;
    }
  }

  // Async for the handler signature; the answer is always at hand.
  // eslint-disable-next-line @typescript-eslint/require-await
  async getModelStatus(): Promise<encoderV1.GetModelStatusResponse> {
    const state = this.slot.state;
    const loaded = this.slot.current?.modelInfo() ?? [];
    const components = [...new Set(this.options.modalities.map((m) => ENCODER_COMPONENTS[m].component))];
    return {
      models: components.map((component): commonV1.ModelStatus => {
        const info: EncoderModelInfo | undefined = loaded.find((m) => m.component === component);
        return {
          model: { name: component, version: info?.version ?? '' },
          state:
            info === undefined && state !== 'failed' ? commonV1.ModelState.MODEL_STATE_LOADING : STATE[state],
          executionProvider: info?.executionProvider ?? '',
          sourceSha256: info?.sourceSha256 ?? '',
          message: state === 'failed' ? (this.slot.failureMessage ?? 'failed') : '',
        };
      }),
    };
  }

  private modalityOf(value: commonV1.Modality): InputModality {
    const modality = ROUTE.get(value);
    if (value === commonV1.Modality.MODALITY_UNSPECIFIED) {
      throw DomainError.invalidInput(`modality: set it; this replica encodes ${this.served}`, 'modality');
    }
    if (modality === undefined || !this.options.modalities.includes(modality)) {
      throw DomainError.invalidInput(
        `modality: this replica encodes ${this.served}, not ${commonV1.modalityToJSON(value)}; ` +
          'send it to the encoder that serves it',
        'modality',
      );
    }
    return modality;
  }

  private itemsOf(request: encoderV1.EncodeRequest, modality: InputModality): EncoderItem[] {
    const { inputs } = request;
    if (inputs.length === 0)
      throw DomainError.invalidInput('inputs: at least one input is required', 'inputs');
    if (inputs.length > this.limits.maxInputs) {
      throw new DomainError(
        ErrorCode.PayloadTooLarge,
        `inputs: at most ${this.limits.maxInputs} per request, got ${inputs.length}; split the request`,
        { field: 'inputs', limit: this.limits.maxInputs },
      );
    }
    return inputs.map((input, i) => this.itemOf(input, i, modality));
  }

  private itemOf(input: encoderV1.EncoderInput, index: number, modality: InputModality): EncoderItem {
    const at = `inputs[${index}]`;
    const source = input.source;
    if (source === undefined) {
      const want = modality === 'text' ? 'text' : 'content';
      throw DomainError.invalidInput(`${at}: set ${want} or preprocessed`, at);
    }
    switch (source.$case) {
      case 'content': {
        if (modality === 'text') {
          throw DomainError.invalidInput(`${at}.content: text inputs go in the text field`, `${at}.content`);
        }
        if (source.value.length === 0) {
          throw DomainError.invalidInput(
            `${at}.content: the ${modality} input is empty (0 bytes)`,
            `${at}.content`,
          );
        }
        this.checkSize(source.value.length, `${at}.content`);
        const fileName = inputFileName(modality, input.mediaType, source.value);
        return fileName === undefined ? { bytes: source.value } : { bytes: source.value, fileName };
      }
      case 'text': {
        if (modality !== 'text') {
          throw DomainError.invalidInput(
            `${at}.text: text is for MODALITY_TEXT; send the ${modality} file in content`,
            `${at}.text`,
          );
        }
        this.checkSize(Buffer.byteLength(source.value, 'utf8'), `${at}.text`);
        if (source.value.trim() === '')
          throw DomainError.invalidInput(`${at}.text: the text is empty`, `${at}.text`);
        return { text: source.value };
      }
      case 'preprocessed': {
        this.checkSize(source.value.data.length, `${at}.preprocessed`);
        const { data, shape } = readFloat32Tensor(source.value, `${at}.preprocessed`);
        return { preprocessed: { data, shape } };
      }
    }
  }

  private checkSize(bytes: number, field: string): void {
    if (bytes > this.limits.maxInputBytes) {
      throw new DomainError(
        ErrorCode.PayloadTooLarge,
        `${field}: ${bytes} bytes is over the ${this.limits.maxInputBytes}-byte limit per input`,
        { field, limit: this.limits.maxInputBytes },
      );
    }
  }
}
