import { describe, expect, it } from 'vitest';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ArrayToFloat16,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  int64ToFloat32,
  isTensorEntry,
  toFloat32,
  type RawTensor,
} from './tensor';
import { bytesOf } from './testing-fixtures';

describe('float16', () => {
  it('decodes known bit patterns exactly', () => {
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0xc000)).toBe(-2);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
  });

  it('round-trips every half through float32', () => {
    const wrong: number[] = [];
    for (let bits = 0; bits < 65536; bits++) {
      const value = float16BitsToFloat32(bits);
      const back = float32ToFloat16Bits(value);
      const ok = Number.isNaN(value) ? Number.isNaN(float16BitsToFloat32(back)) : back === bits;
      if (!ok) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });

  it('rounds to nearest, ties to even, like numpy', () => {
    // 1 + 2^-11 is exactly halfway between 1 and the next half (1 + 2^-10): ties go to even (1).
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even): rounds up.
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float32ToFloat16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // halfway to 65536 rounds to infinity
    expect(float32ToFloat16Bits(65519)).toBe(0x7bff);
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal
    expect(float32ToFloat16Bits(1.5 * 2 ** -25)).toBe(1);
    expect(float32ToFloat16Bits(-1e-10)).toBe(0x8000);
    expect(float32ToFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(Array.from(float32ArrayToFloat16([0.5, -3]))).toEqual([0x3800, 0xc200]);
  });
});

describe('bfloat16', () => {
  it('decodes and rounds to nearest even', () => {
    expect(bfloat16BitsToFloat32(0x3f80)).toBe(1);
    expect(bfloat16BitsToFloat32(0xc040)).toBe(-3);
    expect(float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBfloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie to even
    expect(float32ToBfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie to even (up)
    expect(float32ToBfloat16Bits(Infinity)).toBe(0x7f80);
    expect(bfloat16BitsToFloat32(float32ToBfloat16Bits(NaN))).toBeNaN();
  });
});

describe('int64ToFloat32', () => {
  it('rounds once, even above 2^53 where a double would round twice', () => {
    expect(int64ToFloat32(123n)).toBe(123);
    expect(int64ToFloat32(-(2n ** 40n) - 1n)).toBe(-(2 ** 40));
    // 2^60 + 2^36 + 1: halfway point 2^60+2^36 plus one, so float32 must round up to 2^60 + 2^37.
    // Via double: 2^60+2^36+1 -> 2^60+2^36 (tie) -> 2^60 (tie to even), which is wrong.
    expect(int64ToFloat32(2n ** 60n + 2n ** 36n + 1n)).toBe(2 ** 60 + 2 ** 37);
    expect(int64ToFloat32(2n ** 60n + 2n ** 36n)).toBe(2 ** 60);
    expect(int64ToFloat32(-(2n ** 63n))).toBe(-(2 ** 63));
  });
});

describe('toFloat32', () => {
  const t = (dtype: RawTensor['dtype'], shape: number[], data: Uint8Array): RawTensor => ({
    dtype,
    shape,
    data,
  });

  it('converts every dtype', () => {
    expect(Array.from(toFloat32(t('float32', [2], bytesOf(new Float32Array([1.5, -2])))))).toEqual([1.5, -2]);
    expect(Array.from(toFloat32(t('float16', [2], bytesOf(new Uint16Array([0x3c00, 0x3555])))))).toEqual([
      1,
      float16BitsToFloat32(0x3555),
    ]);
    expect(Array.from(toFloat32(t('bfloat16', [1], bytesOf(new Uint16Array([0x4049])))))).toEqual([3.140625]);
    expect(Array.from(toFloat32(t('float64', [2], bytesOf(new Float64Array([0.1, 1e300])))))).toEqual([
      Math.fround(0.1),
      Infinity,
    ]);
    expect(Array.from(toFloat32(t('int64', [2], bytesOf(new BigInt64Array([-7n, 2n ** 62n])))))).toEqual([
      -7,
      2 ** 62,
    ]);
    expect(Array.from(toFloat32(t('int32', [1], bytesOf(new Int32Array([16777217])))))).toEqual([16777216]);
    expect(Array.from(toFloat32(t('int16', [1], bytesOf(new Int16Array([-300])))))).toEqual([-300]);
    expect(Array.from(toFloat32(t('int8', [1], bytesOf(new Int8Array([-128])))))).toEqual([-128]);
    expect(Array.from(toFloat32(t('uint8', [1], new Uint8Array([255]))))).toEqual([255]);
    expect(Array.from(toFloat32(t('bool', [3], new Uint8Array([0, 1, 2]))))).toEqual([0, 1, 1]);
  });

  it('handles data at an odd byte offset', () => {
    const backing = new Uint8Array(9);
    backing.set(bytesOf(new Float32Array([3, 4])), 1);
    expect(Array.from(toFloat32(t('float32', [2], backing.subarray(1))))).toEqual([3, 4]);
  });

  it('rejects data that does not match the shape', () => {
    expect(() => toFloat32(t('float32', [3], new Uint8Array(8)))).toThrow(/needs 12 bytes but has 8/);
  });

  it('recognises tensor entries structurally', () => {
    expect(
      isTensorEntry({ name: 'a', dtype: 'float32', shape: [], byteLength: 4, read: () => undefined }),
    ).toBe(true);
    expect(
      isTensorEntry({ name: 'a', dtype: 'complex64', shape: [], byteLength: 4, read: () => undefined }),
    ).toBe(false);
    expect(isTensorEntry(null)).toBe(false);
  });
});
