import { readFileSync } from 'node:fs';
import { parseNpy } from '@imagebind-llm/checkpoint';
import { goldenPath } from '@imagebind-llm/testing';
import { describe, expect, it } from 'vitest';
import { farthestPointSample } from './fps';
import { groupPointCloud } from './group';
import { loadPointCloudFile } from './load';
import { normalizePointCloud } from './normalize';

interface Output {
  readonly file: string;
  readonly shape: number[];
  readonly dtype: string;
}
interface Case {
  readonly id: string;
  readonly input?: string;
  readonly fps_start_index?: number;
  readonly outputs?: Record<string, Output>;
}

const manifest = JSON.parse(readFileSync(goldenPath('manifest.json'), 'utf8')) as {
  inputs: Record<string, { file: string }>;
  cases: Case[];
};

/** The golden checkpoint's Point-BERT grouping (its config; the official yaml has the same 512 / 32). */
const pointConfig = (
  JSON.parse(readFileSync(goldenPath('imagebind_config.json'), 'utf8')) as {
    point: { num_group: number; group_size: number };
  }
).point;
const GROUPING = { numGroup: pointConfig.num_group, groupSize: pointConfig.group_size };

function caseById(id: string): Case {
  const c = manifest.cases.find((x) => x.id === id);
  if (c === undefined) throw new Error(`manifest has no case ${id}`);
  return c;
}

function output(c: Case, key: string): Output {
  const o = c.outputs?.[key];
  if (o === undefined) throw new Error(`case ${c.id} has no output ${key}`);
  return o;
}

function npy(file: string): ReturnType<typeof parseNpy> {
  return parseNpy(readFileSync(goldenPath(file)), file);
}

function inputPath(c: Case): string {
  const input = manifest.inputs[c.input ?? ''];
  if (input === undefined) throw new Error(`case ${c.id}: unknown input ${c.input}`);
  return goldenPath(input.file);
}

describe.each(['airplane', 'airplane_perm'])(
  'point cloud %s (golden, official code with FPS from index 0)',
  (name) => {
    const pre = caseById(`preprocess/point/${name}`);
    const embed = caseById(`embed/point/${name}`);

    it('loads exactly the tensor the official loader produced', async () => {
      const expected = npy(output(pre, 'tensor').file);
      expect(expected.shape).toEqual([1, 8192, 3]);
      const cloud = await loadPointCloudFile(inputPath(pre));
      expect(cloud.count).toBe(8192);
      expect(Buffer.from(cloud.points.buffer, cloud.points.byteOffset, cloud.points.byteLength)).toEqual(
        Buffer.from(expected.data),
      );
    });

    it('FPS centres match exactly and kNN groups match (indices exact, neighbourhoods ≤ 1e-6)', async () => {
      expect(embed.fps_start_index).toBe(0);
      const cloud = await loadPointCloudFile(inputPath(pre));
      // No timing bound here (machines are noisy): bench/preprocess measures point clouds/s.
      const groups = groupPointCloud(cloud, GROUPING);

      const fps = npy(output(embed, 'fps_center_indices').file);
      expect(fps.dtype).toBe('int64');
      const wantFps = Array.from(new BigInt64Array(fps.data.slice().buffer), Number);
      expect(Array.from(groups.centerIndices)).toEqual(wantFps);

      const g = npy(output(embed, 'group_indices_sorted').file);
      expect(g.shape).toEqual([512, 32]);
      const wantGroups = new Int32Array(g.data.slice().buffer);
      let mismatched = 0;
      let maxDiff = 0;
      for (let c = 0; c < 512; c++) {
        const ours = Array.from(groups.groupIndices.subarray(c * 32, c * 32 + 32));
        const sorted = [...ours].sort((a, b) => a - b);
        const want = Array.from(wantGroups.subarray(c * 32, c * 32 + 32));
        if (sorted.join() !== want.join()) mismatched++;
        // Neighbourhood coordinates: ours against X[idx] − centre in float64.
        ours.forEach((p, k) => {
          for (let a = 0; a < 3; a++) {
            const ref = (cloud.points[p * 3 + a] ?? 0) - (groups.centers[c * 3 + a] ?? 0);
            const got = groups.neighborhoods[(c * 32 + k) * 3 + a] ?? 0;
            maxDiff = Math.max(maxDiff, Math.abs(ref - got));
          }
        });
        expect(groups.centers.subarray(c * 3, c * 3 + 3)).toEqual(
          cloud.points.subarray((wantFps[c] ?? 0) * 3, (wantFps[c] ?? 0) * 3 + 3),
        );
      }
      expect(mismatched).toBe(0);
      expect(maxDiff).toBeLessThanOrEqual(1e-6);
    });
  },
);

describe('normalisation option', () => {
  it('leaves the shipped (already normalised, 8192-point) example essentially unchanged', async () => {
    const pre = caseById('preprocess/point/airplane');
    const raw = await loadPointCloudFile(inputPath(pre));
    const norm = await loadPointCloudFile(inputPath(pre), { normalize: true });
    expect(norm.count).toBe(8192);
    let maxDiff = 0;
    for (let i = 0; i < raw.points.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs((raw.points[i] ?? 0) - (norm.points[i] ?? 0)));
    }
    expect(maxDiff).toBeLessThan(1e-5);
  });

  it('downsamples a large cloud by FPS and puts it in the unit sphere', async () => {
    const pre = caseById('preprocess/point/airplane');
    const raw = await loadPointCloudFile(inputPath(pre));
    const shifted = raw.points.map((v, i) => v * 7 + (i % 3 === 0 ? 3 : -2));
    const down = normalizePointCloud({ points: shifted, count: raw.count }, { numPoints: 1024 });
    expect(down.count).toBe(1024);
    const idx = farthestPointSample(shifted, raw.count, 1024);
    expect(idx[0]).toBe(0);
    let maxR = 0;
    const mean = [0, 0, 0];
    for (let i = 0; i < down.count; i++) {
      const [x, y, z] = [down.points[i * 3] ?? 0, down.points[i * 3 + 1] ?? 0, down.points[i * 3 + 2] ?? 0];
      maxR = Math.max(maxR, Math.hypot(x, y, z));
      mean[0] = (mean[0] ?? 0) + x / down.count;
      mean[1] = (mean[1] ?? 0) + y / down.count;
      mean[2] = (mean[2] ?? 0) + z / down.count;
    }
    expect(maxR).toBeCloseTo(1, 6);
    for (const m of mean) expect(Math.abs(m)).toBeLessThan(1e-6);
  });
});

describe('a random cloud at the official sizes', () => {
  it('FPS 8192 × 512 and kNN 512 × 32: every group starts with its own centre', () => {
    const n = 8192;
    const points = new Float32Array(n * 3);
    let seed = 12345;
    for (let i = 0; i < points.length; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      points[i] = seed / 2147483648 - 0.5;
    }
    const groups = groupPointCloud({ points, count: n }, { numGroup: 512, groupSize: 32 });
    expect(groups.neighborhoods.length).toBe(512 * 32 * 3);
    // Every centre is its own nearest neighbour.
    for (let c = 0; c < 512; c++) expect(groups.groupIndices[c * 32]).toBe(groups.centerIndices[c]);
  });
});
