/** Element types the platform moves in and out of inference sessions. */
export type HostDType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool';

export type HostData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

/** A dense tensor in host memory, independent of the runtime behind the session. */
export interface HostTensor {
  readonly dtype: HostDType;
  readonly dims: readonly number[];
  readonly data: HostData;
}

export function hostTensor(dtype: 'float32', dims: readonly number[], data: Float32Array): HostTensor;
export function hostTensor(dtype: 'int64', dims: readonly number[], data: BigInt64Array): HostTensor;
export function hostTensor(dtype: HostDType, dims: readonly number[], data: HostData): HostTensor {
  const n = dims.reduce((a, b) => a * b, 1);
  if (data.length !== n)
    throw new Error(`tensor data has ${data.length} elements, dims [${dims.join(', ')}] need ${n}`);
  return { dtype, dims, data };
}

/**
 * The inference-session port: the engine and services depend on this, never on onnxruntime-node
 * directly, so tests can drive them with fakes and the runtime can change.
 */
export interface InferenceSessionPort {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Runs the graph; `outputs` limits what is returned (all outputs by default). */
  run(
    feeds: Readonly<Record<string, HostTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
}
