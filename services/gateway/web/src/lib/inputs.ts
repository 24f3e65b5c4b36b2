/** The inputs of a request and the checks made before anything is sent. */
import type { PlaygroundConfig } from './config';
import { formatBytes, shortList } from './format';

export type Modality = 'image' | 'video' | 'audio' | 'text' | 'point_cloud';

/** How each modality is named in labels and messages. */
export const MODALITY_LABEL: Readonly<Record<Modality, string>> = {
  image: 'Image',
  video: 'Video',
  audio: 'Audio',
  text: 'Text',
  point_cloud: 'Point cloud',
};

/** The facts of a chosen file the checks need (a browser File has them all). */
export interface FileFacts {
  readonly name: string;
  /** The browser's MIME type guess; may be empty. */
  readonly type: string;
  readonly size: number;
}

/** What a file becomes once accepted: the media type of a data: URL or the API's `format`. */
export type FileCheck =
  | { readonly ok: true; readonly mediaType: string; readonly format: string }
  | { readonly ok: false; readonly message: string };

/** "photo.JPG" → "jpg"; "" when the name has no extension. */
export function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot <= 0 || dot === name.length - 1 ? '' : name.slice(dot + 1).toLowerCase();
}

/** MIME types for files whose type the browser left empty (some systems know no video/x-matroska). */
const MIME_BY_EXTENSION: Readonly<Record<string, string>> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  bmp: 'image/bmp',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  mp4: 'video/mp4',
  m4v: 'video/mp4',
  webm: 'video/webm',
  mov: 'video/quicktime',
  mkv: 'video/x-matroska',
  avi: 'video/x-msvideo',
};

/** The file's media type: the browser's, or a guess from the extension when it gave none. */
export function mediaTypeOf(file: FileFacts): string {
  const given = file.type.trim().toLowerCase();
  return given !== '' ? given : (MIME_BY_EXTENSION[extensionOf(file.name)] ?? '');
}

const NOUN: Readonly<Record<Exclude<Modality, 'text'>, string>> = {
  image: 'an image',
  video: 'a video',
  audio: 'a supported audio file',
  point_cloud: 'a supported point cloud',
};

/**
 * Checks a chosen file against the server's accepted formats and size limit, so an obvious
 * mistake (a .txt chosen as an image, a file over the limit) is explained at once and never
 * uploaded. Images and videos are judged by MIME type, audio and point clouds by extension,
 * as the API identifies them.
 */
export function checkFile(
  modality: Exclude<Modality, 'text'>,
  file: FileFacts,
  config: PlaygroundConfig,
): FileCheck {
  const name = file.name === '' ? 'the file' : file.name;
  let mediaType = '';
  let format = '';
  let accepted: readonly string[];
  let matches: boolean;
  if (modality === 'image' || modality === 'video') {
    accepted = config.formats[modality];
    mediaType = mediaTypeOf(file);
    matches = mediaType !== '' && accepted.includes(mediaType);
  } else {
    accepted = (modality === 'audio' ? config.formats.audio : config.formats.pointCloud).map((e) => `.${e}`);
    format = extensionOf(file.name);
    matches = format !== '' && accepted.includes(`.${format}`);
  }
  if (!matches) {
    return { ok: false, message: `${name} is not ${NOUN[modality]} (accepted: ${shortList(accepted)})` };
  }
  if (file.size === 0) return { ok: false, message: `${name} is empty` };
  if (file.size > config.limits.maxInputBytes) {
    return {
      ok: false,
      message: `${name} is too large: ${formatBytes(file.size)}, the limit is ${formatBytes(config.limits.maxInputBytes)} per input`,
    };
  }
  return { ok: true, mediaType, format };
}

/** Checks a text input for the text encoder. */
export function checkText(text: string): string | undefined {
  return text.trim() === '' ? 'Write the text to embed first' : undefined;
}

/**
 * The `format` the API expects for a microphone recording, from the recorder's MIME type
 * ("audio/webm;codecs=opus" → "webm"). Browsers that record MP4/AAC (Safari) give "m4a".
 */
export function recordingFormat(mimeType: string): string {
  const base = mimeType.split(';')[0]!.trim().toLowerCase();
  if (base.endsWith('/ogg')) return 'ogg';
  if (base.endsWith('/mp4') || base.endsWith('/aac') || base.endsWith('/x-m4a')) return 'm4a';
  return 'webm';
}

/** Bytes of `n` raw bytes once base64-encoded. */
export function base64Length(n: number): number {
  return Math.ceil(n / 3) * 4;
}

/**
 * Estimates the JSON body of a request with inputs of these raw sizes and checks it against the
 * server's limits: too many inputs, or a body over `max_body_bytes`, would only come back as an
 * error after a long upload.
 */
export function checkRequestSize(
  inputs: readonly { readonly bytes: number; readonly textLength: number }[],
  config: PlaygroundConfig,
): string | undefined {
  if (inputs.length > config.limits.maxInputs) {
    return `${inputs.length} inputs are more than the ${config.limits.maxInputs} one request may carry; remove some`;
  }
  const body = inputs.reduce((sum, i) => sum + base64Length(i.bytes) + i.textLength * 2 + 200, 4096);
  if (body > config.limits.maxBodyBytes) {
    return `together the inputs make a request of about ${formatBytes(body)}, over the server's limit of ${formatBytes(config.limits.maxBodyBytes)}; remove or shrink some`;
  }
  return undefined;
}
