import {
  invalidPointInput,
  parseCoordinate,
  tooManyPoints,
  unsupportedPointMedia,
  type PointCloud,
} from '../point-cloud';

/**
 * PLY reader for point positions (what Open3D's `read_point_cloud` keeps, MODEL_SPEC §2.5):
 * ascii, binary_little_endian and binary_big_endian; the `vertex` element's x/y/z of any numeric
 * type; every other property and element is skipped (list properties included).
 */

type ScalarType = 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';

const TYPE_NAMES: Readonly<Record<string, ScalarType>> = {
  char: 'int8',
  int8: 'int8',
  uchar: 'uint8',
  uint8: 'uint8',
  short: 'int16',
  int16: 'int16',
  ushort: 'uint16',
  uint16: 'uint16',
  int: 'int32',
  int32: 'int32',
  uint: 'uint32',
  uint32: 'uint32',
  float: 'float32',
  float32: 'float32',
  double: 'float64',
  float64: 'float64',
};

const SIZES: Readonly<Record<ScalarType, number>> = {
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  float32: 4,
  float64: 8,
};

type Property =
  | { readonly kind: 'scalar'; readonly name: string; readonly type: ScalarType }
  | {
      readonly kind: 'list';
      readonly name: string;
      readonly countType: ScalarType;
      readonly itemType: ScalarType;
    };

interface Element {
  readonly name: string;
  readonly count: number;
  readonly properties: Property[];
}

type Format = 'ascii' | 'binary_little_endian' | 'binary_big_endian';

interface Header {
  readonly format: Format;
  readonly elements: Element[];
  readonly dataStart: number;
}

const MAX_HEADER_BYTES = 64 * 1024;

function scalarType(name: string, file: string, word: string): ScalarType {
  const type = TYPE_NAMES[word];
  if (type === undefined)
    throw unsupportedPointMedia(`${file}: PLY property ${name} has unknown type ${JSON.stringify(word)}`);
  return type;
}

function parseHeader(bytes: Uint8Array, file: string): Header {
  const limit = Math.min(bytes.length, MAX_HEADER_BYTES);
  const text = new TextDecoder('latin1').decode(bytes.subarray(0, limit));
  const end = /(^|\n)end_header\r?\n/.exec(text);
  if (end === null) {
    throw unsupportedPointMedia(
      limit === bytes.length
        ? `${file}: PLY header has no end_header line (truncated or not a PLY file)`
        : `${file}: PLY header is longer than ${MAX_HEADER_BYTES} bytes`,
    );
  }
  const dataStart = end.index + end[0].length;
  const lines = text.slice(0, dataStart).split(/\r?\n/);
  if (lines[0]?.trim() !== 'ply')
    throw unsupportedPointMedia(`${file}: not a PLY file (no "ply" magic line)`);
  let format: Format | undefined;
  const elements: Element[] = [];
  for (const raw of lines.slice(1)) {
    const words = raw
      .trim()
      .split(/\s+/)
      .filter((w) => w !== '');
    const [keyword] = words;
    if (keyword === undefined || keyword === 'comment' || keyword === 'obj_info' || keyword === 'end_header')
      continue;
    if (keyword === 'format') {
      const f = words[1];
      if (f !== 'ascii' && f !== 'binary_little_endian' && f !== 'binary_big_endian') {
        throw unsupportedPointMedia(`${file}: PLY format ${JSON.stringify(f)} is not supported`);
      }
      format = f;
    } else if (keyword === 'element') {
      const count = Number(words[2]);
      if (words.length !== 3 || !Number.isSafeInteger(count) || count < 0) {
        throw invalidPointInput(`${file}: bad PLY element line ${JSON.stringify(raw)}`);
      }
      elements.push({ name: words[1] ?? '', count, properties: [] });
    } else if (keyword === 'property') {
      const element = elements[elements.length - 1];
      if (element === undefined) throw invalidPointInput(`${file}: PLY property before any element`);
      if (words[1] === 'list') {
        const name = words[4] ?? '';
        element.properties.push({
          kind: 'list',
          name,
          countType: scalarType(name, file, words[2] ?? ''),
          itemType: scalarType(name, file, words[3] ?? ''),
        });
      } else {
        const name = words[2] ?? '';
        element.properties.push({ kind: 'scalar', name, type: scalarType(name, file, words[1] ?? '') });
      }
    } else {
      throw invalidPointInput(`${file}: unexpected PLY header line ${JSON.stringify(raw)}`);
    }
  }
  if (format === undefined) throw invalidPointInput(`${file}: PLY header has no format line`);
  return { format, elements, dataStart };
}

function readScalar(view: DataView, offset: number, type: ScalarType, little: boolean): number {
  switch (type) {
    case 'int8':
      return view.getInt8(offset);
    case 'uint8':
      return view.getUint8(offset);
    case 'int16':
      return view.getInt16(offset, little);
    case 'uint16':
      return view.getUint16(offset, little);
    case 'int32':
      return view.getInt32(offset, little);
    case 'uint32':
      return view.getUint32(offset, little);
    case 'float32':
      return view.getFloat32(offset, little);
    case 'float64':
      return view.getFloat64(offset, little);
  }
}

/** A list property's length as read from the file: a non-negative integer, or the file is refused. */
function listLength(n: number, property: string, file: string): number {
  if (!Number.isInteger(n) || n < 0) throw invalidPointInput(`${file}: PLY list ${property} has length ${n}`);
  return n;
}

function xyzIndices(vertex: Element, file: string): [number, number, number] {
  const find = (axis: string): number => {
    const i = vertex.properties.findIndex((p) => p.name === axis);
    const prop = vertex.properties[i];
    if (prop === undefined) throw invalidPointInput(`${file}: PLY vertex element has no ${axis} property`);
    if (prop.kind === 'list') throw invalidPointInput(`${file}: PLY vertex property ${axis} is a list`);
    return i;
  };
  return [find('x'), find('y'), find('z')];
}

/** What a data-section reader works on: it fills `points` from the `vertex` element's x/y/z. */
interface Body {
  readonly bytes: Uint8Array;
  readonly header: Header;
  readonly vertex: Element;
  /** Property indices of x, y and z in the vertex element. */
  readonly axes: readonly number[];
  readonly points: Float32Array;
  readonly file: string;
}

/** Parses a PLY file's vertex positions into float32 (values are read as float64 first, as Open3D does). */
export function parsePly(bytes: Uint8Array, file: string, maxPoints: number): PointCloud {
  const header = parseHeader(bytes, file);
  const vertex = header.elements.find((e) => e.name === 'vertex');
  if (vertex === undefined) throw invalidPointInput(`${file}: PLY file has no vertex element`);
  if (vertex.count > maxPoints) throw tooManyPoints(file, vertex.count, maxPoints);
  const body: Body = {
    bytes,
    header,
    vertex,
    axes: xyzIndices(vertex, file),
    points: new Float32Array(vertex.count * 3),
    file,
  };
  if (header.format === 'ascii') readAscii(body);
  else readBinary(body);
  return { points: body.points, count: vertex.count };
}

function readBinary({ bytes, header, vertex, axes, points, file }: Body): void {
  const little = header.format === 'binary_little_endian';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const truncated = (what: string): never => {
    throw invalidPointInput(`${file}: binary PLY data ends inside ${what} (truncated file)`);
  };
  let offset = header.dataStart;
  for (const element of header.elements) {
    const allScalar = element.properties.every((p) => p.kind === 'scalar');
    if (element !== vertex && allScalar) {
      // Fixed-size rows: skip the whole element at once.
      const stride = element.properties.reduce((s, p) => s + (p.kind === 'scalar' ? SIZES[p.type] : 0), 0);
      offset += stride * element.count;
      if (offset > bytes.length) truncated(`element ${element.name}`);
      continue;
    }
    const offsets = new Array<number>(element.properties.length).fill(0);
    for (let row = 0; row < element.count; row++) {
      element.properties.forEach((p, k) => {
        offsets[k] = offset;
        if (p.kind === 'scalar') {
          offset += SIZES[p.type];
        } else {
          const countSize = SIZES[p.countType];
          if (offset + countSize > bytes.length) truncated(`element ${element.name}`);
          const n = listLength(readScalar(view, offset, p.countType, little), p.name, file);
          offset += countSize + n * SIZES[p.itemType];
        }
      });
      if (offset > bytes.length) truncated(`${element.name} ${row} of ${element.count}`);
      if (element === vertex) {
        for (let a = 0; a < 3; a++) {
          const k = axes[a] ?? 0;
          const p = element.properties[k];
          if (p?.kind === 'scalar') points[row * 3 + a] = readScalar(view, offsets[k] ?? 0, p.type, little);
        }
      }
    }
    // Elements after the vertices are irrelevant; stop reading.
    if (element === vertex) return;
  }
}

function readAscii({ bytes, header, vertex, axes, points, file }: Body): void {
  const text = new TextDecoder('latin1').decode(bytes.subarray(header.dataStart));
  const tokens = text.split(/\s+/).filter((t) => t !== '');
  let at = 0;
  const next = (what: string): number => {
    const token = tokens[at++];
    if (token === undefined)
      throw invalidPointInput(`${file}: ascii PLY data ends inside ${what} (truncated file)`);
    const value = parseCoordinate(token);
    if (value === undefined) {
      throw invalidPointInput(
        `${file}: ascii PLY value ${JSON.stringify(token.slice(0, 32))} is not a number`,
      );
    }
    return value;
  };
  for (const element of header.elements) {
    for (let row = 0; row < element.count; row++) {
      const values: number[] = [];
      for (const p of element.properties) {
        const where = `${element.name} ${row}`;
        if (p.kind === 'scalar') values.push(next(where));
        else {
          const n = listLength(next(where), p.name, file);
          for (let i = 0; i < n; i++) next(where);
          values.push(Number.NaN);
        }
      }
      if (element === vertex) {
        for (let a = 0; a < 3; a++) points[row * 3 + a] = values[axes[a] ?? 0] ?? Number.NaN;
      }
    }
    // Elements after the vertices are irrelevant; stop reading.
    if (element === vertex) return;
  }
}
