import { invalidPointInput, parseCoordinate, tooManyPoints, type PointCloud } from '../point-cloud';

/**
 * Text point formats:
 * - `.obj`: the `v x y z` lines (MODEL_SPEC §2.5 keeps lines starting with "v " and takes fields
 *   1..3); faces, normals and texture coordinates are ignored;
 * - `.xyz` / `.pts`: one point per line, whitespace-separated columns, the first three are x, y, z
 *   (further columns such as intensity or colour are ignored). A `.pts` file may start with a
 *   line holding only the point count, as Open3D writes it.
 * Blank lines and `#` comments are skipped; any other line that does not start with three numbers
 * is an error (Open3D would skip it silently).
 */

function parseNumber(token: string | undefined, file: string, line: number): number {
  if (token === undefined) throw invalidPointInput(`${file}: line ${line} has fewer than 3 coordinates`);
  const value = parseCoordinate(token);
  if (value === undefined) {
    throw invalidPointInput(`${file}: line ${line}: ${JSON.stringify(token.slice(0, 32))} is not a number`);
  }
  return value;
}

class PointBuffer {
  private data = new Float32Array(3 * 1024);
  count = 0;

  constructor(
    private readonly file: string,
    private readonly maxPoints: number,
  ) {}

  push(x: number, y: number, z: number): void {
    if (this.count >= this.maxPoints) throw tooManyPoints(this.file, this.count + 1, this.maxPoints);
    if (this.count * 3 + 3 > this.data.length) {
      const grown = new Float32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    const at = this.count * 3;
    this.data[at] = x;
    this.data[at + 1] = y;
    this.data[at + 2] = z;
    this.count++;
  }

  finish(): PointCloud {
    return { points: this.data.slice(0, this.count * 3), count: this.count };
  }
}

function lines(bytes: Uint8Array, file: string): string[] {
  if (bytes.includes(0)) throw invalidPointInput(`${file}: binary data in a text point-cloud file`);
  return new TextDecoder('utf-8').decode(bytes).split('\n');
}

export function parseObj(bytes: Uint8Array, file: string, maxPoints: number): PointCloud {
  const out = new PointBuffer(file, maxPoints);
  lines(bytes, file).forEach((raw, i) => {
    if (!/^v[ \t]/.test(raw)) return;
    const fields = raw.trim().split(/\s+/);
    out.push(
      parseNumber(fields[1], file, i + 1),
      parseNumber(fields[2], file, i + 1),
      parseNumber(fields[3], file, i + 1),
    );
  });
  return out.finish();
}

export function parseXyz(
  bytes: Uint8Array,
  file: string,
  maxPoints: number,
  allowCountLine: boolean,
): PointCloud {
  const out = new PointBuffer(file, maxPoints);
  let first = true;
  lines(bytes, file).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    if (first && allowCountLine && fields.length === 1 && /^\d+$/.test(line)) {
      first = false;
      const declared = Number(line);
      if (declared > maxPoints) throw tooManyPoints(file, declared, maxPoints);
      return;
    }
    first = false;
    out.push(
      parseNumber(fields[0], file, i + 1),
      parseNumber(fields[1], file, i + 1),
      parseNumber(fields[2], file, i + 1),
    );
  });
  return out.finish();
}
