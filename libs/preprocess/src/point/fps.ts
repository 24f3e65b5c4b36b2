import { DomainError } from '@imagebind-llm/errors';

import { mediaNative } from '../native/media-native';

/**
 * Farthest-point sampling as Point-BERT's `misc.fps` computes it (MODEL_SPEC §3.7), made
 * deterministic (B10): it starts at `start` (default index 0) instead of a random point.
 *
 * Arithmetic follows the official float32 code: `d_j = Σ (X_j − X_far)²` with each step rounded to
 * float32 and summed x, y, z in order; `dist = min(dist, d)` starting from 1e10; the next centre is
 * the first index of the maximum distance. O(N · numSamples): in C when the ibllm_media addon is
 * built (the same float32 steps, so the same indices), else with typed arrays here.
 *
 * @param points `[count, 3]` float32, row-major
 * @returns the selected indices in selection order
 */
export function farthestPointSample(
  points: Float32Array,
  count: number,
  numSamples: number,
  start = 0,
): Int32Array {
  if (points.length < count * 3) throw new Error(`points holds ${points.length / 3} points, not ${count}`);
  if (!Number.isInteger(numSamples) || numSamples < 1 || numSamples > count) {
    throw DomainError.invalidInput(`cannot pick ${numSamples} farthest points out of ${count}`);
  }
  if (!Number.isInteger(start) || start < 0 || start >= count) {
    throw DomainError.invalidInput(`FPS start index ${start} is outside [0, ${count})`);
  }
  const selected = new Int32Array(numSamples);
  const native = mediaNative();
  if (native !== undefined) {
    native.pointFps(points, count, numSamples, start, selected);
    return selected;
  }
  const f = Math.fround;
  const dist = new Float32Array(count).fill(1e10);
  let far = start;
  for (let s = 0; s < numSamples; s++) {
    selected[s] = far;
    const cx = points[far * 3] ?? 0;
    const cy = points[far * 3 + 1] ?? 0;
    const cz = points[far * 3 + 2] ?? 0;
    let best = -1;
    let bestIndex = 0;
    for (let j = 0, o = 0; j < count; j++, o += 3) {
      const dx = f((points[o] ?? 0) - cx);
      const dy = f((points[o + 1] ?? 0) - cy);
      const dz = f((points[o + 2] ?? 0) - cz);
      const d = f(f(f(dx * dx) + f(dy * dy)) + f(dz * dz));
      let current = dist[j] ?? 0;
      if (d < current) {
        dist[j] = d;
        current = d;
      }
      if (current > best) {
        best = current;
        bestIndex = j;
      }
    }
    far = bestIndex;
  }
  return selected;
}
