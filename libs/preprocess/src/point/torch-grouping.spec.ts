import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNpy, type RawTensor } from '@imagebind-llm/checkpoint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mediaNativeStatus, setMediaNativeEnabled } from '../native/media-native';
import { farthestPointSample } from './fps';
import { fmaf, knnIndices } from './group';
import { TorchSmallestK } from './torch-topk';

// Made by real torch 1.13 (CPU, float32, one thread, OpenBLAS) from Point-BERT's own formulas:
// tools/golden/point-grouping.py. The clouds are full of exact duplicates and near-equal distances.
const DIR = join(__dirname, '..', '..', 'test-data', 'point-grouping');

interface GroupingCase {
  readonly name: string;
  readonly points: number;
  readonly num_group: number;
  readonly group_size: number;
  readonly groups: number;
  readonly topk_path: string;
}

const meta = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as {
  cases: GroupingCase[];
};

function npy(file: string): RawTensor {
  return parseNpy(readFileSync(join(DIR, file)), file);
}

function int64s(t: RawTensor): number[] {
  return Array.from(new BigInt64Array(t.data.slice().buffer), Number);
}

// Both implementations: the ibllm_media addon's C (point.c; media-native.spec fails when it is not
// built) and the TypeScript path.
const PATHS = [
  { path: 'C addon', native: true },
  { path: 'TypeScript', native: false },
] as const;
const CASES = PATHS.flatMap((p) => meta.cases.map((c) => ({ ...c, ...p })));

describe.each(CASES)('torch grouping reference $name ($path)', (c) => {
  beforeAll(() => {
    setMediaNativeEnabled(c.native);
    if (c.native) expect(mediaNativeStatus().point, 'ibllm_media is not built').toBe(true);
  });
  afterAll(() => setMediaNativeEnabled(true));
  const cloud = npy(`${c.name}.points.npy`);
  const points = new Float32Array(cloud.data.slice().buffer);

  it('FPS picks torch’s centres in torch’s order (first index among equal maxima)', () => {
    expect(cloud.shape).toEqual([c.points, 3]);
    const want = int64s(npy(`${c.name}.fps.npy`));
    expect(Array.from(farthestPointSample(points, c.points, c.num_group, 0))).toEqual(want);
  });

  it(`kNN groups equal torch.topk’s exactly, members and order (${c.topk_path})`, () => {
    const fps = int64s(npy(`${c.name}.fps.npy`)).slice(0, c.groups);
    const centers = new Float32Array(c.groups * 3);
    fps.forEach((idx, g) => centers.set(points.subarray(idx * 3, idx * 3 + 3), g * 3));
    const want = npy(`${c.name}.groups.npy`);
    expect(want.shape).toEqual([c.groups, c.group_size]);
    const got = knnIndices(points, c.points, centers, c.groups, c.group_size);
    expect(Array.from(got)).toEqual(int64s(want));
  });
});

describe('TorchSmallestK', () => {
  // Expected rows printed by torch 1.13: torch.topk(row, k, largest=False, sorted=False)[1].
  it('keeps libstdc++’s choice among ties (partial_sort path), not the lowest indices', () => {
    const row = new Float32Array(200).fill(5);
    row[150] = 1;
    const out = new Int32Array(2);
    new TorchSmallestK(200).select(row, 200, 2, out, 0);
    expect(Array.from(out)).toEqual([150, 0]);
  });

  it('returns introselect’s members and order when k·64 > n (nth_element path)', () => {
    const row = new Float32Array(100).fill(5);
    row[50] = 1;
    row[70] = 1;
    const out = new Int32Array(32);
    new TorchSmallestK(100).select(row, 100, 32, out, 0);
    expect(Array.from(out)).toEqual([
      75, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74,
      90, 93, 92, 91, 94, 89,
    ]);
  });
});

describe('fmaf', () => {
  it('rounds a·b + c once, also where the double sum lands halfway between two float32 values', () => {
    expect(fmaf(3, 5, 7)).toBe(22);
    // a·b = 1 + 2⁻²⁴ − 2⁻⁴⁷ and c = 2⁻⁴⁷ + 2⁻⁷⁰: the exact sum 1 + 2⁻²⁴ + 2⁻⁷⁰ lies just above the
    // float32 midpoint between 1 and 1 + 2⁻²³, but in a double it is the midpoint itself, which
    // rounds to even (1). Fused, it rounds up.
    const a = Math.fround(1 + 2 ** -23);
    const b = Math.fround(1 - 2 ** -24);
    const c = Math.fround(2 ** -47 + 2 ** -70);
    expect(Math.fround(a * b + c)).toBe(1);
    expect(fmaf(a, b, c)).toBe(Math.fround(1 + 2 ** -23));
    expect(fmaf(a, b, -c)).toBe(1);
  });
});
