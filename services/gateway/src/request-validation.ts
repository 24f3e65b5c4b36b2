import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { commonV1, gatewayV1 } from '@imagebind-llm/proto';

const { Modality } = commonV1;

/** Limits a request is checked against; from the gateway's env schema. */
export interface RequestLimits {
  readonly maxInputs: number;
  readonly maxInputBytes: number;
}

/** Modalities the ImageBind-LLM pipeline accepts (MODEL_SPEC §1.1: depth, thermal and IMU have no loaders). */
const SUPPORTED_MODALITIES: ReadonlySet<commonV1.Modality> = new Set([
  Modality.MODALITY_IMAGE,
  Modality.MODALITY_VIDEO,
  Modality.MODALITY_AUDIO,
  Modality.MODALITY_TEXT,
  Modality.MODALITY_POINT_CLOUD,
]);

function invalid(field: string, message: string): DomainError {
  return new DomainError(ErrorCode.InvalidInput, `${field}: ${message}`, { field });
}

function checkRange(field: string, value: number | undefined, min: number, max: number, what: string): void {
  if (value === undefined) return;
  if (!Number.isFinite(value) || value < min || value > max) {
    throw invalid(field, `must be ${what} in [${min}, ${max}], got ${value}`);
  }
}

/** Checks the weighted inputs shared by Generate, Embed and Search. */
export function validateInputs(inputs: readonly gatewayV1.MultimodalInput[], limits: RequestLimits): void {
  if (inputs.length === 0) {
    throw invalid('inputs', 'at least one input is required (image, video, audio, text or point cloud)');
  }
  if (inputs.length > limits.maxInputs) {
    throw new DomainError(
      ErrorCode.PayloadTooLarge,
      `inputs: ${inputs.length} inputs exceed the limit of ${limits.maxInputs} per request; split the request`,
      { field: 'inputs' },
    );
  }
  inputs.forEach((input, i) => {
    const at = `inputs[${i}]`;
    if (!SUPPORTED_MODALITIES.has(input.modality)) {
      const name = commonV1.modalityToJSON(input.modality);
      throw invalid(
        `${at}.modality`,
        input.modality === Modality.MODALITY_UNSPECIFIED
          ? 'must be set to IMAGE, VIDEO, AUDIO, TEXT or POINT_CLOUD'
          : `${name} is not accepted by ImageBind-LLM; use IMAGE, VIDEO, AUDIO, TEXT or POINT_CLOUD`,
      );
    }
    // MODEL_SPEC §1.3: a selected modality with weight 0 is rejected, as in the official demo.
    if (input.weight !== undefined && !(Number.isFinite(input.weight) && input.weight > 0)) {
      throw invalid(`${at}.weight`, `must be a positive number (unset means 1), got ${input.weight}`);
    }
    const source = input.source;
    if (source === undefined) throw invalid(`${at}.source`, 'set one of content, uri or text');
    if (input.modality === Modality.MODALITY_TEXT) {
      if (source.$case !== 'text')
        throw invalid(`${at}.text`, 'a TEXT input carries its text in the text field');
      if (source.value.trim() === '') throw invalid(`${at}.text`, 'must not be empty');
    } else if (source.$case === 'text') {
      throw invalid(`${at}.text`, 'only TEXT inputs may use the text field; send media as content or uri');
    } else if (source.$case === 'content') {
      if (source.value.length === 0) throw invalid(`${at}.content`, 'is empty (0 bytes)');
      if (source.value.length > limits.maxInputBytes) {
        throw new DomainError(
          ErrorCode.PayloadTooLarge,
          `${at}.content: ${source.value.length} bytes exceed the per-input limit of ${limits.maxInputBytes}`,
          { field: `${at}.content` },
        );
      }
    } else if (source.value.trim() === '') {
      throw invalid(`${at}.uri`, 'must not be empty');
    }
  });
}

/** Checks the cache knobs against the official slider ranges (MODEL_SPEC §1.3). */
export function validateCache(cache: gatewayV1.CacheOptions | undefined, field = 'cache'): void {
  if (cache === undefined) return;
  if (cache.size !== undefined && (cache.size < 1 || cache.size > 100)) {
    throw invalid(`${field}.size`, `must be an integer in [1, 100], got ${cache.size}`);
  }
  checkRange(`${field}.temperature`, cache.temperature, 0, 100, 'a number');
  checkRange(`${field}.weight`, cache.weight, 0, 1, 'a number');
}

/** Checks a Generate request completely before any work starts. */
export function validateGenerateRequest(request: gatewayV1.GenerateRequest, limits: RequestLimits): void {
  validateInputs(request.inputs, limits);
  if (request.instruction.trim() === '') {
    throw invalid('instruction', 'must not be empty: it is the question the model answers');
  }
  validateCache(request.cache);
  checkRange('sampling.temperature', request.sampling?.temperature, 0, 10, 'a number');
  checkRange('sampling.top_p', request.sampling?.topP, 0, 1, 'a number');
  const maxNew = request.stopping?.maxNewTokens;
  if (maxNew !== undefined && (maxNew < 1 || maxNew > 512)) {
    throw invalid(
      'stopping.max_new_tokens',
      `must be in [1, 512] (the context is 512 positions), got ${maxNew}`,
    );
  }
}
