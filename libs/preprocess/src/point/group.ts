import { farthestPointSample } from './fps';
import { POINT_GROUP_SIZE, POINT_NUM_GROUP, invalidPointInput, type PointCloud } from './point-cloud';

export interface GroupOptions {
  /** Group centres chosen by FPS; default 512. */
  readonly numGroup?: number;
  /** Neighbours per centre (the centre included); default 32. */
  readonly groupSize?: number;
  /** FPS start index; default 0 (the official code starts at a random point, B10). */
  readonly fpsStart?: number;
}

/** Point-BERT's `Group` output for one cloud (MODEL_SPEC §3.7 steps 1–2). */
export interface PointGroups {
  readonly numGroup: number;
  readonly groupSize: number;
  /** `[numGroup]` FPS indices into the cloud, in selection order. */
  readonly centerIndices: Int32Array;
  /** `[numGroup, 3]` centre coordinates. */
  readonly centers: Float32Array;
  /** `[numGroup, groupSize]` neighbour indices, nearest first (ties by index). */
  readonly groupIndices: Int32Array;
  /** `[numGroup, groupSize, 3]` neighbour coordinates minus their centre. */
  readonly neighborhoods: Float32Array;
}

/**
 * kNN of each centre by the official `square_distance` formula `|c|² + |p|² − 2 c·p` in float32
 * (`-2·(c·p)`, then `+ |c|²`, then `+ |p|²`, each rounded), keeping the `groupSize` smallest
 * (sorted ascending; equal distances keep the lower index). Near-ties at the 32nd place depend on
 * float32 rounding; the fused dot product reproduces the golden groups, a plain float32 dot product
 * flips one boundary point in the permuted airplane.
 */
export function knnIndices(
  points: Float32Array,
  count: number,
  centers: Float32Array,
  numCenters: number,
  groupSize: number,
): Int32Array {
  if (!Number.isInteger(groupSize) || groupSize < 1 || groupSize > count) {
    throw invalidPointInput(`cannot take ${groupSize} nearest neighbours out of ${count} points`);
  }
  const f = Math.fround;
  const norms = new Float32Array(count);
  for (let j = 0, o = 0; j < count; j++, o += 3) {
    const x = points[o] ?? 0;
    const y = points[o + 1] ?? 0;
    const z = points[o + 2] ?? 0;
    norms[j] = f(f(f(x * x) + f(y * y)) + f(z * z));
  }
  const out = new Int32Array(numCenters * groupSize);
  const bestD = new Float64Array(groupSize);
  const bestI = new Int32Array(groupSize);
  for (let g = 0; g < numCenters; g++) {
    const cx = centers[g * 3] ?? 0;
    const cy = centers[g * 3 + 1] ?? 0;
    const cz = centers[g * 3 + 2] ?? 0;
    const cn = f(f(f(cx * cx) + f(cy * cy)) + f(cz * cz));
    let filled = 0;
    let worst = Number.POSITIVE_INFINITY;
    for (let j = 0, o = 0; j < count; j++, o += 3) {
      // c·p accumulated x, y, z with fused multiply-adds, as float32 GEMM kernels do (a float32
      // product is exact in float64, so `f(a * b + acc)` is the fused result up to a rare double rounding).
      const dot = f(cz * (points[o + 2] ?? 0) + f(cy * (points[o + 1] ?? 0) + f(cx * (points[o] ?? 0))));
      const d = f(f(f(-2 * dot) + cn) + (norms[j] ?? 0));
      if (filled === groupSize && d >= worst) continue;
      // Insertion into the sorted buffer; a later index never displaces an equal earlier one.
      let k = filled < groupSize ? filled++ : groupSize - 1;
      while (k > 0 && (bestD[k - 1] ?? 0) > d) {
        bestD[k] = bestD[k - 1] ?? 0;
        bestI[k] = bestI[k - 1] ?? 0;
        k--;
      }
      bestD[k] = d;
      bestI[k] = j;
      if (filled === groupSize) worst = bestD[groupSize - 1] ?? 0;
    }
    out.set(bestI, g * groupSize);
  }
  return out;
}

/**
 * FPS centres + kNN neighbourhoods re-centred on their centre, as the point encoder's `Group`
 * module computes them before the mini-PointNet.
 */
export function groupPointCloud(cloud: PointCloud, options: GroupOptions = {}): PointGroups {
  const numGroup = options.numGroup ?? POINT_NUM_GROUP;
  const groupSize = options.groupSize ?? POINT_GROUP_SIZE;
  const { points, count } = cloud;
  if (count < numGroup || count < groupSize) {
    throw invalidPointInput(
      `the point cloud has ${count} points; grouping needs at least ${Math.max(numGroup, groupSize)} ` +
        `(${numGroup} centres, ${groupSize} neighbours each)`,
      { count },
    );
  }
  const centerIndices = farthestPointSample(points, count, numGroup, options.fpsStart ?? 0);
  const centers = new Float32Array(numGroup * 3);
  centerIndices.forEach((idx, g) => centers.set(points.subarray(idx * 3, idx * 3 + 3), g * 3));
  const groupIndices = knnIndices(points, count, centers, numGroup, groupSize);
  const neighborhoods = new Float32Array(numGroup * groupSize * 3);
  for (let g = 0; g < numGroup; g++) {
    for (let k = 0; k < groupSize; k++) {
      const p = groupIndices[g * groupSize + k] ?? 0;
      const o = (g * groupSize + k) * 3;
      for (let a = 0; a < 3; a++) neighborhoods[o + a] = (points[p * 3 + a] ?? 0) - (centers[g * 3 + a] ?? 0);
    }
  }
  return { numGroup, groupSize, centerIndices, centers, groupIndices, neighborhoods };
}
