import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { commonV1, type gatewayV1 } from '@imagebind-llm/proto';
import { ImageBindError } from './image-bind-error';

const { Modality } = commonV1;
type Modality = commonV1.Modality;
type MultimodalInput = gatewayV1.MultimodalInput;

/** Modalities by the names the builders use. */
export type ModalityName = 'image' | 'video' | 'audio' | 'text' | 'point-cloud' | 'depth' | 'thermal' | 'imu';

/** The proto modality of each builder name (also what manifests and CLIs accept). */
export const MODALITY_BY_NAME: Readonly<Record<ModalityName, Modality>> = {
  image: Modality.MODALITY_IMAGE,
  video: Modality.MODALITY_VIDEO,
  audio: Modality.MODALITY_AUDIO,
  text: Modality.MODALITY_TEXT,
  'point-cloud': Modality.MODALITY_POINT_CLOUD,
  depth: Modality.MODALITY_DEPTH,
  thermal: Modality.MODALITY_THERMAL,
  imu: Modality.MODALITY_IMU,
};

/** Media types by lower-case file extension, for the modalities whose decoders sniff content. */
const MEDIA_TYPE_BY_EXTENSION: Readonly<Record<string, string>> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.bmp': 'image/bmp',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.wav': 'audio/wav',
  '.mp3': 'audio/mpeg',
  '.flac': 'audio/flac',
  '.ogg': 'audio/ogg',
  '.oga': 'audio/ogg',
  '.opus': 'audio/opus',
  '.m4a': 'audio/mp4',
  '.aac': 'audio/aac',
  '.mp4': 'video/mp4',
  '.m4v': 'video/mp4',
  '.mov': 'video/quicktime',
  '.webm': 'video/webm',
  '.mkv': 'video/x-matroska',
  '.avi': 'video/x-msvideo',
  '.mpeg': 'video/mpeg',
  '.mpg': 'video/mpeg',
};

/** Raw bytes, or the path of a local file to read. */
export type MediaSource = Uint8Array | string;

/**
 * The media type a file name suggests, or the file name itself when the extension is unknown:
 * the gateway accepts a media type or a file name as the hint (gateway.proto `media_type`).
 */
export function guessMediaType(fileName: string): string {
  return MEDIA_TYPE_BY_EXTENSION[extname(fileName).toLowerCase()] ?? basename(fileName);
}

/** An image (JPEG, PNG, WebP, GIF, ...) from bytes or a local file. */
export function image(source: MediaSource, weight?: number, mediaType?: string): MultimodalInput {
  return media('image', source, weight, mediaType);
}

/** An audio clip (WAV, MP3, FLAC, ...) from bytes or a local file. */
export function audio(source: MediaSource, weight?: number, mediaType?: string): MultimodalInput {
  return media('audio', source, weight, mediaType);
}

/** A video (MP4, WebM, ...) from bytes or a local file. */
export function video(source: MediaSource, weight?: number, mediaType?: string): MultimodalInput {
  return media('video', source, weight, mediaType);
}

/**
 * A 3D point cloud (.ply, .pcd, .npy, .pt, .obj, .xyz, .pts) from bytes or a local file. The point
 * loader picks its parser by file extension, so a path sends its file name as the hint; with raw
 * bytes pass a name such as `'scan.ply'` as `mediaType`.
 */
export function pointCloud(source: MediaSource, weight?: number, mediaType?: string): MultimodalInput {
  const hint = mediaType ?? (typeof source === 'string' ? basename(source) : undefined);
  return media('point-cloud', source, weight, hint);
}

/** Text embedded by the ImageBind text encoder (an input modality, not the instruction). */
export function text(value: string, weight?: number): MultimodalInput {
  if (typeof value !== 'string' || value.trim() === '') {
    throw ImageBindError.invalidArgument('text(): pass a non-empty string', 'text');
  }
  return {
    modality: Modality.MODALITY_TEXT,
    ...weightField('text', weight),
    source: { $case: 'text', value },
    mediaType: '',
  };
}

/**
 * An input the gateway fetches itself: an allow-listed `https://` URL or a path under the
 * gateway's configured local root (not a path on this machine).
 */
export function uri(
  modality: ModalityName | Modality,
  location: string,
  weight?: number,
  mediaType?: string,
): MultimodalInput {
  const resolved = resolveModality(modality);
  if (typeof location !== 'string' || location === '') {
    throw ImageBindError.invalidArgument('uri(): pass the URI to fetch as a non-empty string', 'uri');
  }
  return {
    modality: resolved,
    ...weightField('uri', weight),
    source: { $case: 'uri', value: location },
    mediaType: mediaType ?? '',
  };
}

/** Length of an ImageBind embedding (gateway.proto PrecomputedEmbedding). */
export const EMBEDDING_LENGTH = 1024;

/** Options of {@link embedding}. */
export interface EmbeddingOptions {
  /** Mixing weight, > 0; unset means 1. Not allowed with `fused`. */
  readonly weight?: number;
  /** Where the vector came from; a label only (no encoder runs), unset by default. */
  readonly modality?: ModalityName | Modality;
  /**
   * The vector is a fused query (`embed(...).fused`): the gateway uses it as the query itself, not
   * normalised again, so it must be the request's only input.
   */
  readonly fused?: boolean;
}

/**
 * A precomputed ImageBind embedding in place of media: embed once, then ask many questions. Pass
 * an input's `embed(...).embeddings[i].vector` (at any scale: the gateway L2-normalises it and
 * mixes it by `weight` exactly as an encoder's output), or `embed(...).fused` with `{ fused: true }`.
 * The vector must hold 1024 finite values.
 */
export function embedding(
  vector: Float32Array | readonly number[],
  options: EmbeddingOptions = {},
): MultimodalInput {
  const values = vector instanceof Float32Array ? vector : Float32Array.from(vector);
  if (values.length !== EMBEDDING_LENGTH) {
    throw ImageBindError.invalidArgument(
      `embedding(): an ImageBind embedding has ${EMBEDDING_LENGTH} values, got ${values.length}`,
      'embedding',
    );
  }
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) {
    throw ImageBindError.invalidArgument(
      `embedding(): value ${bad} is ${values[bad]}; every value must be finite (float32)`,
      'embedding',
    );
  }
  const fused = options.fused === true;
  if (fused && options.weight !== undefined) {
    throw ImageBindError.invalidArgument('embedding(): a fused query already carries its weights', 'weight');
  }
  const data = Buffer.alloc(EMBEDDING_LENGTH * 4);
  values.forEach((v, i) => data.writeFloatLE(v, i * 4));
  return {
    modality:
      options.modality === undefined
        ? Modality.MODALITY_UNSPECIFIED
        : resolveModality(options.modality, 'embedding'),
    ...weightField('embedding', options.weight),
    source: {
      $case: 'embedding',
      value: {
        vector: { dtype: commonV1.DataType.DATA_TYPE_FLOAT32, shape: [EMBEDDING_LENGTH], data },
        fused,
      },
    },
    mediaType: '',
  };
}

function resolveModality(modality: ModalityName | Modality, builder = 'uri'): Modality {
  if (typeof modality === 'number' && modality > Modality.MODALITY_UNSPECIFIED && modality in Modality) {
    return modality;
  }
  if (typeof modality === 'string' && Object.hasOwn(MODALITY_BY_NAME, modality)) {
    return MODALITY_BY_NAME[modality];
  }
  throw ImageBindError.invalidArgument(
    `${builder}(): unknown modality ${JSON.stringify(modality)}; use one of ${Object.keys(MODALITY_BY_NAME).join(', ')}`,
    'modality',
  );
}

function media(
  name: ModalityName,
  source: MediaSource,
  weight: number | undefined,
  mediaType: string | undefined,
): MultimodalInput {
  const builder = builderName(name);
  const weightPart = weightField(builder, weight);
  if (typeof source === 'string') {
    return {
      modality: MODALITY_BY_NAME[name],
      ...weightPart,
      source: { $case: 'content', value: readMediaFile(builder, name, source) },
      mediaType: mediaType ?? guessMediaType(source),
    };
  }
  if (!(source instanceof Uint8Array)) {
    throw ImageBindError.invalidArgument(
      `${builder}(): pass the file's bytes (Buffer or Uint8Array) or a local path`,
      'content',
    );
  }
  if (source.byteLength === 0) {
    throw ImageBindError.invalidArgument(`${builder}(): the bytes are empty`, 'content');
  }
  // Wraps the caller's memory without copying: inputs can be large videos.
  const content = Buffer.isBuffer(source)
    ? source
    : Buffer.from(source.buffer, source.byteOffset, source.byteLength);
  return {
    modality: MODALITY_BY_NAME[name],
    ...weightPart,
    source: { $case: 'content', value: content },
    mediaType: mediaType ?? '',
  };
}

function readMediaFile(builder: string, name: ModalityName, path: string): Buffer {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    throw ImageBindError.invalidArgument(
      `${builder}(): ${JSON.stringify(path)} looks like a URI; use uri('${name}', ...) to let the gateway ` +
        'fetch it, or pass a local file path or the bytes',
      'uri',
    );
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw ImageBindError.invalidArgument(
      `${builder}(): cannot read ${JSON.stringify(path)} (${reason}); check the path`,
      'content',
      error,
    );
  }
  if (bytes.byteLength === 0) {
    throw ImageBindError.invalidArgument(`${builder}(): ${JSON.stringify(path)} is empty`, 'content');
  }
  return bytes;
}

function weightField(builder: string, weight: number | undefined): { weight?: number } {
  if (weight === undefined) return {};
  // MODEL_SPEC §1.2–1.3: weights are divided by their sum and a zero weight is rejected.
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
    throw ImageBindError.invalidArgument(
      `${builder}(): weight must be a finite number > 0, got ${String(weight)}`,
      'weight',
    );
  }
  return { weight };
}

function builderName(name: ModalityName): string {
  return name === 'point-cloud' ? 'pointCloud' : name;
}
