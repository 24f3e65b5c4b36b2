import { z } from '@imagebind-llm/config';
import { float32Tensor } from '@imagebind-llm/grpc-kit';
import { checkSource } from '@imagebind-llm/media-source';
import { commonV1, type gatewayV1 } from '@imagebind-llm/proto';
import {
  at,
  describeJson,
  invalidAt,
  oneOf,
  parseJson,
  quoted,
  required,
  tooLargeAt,
  weightSchema,
} from './json-schema';

const { Modality } = commonV1;

/** Size limits of one REST request; the gateway's env schema supplies them. */
export interface RestLimits {
  /** Most content parts in one request, counted over every message (text parts included). */
  readonly maxParts: number;
  /** Largest decoded inline part (base64 payload) in bytes. */
  readonly maxPartBytes: number;
  /**
   * Largest request body in bytes. The HTTP body parser enforces it on the raw JSON (see
   * {@link checkBodySize}); the parsers also hold the decoded inline bytes of a request under it.
   */
  readonly maxBodyBytes: number;
}

/** How media parts are vetted: size limits and the hosts https:// URLs may point at. */
export interface MediaPolicy {
  readonly limits: RestLimits;
  /** Hosts (`example.com`, `*.example.com`) https:// media URLs may name; empty disables URLs. */
  readonly allowedHosts: readonly string[];
}

/**
 * Rejects a body larger than the limit before it is parsed. Call it with the Content-Length (or
 * the bytes read so far) from the HTTP layer; `undefined` (chunked, unknown yet) passes.
 */
export function checkBodySize(byteLength: number | undefined, limits: RestLimits): void {
  if (byteLength !== undefined && byteLength > limits.maxBodyBytes) {
    throw tooLargeAt(
      '',
      `${byteLength} bytes exceed the limit of ${limits.maxBodyBytes}; send large media as an https:// URL on the allow-list or split the request`,
    );
  }
}

/** Counts parts and decoded bytes over one request so the per-request limits hold in total. */
export class PartBudget {
  private parts = 0;
  private bytes = 0;
  private inputs = 0;
  private fusedAt: string | undefined;

  constructor(private readonly limits: RestLimits) {}

  countPart(path: string): void {
    this.parts += 1;
    if (this.parts > this.limits.maxParts) {
      throw tooLargeAt(
        path,
        `more than ${this.limits.maxParts} content parts in one request; split it into several requests`,
      );
    }
  }

  /**
   * Counts one ImageBind input at `path`. A fused query (`input_embedding.fused: true`) is used as
   * q itself, so it must be the request's only input; the error names the fused part.
   */
  countInput(path: string, fused: boolean): void {
    this.inputs += 1;
    if (fused) this.fusedAt = path;
    if (this.fusedAt !== undefined && this.inputs > 1) {
      throw invalidAt(
        at(at(this.fusedAt, 'input_embedding'), 'fused'),
        `a fused query is used as it is, so it must be the only input, but ${fused ? 'an earlier part' : path} is another one; ` +
          'send the per-input embeddings with their weights instead, or the fused query alone',
      );
    }
  }

  addBytes(count: number, path: string): void {
    this.bytes += count;
    if (this.bytes > this.limits.maxBodyBytes) {
      throw tooLargeAt(
        path,
        `the inline media of this request add up to more than ${this.limits.maxBodyBytes} bytes; send some as https:// URLs or split the request`,
      );
    }
  }
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * Decodes standard or URL-safe base64, strictly: Buffer.from silently skips characters it does
 * not know, which would turn a corrupted upload into a confusing media error far downstream.
 * The decoded size is checked from the length before anything is allocated.
 */
export function decodeBase64(value: string, path: string, maxBytes: number): Buffer {
  const text = /\s/.test(value) ? value.replace(/\s+/g, '') : value;
  if (text === '') throw invalidAt(path, 'is empty; send the file bytes base64-encoded');
  const unpadded = text.replace(/=+$/, '');
  if (!BASE64.test(text) || unpadded.length % 4 === 1) {
    throw invalidAt(path, 'is not valid base64; encode the raw file bytes with standard base64');
  }
  const decodedLength = Math.floor((unpadded.length * 3) / 4);
  if (decodedLength > maxBytes) {
    throw tooLargeAt(
      path,
      `${decodedLength} decoded bytes exceed the per-part limit of ${maxBytes}; shrink the file or send it as an https:// URL on the allow-list`,
    );
  }
  return Buffer.from(text, 'base64');
}

/** A `data:<type>/<subtype>[;param]*;base64,<payload>` URL split into media type and payload. */
function parseDataUrl(
  url: string,
  path: string,
  kind: 'image' | 'video',
): { mediaType: string; base64: string } {
  const comma = url.indexOf(',');
  const example = kind === 'image' ? 'data:image/png;base64,...' : 'data:video/mp4;base64,...';
  if (comma < 0) throw invalidAt(path, `is not a valid data: URL; expected ${example}`);
  const params = url.slice('data:'.length, comma).split(';');
  const mediaType = (params[0] ?? '').trim().toLowerCase();
  if (params.length < 2 || params[params.length - 1]?.trim().toLowerCase() !== 'base64') {
    throw invalidAt(path, `data: URLs must be base64-encoded; expected ${example}`);
  }
  if (!/^[a-z]+\/[a-z0-9.+-]+$/.test(mediaType) || !mediaType.startsWith(`${kind}/`)) {
    throw invalidAt(
      path,
      `the data: URL's media type must be ${kind}/*, got ${mediaType === '' ? '(none)' : mediaType}; expected ${example}`,
    );
  }
  return { mediaType, base64: url.slice(comma + 1) };
}

function input(
  modality: commonV1.Modality,
  source: NonNullable<gatewayV1.MultimodalInput['source']>,
  mediaType: string,
  weight: number | undefined,
): gatewayV1.MultimodalInput {
  // Unset weight means 1 in the contract; leave it unset rather than writing the default.
  return weight === undefined ? { modality, source, mediaType } : { modality, weight, source, mediaType };
}

export const PART_TYPES = [
  'text',
  'image_url',
  'input_audio',
  'video_url',
  'input_point_cloud',
  'input_embedding',
] as const;

/** Audio containers the gateway's ffmpeg-backed decoder reads, with the media type each implies. */
export const AUDIO_FORMATS: Readonly<Record<string, string>> = {
  wav: 'audio/wav',
  mp3: 'audio/mpeg',
  flac: 'audio/flac',
  ogg: 'audio/ogg',
  opus: 'audio/opus',
  m4a: 'audio/mp4',
  aac: 'audio/aac',
  webm: 'audio/webm',
};

/**
 * Point-cloud formats the point preprocessor reads, chosen by file extension there, so the hint
 * passed on is a file name. `txt` is an alias of `xyz`: one point per line, x y z first.
 */
export const POINT_CLOUD_FORMATS: Readonly<Record<string, string>> = {
  npy: 'npy',
  ply: 'ply',
  pcd: 'pcd',
  pt: 'pt',
  obj: 'obj',
  xyz: 'xyz',
  pts: 'pts',
  txt: 'xyz',
};

/** ImageBind's embedding length (gateway.proto PrecomputedEmbedding). */
const EMBEDDING_VALUES = 1024;

/** base64 `data` plus a `format` naming the container (checked against `formats` when read). */
const inlineMedia = (formats: Readonly<Record<string, string>>) =>
  z.strictObject({
    data: z.string(required('the file bytes, base64-encoded')),
    format: z.string(required(`one of ${Object.keys(formats).join(', ')}`)),
  });

/**
 * The shape of an OpenAI-style content part with ImageBind's extensions; what the values mean (and
 * whether they decode) is checked when the part is read (parseContentPart).
 */
export const contentPartSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({
      type: z.literal('text'),
      text: z.string(required('the text of this part')),
      imagebind_modality: z.boolean().nullish(),
      // Checked once the part is known to be an input: instruction text takes no weight at all.
      weight: z.unknown().optional(),
    }),
    z.strictObject({
      type: z.literal('image_url'),
      image_url: z.strictObject({
        url: z.string(required('a data:image/...;base64, URL or an https:// URL')),
        // ImageBind always sees a 224 px crop (MODEL_SPEC §2.1), so OpenAI's detail hint changes nothing.
        detail: oneOf(['auto', 'low', 'high'], 'auto, low or high').nullish(),
      }),
      weight: weightSchema,
    }),
    z.strictObject({
      type: z.literal('video_url'),
      video_url: z.strictObject({
        url: z.string(required('a data:video/...;base64, URL or an https:// URL')),
      }),
      weight: weightSchema,
    }),
    z.strictObject({
      type: z.literal('input_audio'),
      input_audio: inlineMedia(AUDIO_FORMATS),
      weight: weightSchema,
    }),
    z.strictObject({
      type: z.literal('input_point_cloud'),
      input_point_cloud: inlineMedia(POINT_CLOUD_FORMATS),
      weight: weightSchema,
    }),
    z.strictObject({
      type: z.literal('input_embedding'),
      // The vector (numbers, or float32 bytes in base64) is checked value by value: embeddingVector.
      input_embedding: z.strictObject({ embedding: z.unknown().optional(), fused: z.boolean().nullish() }),
      weight: weightSchema,
    }),
  ],
  {
    error: (issue) => {
      if (issue.code !== 'invalid_union') return undefined;
      const type = (issue.input as { type?: unknown }).type;
      return typeof type === 'string'
        ? `content part type ${quoted(type)} is not supported; use one of ${PART_TYPES.join(', ')}`
        : `is required and must be one of ${PART_TYPES.join(', ')}; got ${describeJson(type)}`;
    },
  },
);

export type ContentPart = z.output<typeof contentPartSchema>;
type PartOf<T extends ContentPart['type']> = Extract<ContentPart, { type: T }>;

/** What reading one request's parts shares: the media policy and the request's running totals. */
interface Reading {
  readonly policy: MediaPolicy;
  readonly budget: PartBudget;
}

/** image_url / video_url: a base64 data: URL (decoded here) or an allow-listed https:// URL. */
function urlInput(
  url: string,
  kind: 'image' | 'video',
  weight: number | undefined,
  urlPath: string,
  { policy, budget }: Reading,
): gatewayV1.MultimodalInput {
  const modality = kind === 'image' ? Modality.MODALITY_IMAGE : Modality.MODALITY_VIDEO;
  if (url.slice(0, 5).toLowerCase() === 'data:') {
    const { mediaType, base64 } = parseDataUrl(url, urlPath, kind);
    const bytes = decodeBase64(base64, urlPath, policy.limits.maxPartBytes);
    budget.addBytes(bytes.length, urlPath);
    return input(modality, { $case: 'content', value: bytes }, mediaType, weight);
  }
  // The one URL policy of the platform (libs/media-source); no file root or object store here, so
  // anything but an allow-listed https URL is refused.
  const source = checkSource(
    url,
    { allowedHosts: policy.allowedHosts, maxBytes: policy.limits.maxPartBytes, timeoutMs: 10_000 },
    urlPath,
  );
  if (source.kind !== 'https')
    throw invalidAt(urlPath, 'must be an https:// URL on the allow-list or a data: URL');
  return input(modality, { $case: 'uri', value: source.url }, '', weight);
}

/** input_audio / input_point_cloud: base64 `data` in one of `formats`. */
function inlineInput(
  media: { readonly data: string; readonly format: string },
  kind: 'audio' | 'point_cloud',
  weight: number | undefined,
  path: string,
  { policy, budget }: Reading,
): gatewayV1.MultimodalInput {
  const formats = kind === 'audio' ? AUDIO_FORMATS : POINT_CLOUD_FORMATS;
  const format = media.format.toLowerCase();
  const hint = Object.hasOwn(formats, format) ? formats[format] : undefined;
  if (hint === undefined) {
    const names = Object.keys(formats).join(', ');
    throw invalidAt(at(path, 'format'), `${quoted(format)} is not supported; use one of ${names}`);
  }
  const dataPath = at(path, 'data');
  if (media.data.slice(0, 5).toLowerCase() === 'data:') {
    throw invalidAt(dataPath, 'send the bare base64 payload, without a data: URL prefix');
  }
  const bytes = decodeBase64(media.data, dataPath, policy.limits.maxPartBytes);
  budget.addBytes(bytes.length, dataPath);
  const source = { $case: 'content', value: bytes } as const;
  return kind === 'audio'
    ? input(Modality.MODALITY_AUDIO, source, hint, weight)
    : input(Modality.MODALITY_POINT_CLOUD, source, `point_cloud.${hint}`, weight);
}

/**
 * The vector of an input_embedding part: 1024 JSON numbers, or their little-endian float32 bytes in
 * base64 (what `/v1/embeddings` returns for `encoding_format: "base64"`). Every value must be finite
 * in float32, and not all zero.
 */
function embeddingVector(value: unknown, path: string, maxBytes: number): Float32Array {
  const values = new Float32Array(EMBEDDING_VALUES);
  if (typeof value === 'string') {
    const bytes = decodeBase64(value, path, maxBytes);
    if (bytes.length !== EMBEDDING_VALUES * 4) {
      throw invalidAt(
        path,
        `must decode to ${EMBEDDING_VALUES * 4} bytes (${EMBEDDING_VALUES} little-endian float32 values, as encoding_format "base64" returns them), got ${bytes.length}`,
      );
    }
    for (let i = 0; i < EMBEDDING_VALUES; i++) {
      const v = bytes.readFloatLE(i * 4);
      if (!Number.isFinite(v)) throw invalidAt(at(path, i), `is ${v}; every value must be a finite number`);
      values[i] = v;
    }
  } else if (Array.isArray(value)) {
    const list: readonly unknown[] = value;
    if (list.length !== EMBEDDING_VALUES) {
      throw invalidAt(
        path,
        `must hold ${EMBEDDING_VALUES} numbers (an ImageBind embedding as /v1/embeddings returns it), got ${list.length}`,
      );
    }
    list.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        const got = typeof v === 'number' ? String(v) : describeJson(v);
        throw invalidAt(at(path, i), `must be a finite number, got ${got}`);
      }
      // A JSON number past float32's range (e.g. 1e39) would become Infinity on the way in.
      if (!Number.isFinite(Math.fround(v))) throw invalidAt(at(path, i), `${v} is outside the float32 range`);
      values[i] = v;
    });
  } else {
    throw invalidAt(
      path,
      `must be an array of ${EMBEDDING_VALUES} numbers or their float32 bytes in base64, got ${describeJson(value)}`,
    );
  }
  if (values.every((v) => v === 0)) {
    throw invalidAt(path, 'is all zeros; send the embedding /v1/embeddings returned');
  }
  return values;
}

/**
 * input_embedding: a precomputed ImageBind embedding instead of media (embed once, ask many
 * questions). Without `fused` it is one input's embedding, mixed with the others by `weight`;
 * with `fused: true` it is the fused query q (`imagebind.fused` of /v1/embeddings), used as is.
 */
function embeddingInput(
  part: PartOf<'input_embedding'>,
  path: string,
  policy: MediaPolicy,
): gatewayV1.MultimodalInput {
  const innerPath = at(path, 'input_embedding');
  const { embedding, fused = false } = part.input_embedding;
  const weight = part.weight ?? undefined;
  if (fused === true && weight !== undefined) {
    throw invalidAt(at(path, 'weight'), 'a fused query already carries its weights; drop weight');
  }
  if (embedding === undefined || embedding === null) {
    throw invalidAt(
      at(innerPath, 'embedding'),
      `is required: the ${EMBEDDING_VALUES} values of an ImageBind embedding (numbers, or float32 bytes in base64)`,
    );
  }
  const vector = embeddingVector(embedding, at(innerPath, 'embedding'), policy.limits.maxPartBytes);
  return input(
    Modality.MODALITY_UNSPECIFIED,
    {
      $case: 'embedding',
      value: { vector: float32Tensor(vector, [EMBEDDING_VALUES]), fused: fused === true },
    },
    '',
    weight,
  );
}

/**
 * A text part is instruction text unless it carries `imagebind_modality: true`: then it is a TEXT
 * modality input, embedded by ImageBind's text encoder and mixed with the other inputs by its
 * `weight`, exactly like an image would be. Where there is no instruction (embeddings, search),
 * `textIsModality` makes every text part such an input.
 */
function textPart(part: PartOf<'text'>, path: string, textIsModality: boolean): ParsedPart {
  if (textIsModality && part.imagebind_modality === false) {
    throw invalidAt(
      at(path, 'imagebind_modality'),
      'every text part here is an ImageBind TEXT input; drop the flag or set it to true',
    );
  }
  if (textIsModality || part.imagebind_modality === true) {
    const weight = parseJson(weightSchema, part.weight, at(path, 'weight')) ?? undefined;
    if (part.text.trim() === '') throw invalidAt(at(path, 'text'), 'must not be empty for a TEXT input');
    return {
      kind: 'input',
      input: input(Modality.MODALITY_TEXT, { $case: 'text', value: part.text }, '', weight),
    };
  }
  if (part.weight !== undefined && part.weight !== null) {
    throw invalidAt(
      at(path, 'weight'),
      'only inputs carry a weight; set imagebind_modality: true to embed this text as an ImageBind TEXT input',
    );
  }
  return { kind: 'instruction', text: part.text };
}

/** One content part: instruction text for the language model, or an input for ImageBind. */
export type ParsedPart =
  | { readonly kind: 'instruction'; readonly text: string }
  | { readonly kind: 'input'; readonly input: gatewayV1.MultimodalInput };

/**
 * Reads one content part (already checked against contentPartSchema): decodes inline media under
 * the per-part and per-request limits, vets URLs under the media policy, and counts the part.
 */
export function parseContentPart(
  part: ContentPart,
  path: string,
  policy: MediaPolicy,
  budget: PartBudget,
  textIsModality: boolean,
): ParsedPart {
  budget.countPart(path);
  const parsed: ParsedPart =
    part.type === 'text'
      ? textPart(part, path, textIsModality)
      : { kind: 'input', input: mediaInput(part, path, { policy, budget }) };
  if (parsed.kind === 'input') {
    const source = parsed.input.source;
    budget.countInput(path, source?.$case === 'embedding' && source.value.fused);
  }
  return parsed;
}

function mediaInput(
  part: Exclude<ContentPart, { type: 'text' }>,
  path: string,
  reading: Reading,
): gatewayV1.MultimodalInput {
  const weight = part.weight ?? undefined;
  switch (part.type) {
    case 'image_url':
      return urlInput(part.image_url.url, 'image', weight, at(at(path, part.type), 'url'), reading);
    case 'video_url':
      return urlInput(part.video_url.url, 'video', weight, at(at(path, part.type), 'url'), reading);
    case 'input_audio':
      return inlineInput(part.input_audio, 'audio', weight, at(path, part.type), reading);
    case 'input_point_cloud':
      return inlineInput(part.input_point_cloud, 'point_cloud', weight, at(path, part.type), reading);
    case 'input_embedding':
      return embeddingInput(part, path, reading.policy);
  }
}
