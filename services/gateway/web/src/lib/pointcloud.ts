/**
 * Point-cloud reading for the in-browser 3D preview. Only text formats are read here (.xyz, .txt,
 * .pts and ASCII .ply); the server reads every format it lists, so a file the preview cannot
 * read (npy, binary ply, pcd, obj, pt) is still sent, just without a preview.
 */

/** A cloud ready to draw: xyz triples, centred on the origin and scaled into the unit sphere. */
export interface PreviewCloud {
  readonly positions: Float32Array;
  readonly count: number;
  /** How many points the file held (the preview may show a subset). */
  readonly totalPoints: number;
}

export type PointCloudPreview =
  | { readonly kind: 'points'; readonly cloud: PreviewCloud }
  | { readonly kind: 'unsupported'; readonly reason: string }
  | { readonly kind: 'error'; readonly message: string };

const TEXT_FORMATS = new Set(['xyz', 'txt', 'pts']);

/** Whether the preview can try this extension at all (a .ply may still turn out binary). */
export function mayPreview(extension: string): boolean {
  return TEXT_FORMATS.has(extension) || extension === 'ply';
}

/** Largest number of points drawn; bigger clouds are thinned evenly. */
export const MAX_PREVIEW_POINTS = 40_000;

const SEPARATORS = /[\s,;]+/;

/** x y z from the first three fields of a text row, or undefined when they are not numbers. */
function xyzOf(fields: readonly string[], ix = 0, iy = 1, iz = 2): [number, number, number] | undefined {
  const x = Number(fields[ix]);
  const y = Number(fields[iy]);
  const z = Number(fields[iz]);
  if (fields[ix] === undefined || fields[iy] === undefined || fields[iz] === undefined) return undefined;
  if (!Number.isFinite(x) || !Number.isFinite(y) || !Number.isFinite(z)) return undefined;
  return [x, y, z];
}

function splitRow(line: string): string[] {
  const trimmed = line.trim();
  return trimmed === '' ? [] : trimmed.split(SEPARATORS);
}

/** Rows of x y z [more columns]; blank, comment and header rows (such as a point count) are skipped. */
function readXyz(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split(/\r\n|\n|\r/)) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith('//')) continue;
    const point = xyzOf(splitRow(trimmed));
    if (point !== undefined) out.push(point[0], point[1], point[2]);
  }
  return out;
}

interface PlyElement {
  readonly name: string;
  readonly count: number;
  readonly properties: string[];
}

type PlyResult = { readonly kind: 'ok'; readonly xyz: number[] } | PointCloudPreview;

function readPly(text: string): PlyResult {
  const lines = text.split(/\r\n|\n|\r/);
  if (lines[0]?.trim() !== 'ply') return { kind: 'error', message: 'not a PLY file (no "ply" header line)' };
  const elements: PlyElement[] = [];
  let format = '';
  let bodyStart = -1;
  for (let i = 1; i < lines.length; i++) {
    const fields = splitRow(lines[i]!);
    const keyword = fields[0];
    if (keyword === 'end_header') {
      bodyStart = i + 1;
      break;
    }
    if (keyword === 'format') format = fields[1] ?? '';
    else if (keyword === 'element') {
      const count = Number(fields[2]);
      if (fields[1] === undefined || !Number.isInteger(count) || count < 0) {
        return { kind: 'error', message: `bad PLY element line: ${lines[i]!.trim()}` };
      }
      elements.push({ name: fields[1], count, properties: [] });
    } else if (keyword === 'property') {
      const element = elements[elements.length - 1];
      if (element === undefined) return { kind: 'error', message: 'PLY property before any element' };
      // "property <type> <name>" or "property list <count type> <item type> <name>".
      const name = fields[1] === 'list' ? fields[4] : fields[2];
      element.properties.push(name ?? '');
    }
  }
  if (bodyStart < 0) return { kind: 'error', message: 'the PLY header has no end_header line' };
  if (format.startsWith('binary')) {
    return { kind: 'unsupported', reason: 'binary PLY' };
  }
  if (format !== 'ascii') return { kind: 'error', message: `unknown PLY format "${format}"` };
  const vertexIndex = elements.findIndex((e) => e.name === 'vertex');
  if (vertexIndex < 0) return { kind: 'error', message: 'the PLY file has no vertex element' };
  const vertex = elements[vertexIndex]!;
  const ix = vertex.properties.indexOf('x');
  const iy = vertex.properties.indexOf('y');
  const iz = vertex.properties.indexOf('z');
  if (ix < 0 || iy < 0 || iz < 0) return { kind: 'error', message: 'the PLY vertices have no x, y, z' };
  // Skip the rows of the elements stored before the vertices (one row per line in ASCII PLY).
  let row = bodyStart;
  for (let e = 0; e < vertexIndex; e++) {
    let skipped = 0;
    while (skipped < elements[e]!.count && row < lines.length) {
      if (lines[row]!.trim() !== '') skipped += 1;
      row += 1;
    }
  }
  const xyz: number[] = [];
  let read = 0;
  while (read < vertex.count && row < lines.length) {
    const fields = splitRow(lines[row]!);
    row += 1;
    if (fields.length === 0) continue;
    read += 1;
    const point = xyzOf(fields, ix, iy, iz);
    if (point === undefined) return { kind: 'error', message: `PLY vertex ${read} is not numeric` };
    xyz.push(point[0], point[1], point[2]);
  }
  if (read < vertex.count) {
    return {
      kind: 'error',
      message: `the PLY header promises ${vertex.count} vertices, the file has ${read}`,
    };
  }
  return { kind: 'ok', xyz };
}

/**
 * Centres a cloud on its bounding-box centre, scales it so the farthest point lies on the unit
 * sphere and keeps at most `maxPoints` of them (every n-th point, so the shape stays even).
 */
export function normaliseCloud(xyz: readonly number[], maxPoints = MAX_PREVIEW_POINTS): PreviewCloud {
  const total = Math.floor(xyz.length / 3);
  const stride = Math.max(1, Math.ceil(total / Math.max(1, maxPoints)));
  const count = Math.ceil(total / stride);
  const min = [Infinity, Infinity, Infinity];
  const max = [-Infinity, -Infinity, -Infinity];
  for (let p = 0; p < total; p++) {
    for (let a = 0; a < 3; a++) {
      const v = xyz[p * 3 + a]!;
      if (v < min[a]!) min[a] = v;
      if (v > max[a]!) max[a] = v;
    }
  }
  const centre = [0, 1, 2].map((a) => (total === 0 ? 0 : (min[a]! + max[a]!) / 2));
  const positions = new Float32Array(count * 3);
  let radius = 0;
  for (let p = 0, out = 0; p < total; p += stride, out++) {
    let r2 = 0;
    for (let a = 0; a < 3; a++) {
      const v = xyz[p * 3 + a]! - centre[a]!;
      positions[out * 3 + a] = v;
      r2 += v * v;
    }
    radius = Math.max(radius, Math.sqrt(r2));
  }
  if (radius > 0) for (let i = 0; i < positions.length; i++) positions[i] = positions[i]! / radius;
  return { positions, count, totalPoints: total };
}

/**
 * Reads a point-cloud file's text for the preview. `extension` is the lower-case file extension;
 * formats the preview cannot read come back as `unsupported` (they are still sent to the server).
 */
export function parsePointCloud(
  extension: string,
  text: string,
  maxPoints = MAX_PREVIEW_POINTS,
): PointCloudPreview {
  let xyz: number[];
  if (TEXT_FORMATS.has(extension)) {
    xyz = readXyz(text);
  } else if (extension === 'ply') {
    const ply = readPly(text);
    if (ply.kind !== 'ok') return ply;
    xyz = ply.xyz;
  } else {
    return { kind: 'unsupported', reason: `.${extension} files` };
  }
  if (xyz.length === 0) return { kind: 'error', message: 'no points found (expected rows of x y z numbers)' };
  return { kind: 'points', cloud: normaliseCloud(xyz, maxPoints) };
}
