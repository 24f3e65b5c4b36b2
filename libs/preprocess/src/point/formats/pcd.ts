import {
  invalidPointInput,
  parseCoordinate,
  tooManyPoints,
  unsupportedPointMedia,
  type PointCloud,
} from '../point-cloud';

/**
 * PCD (Point Cloud Library) reader for x/y/z: `DATA ascii` and `DATA binary` (little-endian rows).
 * `binary_compressed` (LZF) is refused with UNSUPPORTED_MEDIA.
 */

interface Field {
  readonly name: string;
  readonly size: number;
  readonly type: 'F' | 'I' | 'U';
  readonly count: number;
}

const MAX_HEADER_LINES = 64;

function headerError(file: string, detail: string): Error {
  return invalidPointInput(`${file}: PCD header: ${detail}`);
}

/** True when the bytes start like a PCD header. */
export function looksLikePcd(bytes: Uint8Array): boolean {
  const head = new TextDecoder('latin1').decode(bytes.subarray(0, 256));
  return /^(#[^\n]*\n)*\s*(VERSION|FIELDS)\s/.test(head);
}

export function parsePcd(bytes: Uint8Array, file: string, maxPoints: number): PointCloud {
  const entries = new Map<string, string[]>();
  let offset = 0;
  let data: string | undefined;
  for (let line = 0; line < MAX_HEADER_LINES && data === undefined; line++) {
    const nl = bytes.indexOf(0x0a, offset);
    if (nl < 0) throw headerError(file, 'no DATA line (truncated or not a PCD file)');
    const text = new TextDecoder('latin1').decode(bytes.subarray(offset, nl)).trim();
    offset = nl + 1;
    if (text === '' || text.startsWith('#')) continue;
    const [key, ...values] = text.split(/\s+/);
    if (key === undefined) continue;
    const upper = key.toUpperCase();
    if (upper === 'DATA') data = values[0]?.toLowerCase();
    else entries.set(upper, values);
  }
  if (data === undefined) throw headerError(file, `no DATA line in the first ${MAX_HEADER_LINES} lines`);
  if (data === 'binary_compressed') {
    throw unsupportedPointMedia(
      `${file}: PCD "DATA binary_compressed" is not supported; re-save it as binary or ascii (pcl_convert_pcd_ascii_binary)`,
    );
  }
  if (data !== 'ascii' && data !== 'binary')
    throw unsupportedPointMedia(`${file}: PCD DATA ${JSON.stringify(data)} is not supported`);

  const names = entries.get('FIELDS');
  if (names === undefined || names.length === 0) throw headerError(file, 'no FIELDS line');
  const sizes = entries.get('SIZE') ?? names.map(() => '4');
  const types = entries.get('TYPE') ?? names.map(() => 'F');
  const counts = entries.get('COUNT') ?? names.map(() => '1');
  if (sizes.length !== names.length || types.length !== names.length || counts.length !== names.length) {
    throw headerError(file, 'FIELDS, SIZE, TYPE and COUNT have different lengths');
  }
  const fields: Field[] = names.map((name, i) => {
    const size = Number(sizes[i]);
    const type = types[i]?.toUpperCase();
    const count = Number(counts[i]);
    if (type !== 'F' && type !== 'I' && type !== 'U')
      throw headerError(file, `field ${name} has TYPE ${type}`);
    const okSizes = type === 'F' ? [4, 8] : [1, 2, 4, 8];
    if (!okSizes.includes(size)) throw headerError(file, `field ${name} has SIZE ${size} for TYPE ${type}`);
    if (!Number.isSafeInteger(count) || count < 1)
      throw headerError(file, `field ${name} has COUNT ${counts[i]}`);
    return { name, size, type, count };
  });

  const width = Number(entries.get('WIDTH')?.[0]);
  const height = Number(entries.get('HEIGHT')?.[0] ?? '1');
  const pointsLine = entries.get('POINTS')?.[0];
  const count = pointsLine !== undefined ? Number(pointsLine) : width * height;
  if (!Number.isSafeInteger(count) || count < 0)
    throw headerError(file, `bad point count ${pointsLine ?? `${width}x${height}`}`);
  if (count > maxPoints) throw tooManyPoints(file, count, maxPoints);

  // Column (ascii) / byte offset (binary) of x, y, z within a row.
  const columns: number[] = [];
  const byteOffsets: number[] = [];
  let column = 0;
  let byteOffset = 0;
  const axisFields: Field[] = [];
  for (const f of fields) {
    if (f.name === 'x' || f.name === 'y' || f.name === 'z') {
      columns[f.name.charCodeAt(0) - 0x78] = column;
      byteOffsets[f.name.charCodeAt(0) - 0x78] = byteOffset;
      axisFields[f.name.charCodeAt(0) - 0x78] = f;
    }
    column += f.count;
    byteOffset += f.size * f.count;
  }
  for (let a = 0; a < 3; a++) {
    if (axisFields[a] === undefined) throw headerError(file, `no ${'xyz'[a] ?? ''} field`);
  }
  const points = new Float32Array(count * 3);
  if (data === 'binary') {
    const rowBytes = byteOffset;
    if (offset + rowBytes * count > bytes.length) {
      throw invalidPointInput(
        `${file}: binary PCD needs ${rowBytes * count} data bytes for ${count} points but has ${bytes.length - offset} (truncated file)`,
      );
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < count; i++) {
      for (let a = 0; a < 3; a++) {
        const f = axisFields[a] as Field;
        points[i * 3 + a] = readValue(view, offset + i * rowBytes + (byteOffsets[a] ?? 0), f);
      }
    }
  } else {
    const lines = new TextDecoder('latin1').decode(bytes.subarray(offset)).split('\n');
    let i = 0;
    for (const line of lines) {
      if (i === count) break;
      const trimmed = line.trim();
      if (trimmed === '') continue;
      const tokens = trimmed.split(/\s+/);
      if (tokens.length < column)
        throw invalidPointInput(`${file}: PCD point ${i} has ${tokens.length} values, expected ${column}`);
      for (let a = 0; a < 3; a++) {
        const token = tokens[columns[a] ?? 0] ?? '';
        const value = parseCoordinate(token);
        if (value === undefined) {
          throw invalidPointInput(`${file}: PCD value ${JSON.stringify(token.slice(0, 32))} is not a number`);
        }
        points[i * 3 + a] = value;
      }
      i++;
    }
    if (i < count)
      throw invalidPointInput(
        `${file}: PCD header says ${count} points but the file has ${i} (truncated file)`,
      );
  }
  return { points, count };
}

function readValue(view: DataView, at: number, f: Field): number {
  if (f.type === 'F') return f.size === 4 ? view.getFloat32(at, true) : view.getFloat64(at, true);
  const signed = f.type === 'I';
  switch (f.size) {
    case 1:
      return signed ? view.getInt8(at) : view.getUint8(at);
    case 2:
      return signed ? view.getInt16(at, true) : view.getUint16(at, true);
    case 4:
      return signed ? view.getInt32(at, true) : view.getUint32(at, true);
    default:
      return Number(signed ? view.getBigInt64(at, true) : view.getBigUint64(at, true));
  }
}
