import { commonV1 } from '@imagebind-llm/proto';
import { describe, expect, it } from 'vitest';
import { ImageBindError } from './image-bind-error';
import { decodeFloat32Bytes, decodeFloat32Tensor } from './tensor-decode';

function littleEndian(values: number[], offset = 0): Buffer {
  const buffer = Buffer.alloc(offset + values.length * 4);
  values.forEach((v, i) => buffer.writeFloatLE(v, offset + i * 4));
  return buffer.subarray(offset);
}

describe('decodeFloat32Tensor', () => {
  it('decodes little-endian values with their shape, even from an unaligned buffer', () => {
    // Offset 1 makes the bytes unaligned for a Float32Array view: decoding must copy.
    const data = littleEndian([1.5, -2.25, 0, 3e-8, -Infinity, 7], 1);
    const tensor = decodeFloat32Tensor({ dtype: commonV1.DataType.DATA_TYPE_FLOAT32, shape: [2, 3], data });
    expect(tensor.shape).toEqual([2, 3]);
    expect(Array.from(tensor.values)).toEqual(
      Array.from(Float32Array.from([1.5, -2.25, 0, 3e-8, -Infinity, 7])),
    );
  });

  it('rejects a wrong dtype or a byte count that does not match the shape', () => {
    const data = littleEndian([1, 2]);
    expect(() => decodeFloat32Tensor({ dtype: commonV1.DataType.DATA_TYPE_INT32, shape: [2], data })).toThrow(
      /DATA_TYPE_INT32/,
    );
    expect(() =>
      decodeFloat32Tensor({ dtype: commonV1.DataType.DATA_TYPE_FLOAT32, shape: [3], data }, 'fused'),
    ).toThrow(/fused has shape \[3\] but 8 bytes/);
    expect(() => decodeFloat32Bytes(Buffer.alloc(6))).toThrow(ImageBindError);
  });
});
