import { describe, expect, it } from 'vitest';
import { mayPreview, normaliseCloud, parsePointCloud } from './pointcloud';

function points(result: ReturnType<typeof parsePointCloud>): number[] {
  if (result.kind !== 'points') throw new Error(`expected points, got ${JSON.stringify(result)}`);
  return Array.from(result.cloud.positions);
}

describe('point-cloud preview parsing', () => {
  it('reads .xyz rows with any separators, skipping comments, counts and extra columns', () => {
    const text = '# a comment\n3\n0 0 0\n2,0,0 255 0 0\n\n1;2;0\nnot a point\n';
    const result = parsePointCloud('xyz', text);
    expect(result.kind).toBe('points');
    if (result.kind !== 'points') return;
    expect(result.cloud.count).toBe(3);
    expect(result.cloud.totalPoints).toBe(3);
    // Centred on the bounding box (1, 1, 0), scaled so the farthest point is at radius 1.
    const r = Math.SQRT2;
    const expected = [-1 / r, -1 / r, 0, 1 / r, -1 / r, 0, 0, 1 / r, 0];
    points(result).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
  });

  it('treats .txt and .pts like .xyz', () => {
    expect(points(parsePointCloud('txt', '1 2 3\n4 5 6\n'))).toHaveLength(6);
    expect(points(parsePointCloud('pts', '2\n1 2 3 0.5\n4 5 6 0.5\n'))).toHaveLength(6);
  });

  it('reads ASCII PLY with other properties, a face element and elements before the vertices', () => {
    const ply = [
      'ply',
      'format ascii 1.0',
      'comment made by hand',
      'element camera 1',
      'property float fov',
      'element vertex 3',
      'property uchar red',
      'property float z',
      'property float y',
      'property float x',
      'element face 1',
      'property list uchar int vertex_indices',
      'end_header',
      '60',
      '0 1 0 0',
      '0 -1 0 0',
      '0 0 2 0',
      '3 0 1 2',
    ].join('\n');
    const result = parsePointCloud('ply', ply);
    expect(result.kind).toBe('points');
    if (result.kind !== 'points') return;
    expect(result.cloud.count).toBe(3);
    // x is the last column: all zero; y spans 0..2 and z spans -1..1.
    const p = points(result);
    expect(p.filter((_, i) => i % 3 === 0).every((x) => x === 0)).toBe(true);
  });

  it('says binary PLY and other formats have no preview, and explains bad files', () => {
    const binary =
      'ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nend_header\n\u0000\u0001';
    expect(parsePointCloud('ply', binary)).toEqual({ kind: 'unsupported', reason: 'binary PLY' });
    expect(parsePointCloud('npy', '')).toMatchObject({ kind: 'unsupported' });
    expect(parsePointCloud('ply', 'hello')).toMatchObject({ kind: 'error' });
    const errorOf = (ext: string, text: string): string => {
      const result = parsePointCloud(ext, text);
      return result.kind === 'error' ? result.message : `not an error: ${result.kind}`;
    };
    expect(errorOf('ply', 'ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\n')).toMatch(
      /end_header/,
    );
    const header =
      'ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n';
    expect(errorOf('ply', `${header}end_header\n1 2 3\n`)).toMatch(/promises 2 vertices, the file has 1/);
    expect(errorOf('ply', `${header}end_header\n1 2 3\n4 five 6\n`)).toMatch(/vertex 2 is not numeric/);
    expect(parsePointCloud('xyz', 'just words\n')).toMatchObject({ kind: 'error' });
    expect(mayPreview('ply')).toBe(true);
    expect(mayPreview('pcd')).toBe(false);
  });

  it('thins big clouds evenly down to the preview budget', () => {
    const xyz = Array.from({ length: 1000 * 3 }, (_, i) => (i % 3 === 0 ? i : 0));
    const cloud = normaliseCloud(xyz, 100);
    expect(cloud.count).toBe(100);
    expect(cloud.totalPoints).toBe(1000);
    const radius = Math.max(...Array.from(cloud.positions).map(Math.abs));
    expect(radius).toBeCloseTo(1, 2);
  });

  it('keeps a single point at the origin', () => {
    const cloud = normaliseCloud([5, 5, 5]);
    expect(Array.from(cloud.positions)).toEqual([0, 0, 0]);
  });
});
