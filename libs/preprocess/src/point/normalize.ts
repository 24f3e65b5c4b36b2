import { farthestPointSample } from './fps';
import { POINT_TRAIN_POINTS, invalidPointInput, type PointCloud } from './point-cloud';

export interface NormalizeOptions {
  /** Clouds with more points are reduced to this many by FPS from index 0; default 8192. Smaller clouds are kept whole. */
  readonly numPoints?: number;
  /** Subtract the mean point; default true. */
  readonly centre?: boolean;
  /** Divide by the largest distance from the origin (after centring); default true. */
  readonly unitSphere?: boolean;
}

/**
 * The Point-BERT/ULIP convention the encoder was trained on (MODEL_SPEC §2.5, B11): FPS-sample to
 * 8192 points, centre, scale into the unit sphere. The official loader does none of this; it is
 * opt-in. Sampling runs first, on the raw coordinates, as ULIP's loader does.
 */
export function normalizePointCloud(cloud: PointCloud, options: NormalizeOptions = {}): PointCloud {
  const numPoints = options.numPoints ?? POINT_TRAIN_POINTS;
  let { points, count } = cloud;
  if (count > numPoints) {
    const keep = farthestPointSample(points, count, numPoints, 0);
    const sampled = new Float32Array(numPoints * 3);
    keep.forEach((idx, i) => sampled.set(points.subarray(idx * 3, idx * 3 + 3), i * 3));
    points = sampled;
    count = numPoints;
  } else {
    points = points.slice(0, count * 3);
  }
  if (options.centre ?? true) {
    const mean = [0, 0, 0];
    for (let i = 0; i < count * 3; i++) mean[i % 3] = (mean[i % 3] ?? 0) + (points[i] ?? 0);
    for (let i = 0; i < count * 3; i++) points[i] = (points[i] ?? 0) - (mean[i % 3] ?? 0) / count;
  }
  if (options.unitSphere ?? true) {
    let maxSq = 0;
    for (let o = 0; o < count * 3; o += 3) {
      const x = points[o] ?? 0;
      const y = points[o + 1] ?? 0;
      const z = points[o + 2] ?? 0;
      maxSq = Math.max(maxSq, x * x + y * y + z * z);
    }
    if (!(maxSq > 0) || !Number.isFinite(maxSq)) {
      throw invalidPointInput(
        'the point cloud is degenerate (all points coincide); it cannot be scaled to the unit sphere',
      );
    }
    const radius = Math.sqrt(maxSq);
    for (let i = 0; i < count * 3; i++) points[i] = (points[i] ?? 0) / radius;
  }
  return { points, count };
}
