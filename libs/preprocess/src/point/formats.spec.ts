import { readFileSync } from 'node:fs';
import { encodeNpy, float32Tensor } from '@imagebind-llm/checkpoint';
import { DomainError } from '@imagebind-llm/errors';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { groupPointCloud } from './group';
import { parsePointCloud, pointCloudFormatOf, type LoadPointCloudOptions } from './load';
import { pointGroupingMinPoints } from './point-cloud';

const SMALL: LoadPointCloudOptions = { minPoints: 1 };
const POINTS = [
  [1, 2, 3],
  [-1.5, 0.25, 1e-3],
  [4, -5, 6.5],
];

function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Binary PLY: vertex (double x, uchar red, float y, short z-as-int?, float z) then a face list. */
function binaryPly(little: boolean, vertexCount = POINTS.length, dataPoints = POINTS): Uint8Array {
  const header = text(
    'ply\n' +
      `format binary_${little ? 'little' : 'big'}_endian 1.0\n` +
      'comment made by a test\n' +
      'element face 1\n' +
      'property list uchar int vertex_indices\n' +
      `element vertex ${vertexCount}\n` +
      'property double x\n' +
      'property uchar red\n' +
      'property float y\n' +
      'property list uchar float extra\n' +
      'property float z\n' +
      'end_header\n',
  );
  const face = new DataView(new ArrayBuffer(1 + 3 * 4));
  face.setUint8(0, 3);
  for (let i = 0; i < 3; i++) face.setInt32(1 + i * 4, i, little);
  const rows = dataPoints.map(([x, y, z], i) => {
    const v = new DataView(new ArrayBuffer(8 + 1 + 4 + 1 + 2 * 4 + 4));
    v.setFloat64(0, x ?? 0, little);
    v.setUint8(8, 200);
    v.setFloat32(9, y ?? 0, little);
    v.setUint8(13, 2);
    v.setFloat32(14, i, little);
    v.setFloat32(18, -i, little);
    v.setFloat32(22, z ?? 0, little);
    return new Uint8Array(v.buffer);
  });
  return concat(header, new Uint8Array(face.buffer), ...rows);
}

function expectPoints(points: Float32Array, want: number[][] = POINTS): void {
  expect(Array.from(points)).toEqual(Array.from(Float32Array.from(want.flat())));
}

async function domainError(p: Promise<unknown>): Promise<DomainError> {
  try {
    await p;
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    return error as DomainError;
  }
  throw new Error('expected a DomainError');
}

describe('point-cloud formats', () => {
  it('PLY ascii with extra properties and a face element', async () => {
    const ply =
      'ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n' +
      'property uchar red\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n' +
      POINTS.map((p) => `${p.join(' ')} 255`).join('\n') +
      '\n3 0 1 2\n';
    const cloud = await parsePointCloud(text(ply), 'a.ply', SMALL);
    expect(cloud.count).toBe(3);
    expectPoints(cloud.points);
  });

  it.each([true, false])(
    'PLY binary (little endian: %s), mixed types, lists before and inside the vertices',
    async (little) => {
      const cloud = await parsePointCloud(binaryPly(little), 'b.PLY', SMALL);
      expectPoints(cloud.points);
    },
  );

  it('OBJ v lines, ignoring vn/vt/f', async () => {
    const obj = '# comment\nv 1 2 3\nvn 0 0 1\nvt 0.5 0.5\nv -1.5 0.25 0.001\nv 4 -5 6.5 1.0\nf 1 2 3\n';
    expectPoints((await parsePointCloud(text(obj), 'm.obj', SMALL)).points);
  });

  it('XYZ columns (extra columns ignored) and PTS with a count line', async () => {
    const xyz = POINTS.map((p) => `${p.join('\t')} 0.5 10 20 30`).join('\r\n');
    expectPoints((await parsePointCloud(text(xyz), 'p.xyz', SMALL)).points);
    expectPoints((await parsePointCloud(text(`3\n${xyz}\n`), 'p.pts', SMALL)).points);
  });

  it('PCD ascii and binary (x y z plus an rgb field)', async () => {
    const head = (data: string): string =>
      '# .PCD v0.7\nVERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 8 4\nTYPE F F F U\nCOUNT 1 1 1 1\n' +
      `WIDTH 3\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 3\nDATA ${data}\n`;
    const ascii = head('ascii') + POINTS.map((p) => `${p.join(' ')} 4278190080`).join('\n') + '\n';
    expectPoints((await parsePointCloud(text(ascii), 'c.pcd', SMALL)).points);
    const rows = POINTS.map(([x, y, z]) => {
      const v = new DataView(new ArrayBuffer(20));
      v.setFloat32(0, x ?? 0, true);
      v.setFloat32(4, y ?? 0, true);
      v.setFloat64(8, z ?? 0, true);
      v.setUint32(16, 7, true);
      return new Uint8Array(v.buffer);
    });
    expectPoints((await parsePointCloud(concat(text(head('binary')), ...rows), 'c.pcd', SMALL)).points);
    const compressed = await domainError(
      parsePointCloud(concat(text(head('binary_compressed')), new Uint8Array(16)), 'c.pcd', SMALL),
    );
    expect(compressed.code).toBe('UNSUPPORTED_MEDIA');
    expect(compressed.message).toMatch(/binary_compressed/);
  });

  it('NPY float64 is cast to float32; the golden .pt loads from memory', async () => {
    const f64 = new Float64Array(POINTS.flat());
    const npy = encodeNpy({ dtype: 'float64', shape: [3, 3], data: new Uint8Array(f64.buffer) });
    expectPoints((await parsePointCloud(npy, 'x.npy', SMALL)).points);
    const pt = readFileSync(goldenPath('inputs', 'airplane.pt'));
    expect((await parsePointCloud(pt, 'airplane.pt')).count).toBe(8192);
  });
});

describe('hostile point-cloud input', () => {
  it('unknown extension → UNSUPPORTED_MEDIA', async () => {
    expect(() => pointCloudFormatOf('cloud.las')).toThrow(/unsupported point-cloud file type \.las/);
    expect((await domainError(parsePointCloud(text('1 2 3'), 'cloud'))).code).toBe('UNSUPPORTED_MEDIA');
  });

  it('extension vs content mismatch → UNSUPPORTED_MEDIA naming both', async () => {
    const pt = readFileSync(goldenPath('inputs', 'airplane.pt'));
    const e1 = await domainError(parsePointCloud(pt, 'airplane.npy'));
    expect(e1.code).toBe('UNSUPPORTED_MEDIA');
    expect(e1.message).toMatch(/\.npy .* zip archive/);
    const e2 = await domainError(parsePointCloud(binaryPly(true), 'x.xyz', SMALL));
    expect(e2.code).toBe('UNSUPPORTED_MEDIA');
    const e3 = await domainError(parsePointCloud(text('v 1 2 3\n'), 'x.ply', SMALL));
    expect(e3.code).toBe('UNSUPPORTED_MEDIA');
    const e4 = await domainError(parsePointCloud(text('not a zip'), 'x.pt', SMALL));
    expect(e4.code).toBe('UNSUPPORTED_MEDIA');
  });

  it('empty file → INVALID_INPUT', async () => {
    for (const name of ['e.ply', 'e.npy', 'e.xyz', 'e.pt']) {
      expect((await domainError(parsePointCloud(new Uint8Array(0), name))).code).toBe('INVALID_INPUT');
    }
  });

  it('truncated binary PLY → INVALID_INPUT', async () => {
    const full = binaryPly(true);
    const e = await domainError(parsePointCloud(full.subarray(0, full.length - 5), 't.ply', SMALL));
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.message).toMatch(/truncated/);
    const noEnd = await domainError(
      parsePointCloud(text('ply\nformat ascii 1.0\nelement vertex 3\n'), 't.ply', SMALL),
    );
    expect(noEnd.code).toBe('UNSUPPORTED_MEDIA');
  });

  it('NaN / Inf / float32-overflowing coordinates → INVALID_INPUT', async () => {
    for (const bad of ['nan', 'inf', '-Infinity', '1e300']) {
      const e = await domainError(parsePointCloud(text(`1 2 3\n4 ${bad} 6\n`), 'n.xyz', SMALL));
      expect(e.code).toBe('INVALID_INPUT');
      expect(e.message).toMatch(/point 1 has a non-finite y/);
    }
    const npy = encodeNpy(float32Tensor(Float32Array.from([0, 0, 0, Number.NaN, 0, 0]), [2, 3]));
    expect((await domainError(parsePointCloud(npy, 'n.npy', SMALL))).code).toBe('INVALID_INPUT');
  });

  it('garbage in a text format → INVALID_INPUT', async () => {
    expect((await domainError(parsePointCloud(text('1 2 3\nhello world !\n'), 'g.xyz', SMALL))).code).toBe(
      'INVALID_INPUT',
    );
    expect((await domainError(parsePointCloud(text('v 1 2\n'), 'g.obj', SMALL))).code).toBe('INVALID_INPUT');
  });

  it('fewer points than the encoder needs → INVALID_INPUT (the minimum the caller derives from the graph)', async () => {
    const two = text('1 2 3\n4 5 6\n');
    const e = await domainError(
      parsePointCloud(two, 'few.xyz', { minPoints: pointGroupingMinPoints({ numGroup: 96, groupSize: 12 }) }),
    );
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.message).toMatch(/fewer than the 96/);
    // Without a minimum any non-empty cloud loads; the empty one never does.
    expect((await parsePointCloud(two, 'few.xyz')).count).toBe(2);
    expect((await domainError(parsePointCloud(text('\n'), 'none.xyz'))).code).toBe('INVALID_INPUT');
    expect(() =>
      groupPointCloud({ points: new Float32Array(100 * 3), count: 100 }, { numGroup: 512, groupSize: 32 }),
    ).toThrow(DomainError);
    expect(() =>
      groupPointCloud({ points: new Float32Array(20 * 3), count: 20 }, { numGroup: 4, groupSize: 32 }),
    ).toThrow(/at least 32/);
  });

  it('too many points → PAYLOAD_TOO_LARGE from the header, before parsing the data', async () => {
    const huge = text(
      'ply\nformat binary_little_endian 1.0\nelement vertex 20000000\nproperty float x\nproperty float y\nproperty float z\nend_header\n',
    );
    const e = await domainError(parsePointCloud(huge, 'h.ply'));
    expect(e.code).toBe('PAYLOAD_TOO_LARGE');
    const pcd = text(
      'VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 20000000\nHEIGHT 1\nPOINTS 20000000\nDATA binary\n',
    );
    expect((await domainError(parsePointCloud(pcd, 'h.pcd'))).code).toBe('PAYLOAD_TOO_LARGE');
    const npyHeaderOnly = encodeNpy(float32Tensor(new Float32Array(30), [10, 3]));
    expect(
      (await domainError(parsePointCloud(npyHeaderOnly, 'h.npy', { maxPoints: 5, minPoints: 1 }))).code,
    ).toBe('PAYLOAD_TOO_LARGE');
    expect(
      (await domainError(parsePointCloud(text('1 2 3\n'.repeat(6)), 'h.xyz', { maxPoints: 5, minPoints: 1 })))
        .code,
    ).toBe('PAYLOAD_TOO_LARGE');
    expect((await domainError(parsePointCloud(text('99999999\n1 2 3\n'), 'h.pts'))).code).toBe(
      'PAYLOAD_TOO_LARGE',
    );
  });

  it('tensors that are not [N, 3] → INVALID_INPUT', async () => {
    const npy = encodeNpy(float32Tensor(new Float32Array(12), [2, 6]));
    const e = await domainError(parsePointCloud(npy, 's.npy', SMALL));
    expect(e.code).toBe('INVALID_INPUT');
    expect(e.message).toMatch(/shape \[N, 3\]/);
  });
});
