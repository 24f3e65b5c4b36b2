import { mediaNative } from '../native/media-native';
import { farthestPointSample } from './fps';
import { invalidPointInput, type PointCloud, type PointGrouping } from './point-cloud';
import { TorchSmallestK } from './torch-topk';

/**
 * `numGroup` centres chosen by FPS and `groupSize` neighbours per centre (the centre included):
 * the point graph's `neighborhood` dims, read from the model repository (no default here).
 */
export interface GroupOptions extends PointGrouping {
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
  /** `[numGroup, groupSize]` neighbour indices, each group in torch.topk's order (see knnIndices). */
  readonly groupIndices: Int32Array;
  /** `[numGroup, groupSize, 3]` neighbour coordinates minus their centre. */
  readonly neighborhoods: Float32Array;
}

/**
 * `fmaf(a, b, c)`: a·b + c rounded once to float32, as the FMA float32 GEMM kernels compute it.
 * The product of two float32 values is exact in a double, so only the sum rounds twice (to double,
 * then to float32); that can go wrong only when the double lands exactly halfway between two
 * float32 values, which the exact error of the double sum (TwoSum) then settles.
 */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = Math.fround(s);
  if (r === s) return r;
  const other = 2 * s - r;
  if (Math.fround(other) !== other) return r;
  const bp = s - p;
  const error = p - (s - bp) + (c - bp);
  if (error === 0) return r; // an exact tie: Math.fround already rounded it to even
  return error > 0 === other > r ? other : r;
}

/**
 * kNN of each centre as Point-BERT's `knn_point` computes it (MODEL_SPEC §3.7 step 2), reproducing
 * torch 1.13 on CPU in float32 bit for bit, ties included:
 * - `square_distance`: `-2·(c·p)`, then `+ |c|²`, then `+ |p|²`, each rounded to float32; the norms
 *   sum x, y, z in that order (torch's `sum` over 3 values); `c·p` is the float32 GEMM with K = 3,
 *   whose FMA kernels (OpenBLAS, as the golden set was made) compute fma(z, z', fma(y, y', x·x')).
 *   A plain float32 dot product flips a boundary point of the permuted airplane.
 * - `topk(largest=False, sorted=False)`: see TorchSmallestK; equal distances at the cut are kept or
 *   dropped as libstdc++'s heap / introselect leave them, and the order is torch's.
 * The ibllm_media addon, when built, runs the same steps in C (point.c).
 * @returns `[numCenters, groupSize]` indices, each group in torch's order
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
  const native = mediaNative();
  if (native !== undefined) {
    const out = new Int32Array(numCenters * groupSize);
    native.pointKnn(points, count, centers, numCenters, groupSize, out);
    return out;
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
  const row = new Float32Array(count);
  const topk = new TorchSmallestK(count);
  for (let g = 0; g < numCenters; g++) {
    const cx = centers[g * 3] ?? 0;
    const cy = centers[g * 3 + 1] ?? 0;
    const cz = centers[g * 3 + 2] ?? 0;
    const cn = f(f(f(cx * cx) + f(cy * cy)) + f(cz * cz));
    for (let j = 0, o = 0; j < count; j++, o += 3) {
      const dot = fmaf(cz, points[o + 2] ?? 0, fmaf(cy, points[o + 1] ?? 0, f(cx * (points[o] ?? 0))));
      row[j] = f(f(-2 * dot + cn) + (norms[j] ?? 0));
    }
    topk.select(row, count, groupSize, out, g * groupSize);
  }
  return out;
}

/**
 * FPS centres + kNN neighbourhoods re-centred on their centre, as the point encoder's `Group`
 * module computes them before the mini-PointNet.
 */
export function groupPointCloud(cloud: PointCloud, options: GroupOptions): PointGroups {
  const { numGroup, groupSize } = options;
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
