import { commonV1 } from '@imagebind-llm/proto';
import { ImageBindError } from './image-bind-error';

/** A decoded float32 tensor: row-major values and their shape, outermost dimension first. */
export interface Float32Tensor {
  readonly values: Float32Array;
  readonly shape: readonly number[];
}

/**
 * Decodes a `commonV1.Tensor` holding FLOAT32 elements. The wire format is little-endian whatever
 * the host is, and protobuf byte fields may start at any offset, so the values are read through a
 * DataView into a fresh, aligned array rather than viewed in place.
 */
export function decodeFloat32Tensor(tensor: commonV1.Tensor, what = 'tensor'): Float32Tensor {
  if (tensor.dtype !== commonV1.DataType.DATA_TYPE_FLOAT32) {
    throw malformed(`${what} has dtype ${commonV1.dataTypeToJSON(tensor.dtype)}; expected DATA_TYPE_FLOAT32`);
  }
  const count = tensor.shape.reduce((n, d) => n * d, 1);
  if (tensor.shape.some((d) => !Number.isInteger(d) || d < 0) || count * 4 !== tensor.data.byteLength) {
    throw malformed(
      `${what} has shape [${tensor.shape.join(', ')}] but ${tensor.data.byteLength} bytes of data ` +
        `(float32 needs ${count * 4})`,
    );
  }
  return { values: decodeFloat32Bytes(tensor.data, what), shape: [...tensor.shape] };
}

/** Decodes little-endian float32 bytes (e.g. a batch item's embedding) into a Float32Array. */
export function decodeFloat32Bytes(bytes: Uint8Array, what = 'embedding'): Float32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw malformed(`${what} has ${bytes.byteLength} bytes, not a whole number of float32 values`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const values = new Float32Array(bytes.byteLength / 4);
  for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(i * 4, true);
  return values;
}

function malformed(details: string): ImageBindError {
  // The server broke the contract: nothing the caller can fix, so it is not INVALID_ARGUMENT.
  return new ImageBindError({ code: 'INTERNAL', details: `malformed response: ${details}` });
}
