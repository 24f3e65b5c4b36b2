import {
  CACHE_LIMITS,
  CONTEXT_TOKENS,
  describeLimit,
  GENERATION_LIMITS,
  inLimit,
  type LimitRange,
} from '@imagebind-llm/domain';
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

/**
 * Length of an ImageBind embedding: every encoder's output, the fused query and the bind network's
 * input share this space (MODEL_SPEC §1.2, §4).
 */
export const EMBEDDING_DIM = 1024;

function invalid(field: string, message: string): DomainError {
  return new DomainError(ErrorCode.InvalidInput, `${field}: ${message}`, { field });
}

/** A set field outside its range (libs/domain generation.ts) is refused, naming the range. */
function checkRange(field: string, value: number | undefined, range: LimitRange, why = ''): void {
  if (value === undefined || inLimit(value, range)) return;
  throw invalid(field, `must be ${describeLimit(range)}${why}, got ${value}`);
}

/**
 * Checks the shape of an EmbedMany call: 1..`maxRequests` requests. Each request is checked on
 * its own later, as Embed checks it, so a bad one fails alone.
 */
export function validateEmbedManyRequest(request: gatewayV1.EmbedManyRequest, maxRequests: number): void {
  const count = request.requests.length;
  if (count === 0) throw invalid('requests', 'at least one Embed request is required');
  if (count > maxRequests) {
    throw invalid(
      'requests',
      `${count} requests exceed the limit of ${maxRequests} per EmbedMany call (GATEWAY_EMBED_MANY_MAX_REQUESTS); split the call`,
    );
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
    const source = input.source;
    if (source?.$case === 'embedding') {
      validatePrecomputed(input, source.value, at, inputs.length);
      return;
    }
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
    if (source === undefined) throw invalid(`${at}.source`, 'set one of content, uri, text or embedding');
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

/** A precomputed embedding input: any (or no) supported modality, a valid vector, and the fused rules. */
function validatePrecomputed(
  input: gatewayV1.MultimodalInput,
  embedding: gatewayV1.PrecomputedEmbedding,
  at: string,
  inputCount: number,
): void {
  // The modality only labels the vector (Embed echoes it); no encoder runs, so unset is fine.
  if (input.modality !== Modality.MODALITY_UNSPECIFIED && !SUPPORTED_MODALITIES.has(input.modality)) {
    throw invalid(
      `${at}.modality`,
      `${commonV1.modalityToJSON(input.modality)} is not accepted by ImageBind-LLM; leave it unset for an embedding or use IMAGE, VIDEO, AUDIO, TEXT or POINT_CLOUD`,
    );
  }
  if (input.weight !== undefined && !(Number.isFinite(input.weight) && input.weight > 0)) {
    throw invalid(`${at}.weight`, `must be a positive number (unset means 1), got ${input.weight}`);
  }
  readPrecomputedEmbedding(embedding, `${at}.embedding`);
  if (embedding.fused) {
    if (inputCount > 1) {
      throw invalid(
        `${at}.embedding.fused`,
        `a fused query is used as q itself, so it must be the only input (this request has ${inputCount}); ` +
          'send the per-input embeddings with their weights instead, or the fused query alone',
      );
    }
    if (input.weight !== undefined) {
      throw invalid(`${at}.weight`, 'a fused query already carries its weights; leave weight unset');
    }
  }
}

/**
 * The vector of a precomputed embedding, checked: float32, shape [1024] or [1, 1024], every value
 * finite. `field` is the embedding's path in the request (`inputs[2].embedding`).
 */
export function readPrecomputedEmbedding(
  embedding: gatewayV1.PrecomputedEmbedding,
  field: string,
): Float32Array {
  const path = `${field}.vector`;
  const tensor = embedding.vector;
  const expected = `a float32 tensor of shape [${EMBEDDING_DIM}], as Embed returns it`;
  if (tensor === undefined) throw invalid(path, `is required: ${expected}`);
  if (tensor.dtype !== commonV1.DataType.DATA_TYPE_FLOAT32) {
    throw invalid(`${path}.dtype`, `must be DATA_TYPE_FLOAT32, got ${commonV1.dataTypeToJSON(tensor.dtype)}`);
  }
  const shape = tensor.shape;
  const shapeOk =
    (shape.length === 1 && shape[0] === EMBEDDING_DIM) ||
    (shape.length === 2 && shape[0] === 1 && shape[1] === EMBEDDING_DIM);
  if (!shapeOk) {
    throw invalid(
      `${path}.shape`,
      `must be [${EMBEDDING_DIM}] (or [1, ${EMBEDDING_DIM}]): an ImageBind embedding has ${EMBEDDING_DIM} values; got [${shape.join(', ')}]`,
    );
  }
  if (tensor.data.byteLength !== EMBEDDING_DIM * 4) {
    throw invalid(
      `${path}.data`,
      `must hold ${EMBEDDING_DIM * 4} bytes (${EMBEDDING_DIM} little-endian float32 values), got ${tensor.data.byteLength}`,
    );
  }
  const view = new DataView(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const values = new Float32Array(EMBEDDING_DIM);
  let squares = 0;
  for (let i = 0; i < EMBEDDING_DIM; i++) {
    const value = view.getFloat32(i * 4, true);
    if (!Number.isFinite(value)) {
      throw invalid(`${path}.data`, `value ${i} is ${value}; every value must be a finite number`);
    }
    values[i] = value;
    squares += value * value;
  }
  // An all-zero vector has no direction: L2 normalisation would send zeros through the model.
  if (squares === 0) throw invalid(`${path}.data`, 'is all zeros; send the embedding Embed returned');
  return values;
}

/** Checks the cache knobs against the official slider ranges (MODEL_SPEC §1.3). */
export function validateCache(cache: gatewayV1.CacheOptions | undefined, field = 'cache'): void {
  if (cache === undefined) return;
  checkRange(`${field}.size`, cache.size, CACHE_LIMITS.size);
  checkRange(`${field}.temperature`, cache.temperature, CACHE_LIMITS.temperature);
  checkRange(`${field}.weight`, cache.weight, CACHE_LIMITS.weight);
}

/** Checks a Generate request completely before any work starts. */
export function validateGenerateRequest(request: gatewayV1.GenerateRequest, limits: RequestLimits): void {
  validateInputs(request.inputs, limits);
  if (request.instruction.trim() === '') {
    throw invalid('instruction', 'must not be empty: it is the question the model answers');
  }
  validateCache(request.cache);
  checkRange('sampling.temperature', request.sampling?.temperature, GENERATION_LIMITS.temperature);
  checkRange('sampling.top_p', request.sampling?.topP, GENERATION_LIMITS.topP);
  checkRange('sampling.seed', request.sampling?.seed, GENERATION_LIMITS.seed);
  checkRange(
    'stopping.max_new_tokens',
    request.stopping?.maxNewTokens,
    GENERATION_LIMITS.maxNewTokens,
    ` (the context is ${CONTEXT_TOKENS} positions)`,
  );
}
