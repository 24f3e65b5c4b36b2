import { basename, extname } from 'node:path';
import type { InputModality } from '@imagebind-llm/inference';

/** Point-cloud formats a MIME type names (the loader picks a format by file extension). */
const POINT_EXTENSION_BY_MIME: Readonly<Record<string, string>> = {
  'application/x-npy': 'npy',
  'application/npy': 'npy',
  'application/zip': 'pt',
  'application/x-pytorch': 'pt',
  'model/ply': 'ply',
  'application/ply': 'ply',
  'model/obj': 'obj',
  'text/x-obj': 'obj',
  'chemical/x-xyz': 'xyz',
  'image/x-pcd': 'pcd',
  'application/x-pcd': 'pcd',
};

const TEXT_POINT_FORMATS = new Set(['obj', 'xyz', 'pts']);

function startsWith(bytes: Uint8Array, text: string): boolean {
  if (bytes.length < text.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[i] !== text.charCodeAt(i)) return false;
  return true;
}

function hintedExtension(mediaType: string): string | undefined {
  const hint = mediaType.trim().toLowerCase();
  if (hint === '') return undefined;
  const mime = POINT_EXTENSION_BY_MIME[hint.split(';')[0]!.trim()];
  if (mime !== undefined) return mime;
  const ext = extname(hint).slice(1);
  return ext === '' ? undefined : ext;
}

/** The format the bytes themselves show, for the formats that carry a signature. */
function sniffPointFormat(bytes: Uint8Array): string | undefined {
  if (startsWith(bytes, 'PK\x03\x04') || startsWith(bytes, 'PK\x05\x06')) return 'pt';
  if (startsWith(bytes, '\x93NUMPY')) return 'npy';
  if (startsWith(bytes, 'ply\n') || startsWith(bytes, 'ply\r')) return 'ply';
  if (startsWith(bytes, '# .PCD') || startsWith(bytes, 'VERSION') || startsWith(bytes, 'FIELDS'))
    return 'pcd';
  return undefined;
}

/**
 * The file name the preprocessors get for an input. Images, audio and video are recognised by
 * their content; point clouds are parsed by extension (MODEL_SPEC §2.5), so one is derived here:
 * the content's signature wins over the hint (encoder.proto: "content sniffing wins"), text
 * formats follow the hint, and signature-less text without a hint is read as `.xyz` (or `.obj`
 * when it has `v x y z` lines).
 */
export function inputFileName(
  modality: InputModality,
  mediaType: string,
  bytes: Uint8Array,
): string | undefined {
  const hinted = hintedExtension(mediaType);
  if (modality !== 'point') {
    return mediaType.trim() === '' || hinted === undefined ? undefined : basename(mediaType.trim());
  }
  const sniffed = sniffPointFormat(bytes);
  if (sniffed !== undefined) return `cloud.${sniffed}`;
  if (hinted !== undefined && TEXT_POINT_FORMATS.has(hinted)) return `cloud.${hinted}`;
  const head = Buffer.from(bytes.subarray(0, 4096)).toString('latin1');
  if (head.includes('\0')) return hinted === undefined ? 'cloud.bin' : `cloud.${hinted}`;
  return /^v\s/m.test(head) ? 'cloud.obj' : 'cloud.xyz';
}
