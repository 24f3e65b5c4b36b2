import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import type { gatewayV1 } from '@imagebind-llm/proto';
import { quoted } from './json-schema';

export interface ModelListOptions {
  /** The id clients send as `model` (the one chat and embeddings accept). */
  readonly modelId: string;
  /** Unix seconds to report as `created`, e.g. when the model repository was built or loaded. */
  readonly created: number;
  /** `owned_by`; defaults to the platform's name. */
  readonly ownedBy?: string;
}

/** One served component (decoder, encoders, bind network) as reported by ListModels. */
export interface ModelComponent {
  readonly name: string;
  readonly version: string;
  readonly ready: boolean;
}

export interface OpenAiModel {
  readonly id: string;
  readonly object: 'model';
  readonly created: number;
  readonly owned_by: string;
  /** Extension: readiness of the whole pipeline and of each component behind it. */
  readonly imagebind: { readonly ready: boolean; readonly components: readonly ModelComponent[] };
}

export interface OpenAiModelList {
  readonly object: 'list';
  readonly data: readonly OpenAiModel[];
}

/**
 * The one OpenAI "model" this deployment offers. ListModels reports the pipeline's components
 * (imagebind-vision, bind, llama-decoder, ...), but a client can only ask for the pipeline as a
 * whole, so they are listed under the extension key, and the model is ready only when every
 * component is (and there is at least one).
 */
export function toOpenAiModel(
  response: gatewayV1.ListModelsResponse,
  options: ModelListOptions,
): OpenAiModel {
  const components = response.models.map((m) => ({ name: m.name, version: m.version, ready: m.ready }));
  return {
    id: options.modelId,
    object: 'model',
    created: options.created,
    owned_by: options.ownedBy ?? 'imagebind-llm',
    imagebind: { ready: components.length > 0 && components.every((c) => c.ready), components },
  };
}

/** `GET /v1/models` body. */
export function toOpenAiModelList(
  response: gatewayV1.ListModelsResponse,
  options: ModelListOptions,
): OpenAiModelList {
  return { object: 'list', data: [toOpenAiModel(response, options)] };
}

/** `GET /v1/models/{id}` body; NOT_FOUND naming the served id for any other id. */
export function getOpenAiModel(
  id: string,
  response: gatewayV1.ListModelsResponse,
  options: ModelListOptions,
): OpenAiModel {
  if (id !== options.modelId) {
    throw new DomainError(
      ErrorCode.NotFound,
      `model ${quoted(id)} is not served here; this deployment serves "${options.modelId}"`,
      { field: 'model' },
    );
  }
  return toOpenAiModel(response, options);
}
