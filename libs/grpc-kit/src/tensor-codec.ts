/** Float32 tensors on the wire (STYLE: tensors as bytes + shape + dtype), shared by every service. */
import { DomainError } from '@imagebind-llm/errors';
import { commonV1 } from '@imagebind-llm/proto';

/** x86 and ARM Linux hosts: the wire's little-endian float32 is the memory layout. */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** A float32 tensor as the contracts carry it: little-endian bytes + shape (STYLE: tensors as bytes). */
export function float32Tensor(data: Float32Array, shape: readonly number[]): commonV1.Tensor {
  let bytes: Buffer;
  if (LITTLE_ENDIAN) {
    // One memcpy: the host layout already is the wire layout.
    bytes = Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  } else {
    bytes = Buffer.alloc(data.length * 4);
    for (let i = 0; i < data.length; i++) bytes.writeFloatLE(data[i]!, i * 4);
  }
  return { dtype: commonV1.DataType.DATA_TYPE_FLOAT32, shape: shape.map(Number), data: bytes };
}

/**
 * Reads a float32 tensor, checking dtype, that the shape matches the byte count and, when given,
 * the expected rank/last dimension. `field` names the request field in error messages.
 */
export function readFloat32Tensor(
  tensor: commonV1.Tensor | undefined,
  field: string,
  expect: { rank?: number; lastDim?: number } = {},
): { data: Float32Array; shape: number[] } {
  if (tensor === undefined) throw DomainError.invalidInput(`${field}: a float32 tensor is required`, field);
  if (tensor.dtype !== commonV1.DataType.DATA_TYPE_FLOAT32) {
    throw DomainError.invalidInput(
      `${field}: dtype must be DATA_TYPE_FLOAT32, got ${commonV1.dataTypeToJSON(tensor.dtype)}`,
      field,
    );
  }
  const shape = tensor.shape.map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw DomainError.invalidInput(
      `${field}: shape [${shape.join(', ')}] has a negative or fractional dimension`,
      field,
    );
  }
  if (expect.rank !== undefined && shape.length !== expect.rank) {
    throw DomainError.invalidInput(
      `${field}: expected rank ${expect.rank}, got shape [${shape.join(', ')}]`,
      field,
    );
  }
  const last = shape[shape.length - 1];
  if (expect.lastDim !== undefined && last !== expect.lastDim) {
    throw DomainError.invalidInput(
      `${field}: the last dimension must be ${expect.lastDim}, got shape [${shape.join(', ')}]`,
      field,
    );
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (tensor.data.length !== count * 4) {
    throw DomainError.invalidInput(
      `${field}: shape [${shape.join(', ')}] needs ${count * 4} bytes, got ${tensor.data.length}`,
      field,
    );
  }
  const data = new Float32Array(count);
  if (LITTLE_ENDIAN) {
    // Copy (the message buffer may be unaligned for a Float32Array view), then check in place.
    new Uint8Array(data.buffer).set(tensor.data.subarray(0, count * 4));
  } else {
    const view = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    for (let i = 0; i < count; i++) data[i] = view.readFloatLE(i * 4);
  }
  for (let i = 0; i < count; i++) {
    const v = data[i]!;
    if (v - v !== 0)
      throw DomainError.invalidInput(`${field}: value ${i} is ${v}; NaN and Inf are refused`, field);
  }
  return { data, shape };
}
