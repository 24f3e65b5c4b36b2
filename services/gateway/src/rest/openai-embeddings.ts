import { z } from '@imagebind-llm/config';
import { l2Normalize } from '@imagebind-llm/domain';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { float32Tensor } from '@imagebind-llm/grpc-kit';
import { commonV1, type gatewayV1 } from '@imagebind-llm/proto';
import { contentPartSchema, PartBudget, parseContentPart, type MediaPolicy } from './content-parts';
import { at, describeJson, invalidAt, oneOf, parseJson, perModel, servedModel } from './json-schema';

/** ImageBind's joint embedding space (the Tensor comment in gateway.proto). */
export const EMBEDDING_DIMENSIONS = 1024;

export type EncodingFormat = 'float' | 'base64';

export interface EmbeddingsParseOptions extends MediaPolicy {
  /** The one model id this deployment serves. */
  readonly modelId: string;
}

export interface ParsedEmbeddingsRequest {
  readonly request: gatewayV1.EmbedRequest;
  readonly encodingFormat: EncodingFormat;
  readonly model: string;
  /** Extension `imagebind_normalize`: return each input's vector at unit length (the fused query as is). */
  readonly normalize: boolean;
  /**
   * The REST path each of `request.inputs` came from, in order: errors the services report about
   * `inputs[i]` are told in these terms (toOpenAiError).
   */
  readonly inputPaths: readonly string[];
}

/** A TEXT input; token ids are refused: the text encoder's CLIP vocabulary is not OpenAI's. */
const inputText = z.string({
  error: ({ input }) =>
    `must be a string, got ${describeJson(input)}; token ids are not accepted (the text encoder has its own vocabulary), send the text`,
});

const embeddingsBodySchema = perModel((modelId: string) =>
  z.strictObject({
    model: servedModel(modelId),
    input: z
      .union([inputText, z.array(inputText)], {
        error: ({ input }) => `must be an array, got ${describeJson(input)}`,
      })
      .nullish(),
    imagebind_inputs: z.array(contentPartSchema).nullish(),
    imagebind_normalize: z.boolean().nullish(),
    encoding_format: oneOf(['float', 'base64'], '"float" or "base64"').nullish(),
    dimensions: z
      .literal(EMBEDDING_DIMENSIONS, {
        error: `ImageBind embeddings always have ${EMBEDDING_DIMENSIONS} dimensions; omit it or send ${EMBEDDING_DIMENSIONS}`,
      })
      .nullish(),
    user: z.unknown().optional(),
  }),
);

/**
 * Turns an OpenAI-compatible `POST /v1/embeddings` body into an Embed request.
 *
 * `input` (a string or an array of strings) holds TEXT inputs for ImageBind's text encoder; the
 * extension `imagebind_inputs` holds content parts exactly as in chat (image_url, input_audio,
 * video_url, input_point_cloud, text — every text part here is a TEXT input), each with an
 * optional `weight`. The inputs are embedded in that order: `input` first, then
 * `imagebind_inputs`, and `data[i].index` follows it. Token-id arrays are refused: the text
 * encoder's CLIP vocabulary is not OpenAI's, so ids from an OpenAI tokenizer would be wrong.
 */
export function parseEmbeddingsRequest(
  body: unknown,
  options: EmbeddingsParseOptions,
): ParsedEmbeddingsRequest {
  const parsed = parseJson(embeddingsBodySchema(options.modelId), body);
  const budget = new PartBudget(options.limits);
  const inputs: gatewayV1.MultimodalInput[] = [];
  const inputPaths: string[] = [];
  const texts = typeof parsed.input === 'string' ? [parsed.input] : (parsed.input ?? []);
  texts.forEach((text, i) => {
    const path = typeof parsed.input === 'string' ? 'input' : at('input', i);
    budget.countPart(path);
    budget.countInput(path, false);
    if (text.trim() === '') throw invalidAt(path, 'must not be empty');
    inputPaths.push(path);
    inputs.push({
      modality: commonV1.Modality.MODALITY_TEXT,
      source: { $case: 'text', value: text },
      mediaType: '',
    });
  });
  (parsed.imagebind_inputs ?? []).forEach((part, i) => {
    const path = at('imagebind_inputs', i);
    const read = parseContentPart(part, path, options, budget, true);
    // textIsModality makes every part an input; the branch only satisfies the type.
    if (read.kind === 'input') {
      inputs.push(read.input);
      inputPaths.push(path);
    }
  });
  if (inputs.length === 0) {
    throw invalidAt(
      'input',
      'nothing to embed; send input (a string or an array of strings) and/or imagebind_inputs (content parts)',
    );
  }
  return {
    request: { inputs, includeFused: inputs.length > 1 },
    encodingFormat: parsed.encoding_format ?? 'float',
    model: parsed.model,
    normalize: parsed.imagebind_normalize ?? false,
    inputPaths,
  };
}

/** One vector as OpenAI returns it: numbers, or the raw float32 little-endian bytes in base64. */
export type EmbeddingVector = number[] | string;

export interface EmbeddingsResponseBody {
  readonly object: 'list';
  readonly data: {
    readonly object: 'embedding';
    readonly index: number;
    readonly embedding: EmbeddingVector;
  }[];
  readonly model: string;
  /** The encoders report no token counts, so both are 0 (kept for clients that read them). */
  readonly usage: { readonly prompt_tokens: number; readonly total_tokens: number };
  /**
   * Extension: the weighted fusion q of all inputs (MODEL_SPEC §1.2, not re-normalised), present
   * when the request had more than one input.
   */
  readonly imagebind?: { readonly fused: EmbeddingVector };
}

function checkedFloat32(tensor: commonV1.Tensor | undefined, what: string): Buffer {
  if (tensor === undefined) {
    throw new DomainError(ErrorCode.Internal, `${what}: the encoder returned no tensor`);
  }
  if (tensor.dtype !== commonV1.DataType.DATA_TYPE_FLOAT32) {
    throw new DomainError(
      ErrorCode.Internal,
      `${what}: expected a float32 tensor, got ${commonV1.dataTypeToJSON(tensor.dtype)}`,
    );
  }
  const elements = tensor.shape.reduce((a, b) => a * b, 1);
  if (tensor.data.length !== elements * 4) {
    throw new DomainError(
      ErrorCode.Internal,
      `${what}: ${tensor.data.length} bytes do not match shape [${tensor.shape.join(', ')}] of float32`,
    );
  }
  return tensor.data;
}

/** Reads float32 little-endian bytes whatever the host byte order and buffer alignment. */
export function decodeFloat32Le(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array<number>(bytes.byteLength >>> 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

function toVector(
  tensor: commonV1.Tensor | undefined,
  what: string,
  format: EncodingFormat,
  normalize = false,
): EmbeddingVector {
  const raw = checkedFloat32(tensor, what);
  const bytes = normalize
    ? Buffer.from(float32Tensor(l2Normalize(decodeFloat32Le(raw)), [raw.byteLength >>> 2]).data)
    : raw;
  // OpenAI's base64 format is exactly the little-endian float32 bytes, which the tensor already holds.
  return format === 'base64' ? bytes.toString('base64') : decodeFloat32Le(bytes);
}

/**
 * Builds the `/v1/embeddings` response: one vector PER INPUT (`data[i]` for input i, as ImageBind
 * emits it: unit length times the modality's logit scale, e.g. text ≈ 14.3, audio 20, image 1; compare
 * inputs by cosine, or ask for unit vectors with `imagebind_normalize: true`), so clients can
 * compare any input with any other; when there was more than one input the fused query is added
 * as the extension field `imagebind.fused` (never re-normalised: it is what the model consumes).
 */
export function toEmbeddingsResponse(
  response: gatewayV1.EmbedResponse,
  options: { readonly model: string; readonly encodingFormat: EncodingFormat; readonly normalize?: boolean },
): EmbeddingsResponseBody {
  const data = response.embeddings.map((e, index) => ({
    object: 'embedding' as const,
    index,
    embedding: toVector(
      e.embedding,
      `embeddings[${index}]`,
      options.encodingFormat,
      options.normalize === true,
    ),
  }));
  const body: EmbeddingsResponseBody = {
    object: 'list',
    data,
    model: options.model,
    usage: { prompt_tokens: 0, total_tokens: 0 },
  };
  if (response.fused === undefined || response.embeddings.length < 2) return body;
  return { ...body, imagebind: { fused: toVector(response.fused, 'fused', options.encodingFormat) } };
}
