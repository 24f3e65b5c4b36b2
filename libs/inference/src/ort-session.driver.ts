import { InferenceSession, Tensor } from 'onnxruntime-node';
import { defaultIntraOpThreads } from './cpu-threads';
import { chooseProviders, detectBackends, type ProviderName } from './execution-providers';
import { WorkerSession } from './ort-worker-session';
import type { BindingSessionPort } from './session-state';
import type { HostData, HostDType, HostTensor, InferenceSessionPort } from './session.port';

/**
 * Dawn's validation of the WebGPU provider's GPU calls (onnxruntime's `validationMode`): `basic`
 * is onnxruntime's default; `disabled` skips it, which can only lower the host's cost per kernel
 * and gives no error report for a call the device would reject.
 */
export const WEBGPU_VALIDATION_MODES = ['disabled', 'wgpuOnly', 'basic', 'full'] as const;
export type WebGpuValidationMode = (typeof WEBGPU_VALIDATION_MODES)[number];

export interface OrtSessionOptions {
  /** Ordered execution-provider preference; filtered to what this machine can run. */
  readonly providers?: readonly string[];
  /**
   * Threads for one operator. 0 or unset: one per CPU this process may use (affinity and cgroup
   * quota; see defaultIntraOpThreads), not onnxruntime's own default.
   */
  readonly intraOpThreads?: number;
  /**
   * Let idle intra-op threads spin-wait for the next operator (onnxruntime's default). Spinning
   * trims latency when one process owns the cores, but burns the CPU that other processes on the
   * same cores need (several services on one node, or a gRPC server's own event loop), so the
   * services turn it off (env ORT_ALLOW_SPINNING).
   */
  readonly allowSpinning?: boolean;
  /**
   * Where `run` executes: `caller` (the calling thread) or `worker` (a worker thread that owns the
   * session, so a long run leaves the event loop free; see ort-worker-session.ts).
   */
  readonly thread?: 'caller' | 'worker';
  /**
   * The state-allocation graph (`zeros_float32` / `zeros_float16` of a given length) that lets a
   * worker session on a GPU provider keep its state buffers on the device.
   */
  readonly stateAllocModel?: string;
  /**
   * The graph to load instead of `path` when the session keeps its state in host memory: the
   * decoder's host graph (`llama-decoder/<v>/model.host.onnx`), fed the cache window each step
   * reads where `path` slices it out of whole slot buffers on the device. Still one session.
   */
  readonly hostStateModel?: string;
  /**
   * The decoder's step graph (`model.step.onnx`: one token per row, the attention fused and the
   * cache written in place), loaded beside `path` when the state is on the device, for the
   * engine's decode steps. It holds its own copy of the weights on the device.
   */
  readonly stepStateModel?: string;
  /**
   * Profile the session's runs with onnxruntime's profiler: it writes `<prefix>_<time>.json` when
   * the session is released (read it with readOrtProfile). For benchmarks and diagnosis: the
   * profiler records every kernel of every run.
   */
  readonly profileFilePrefix?: string;
  /** The WebGPU provider's validation mode (onnxruntime's default when unset). */
  readonly webgpuValidation?: WebGpuValidationMode;
  /** Called once with the providers chosen and skipped and the intra-op threads, for the start-up log. */
  readonly onProviders?: (
    chosen: readonly ProviderName[],
    skipped: readonly { name: string; reason: string }[],
    intraOpThreads: number,
  ) => void;
}

function toOrt(t: HostTensor): Tensor {
  return new Tensor(t.dtype, t.data, t.dims);
}

function fromOrt(t: Tensor): HostTensor {
  return { dtype: t.type as HostDType, dims: t.dims, data: t.data as HostData };
}

/** The onnxruntime-node driver of InferenceSessionPort (and of output binding, for state writes). */
class OrtSession implements BindingSessionPort {
  constructor(private readonly session: InferenceSession) {}

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrt(t);
    const result =
      outputs === undefined
        ? await this.session.run(ortFeeds)
        : await this.session.run(ortFeeds, [...outputs]);
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(result)) out[name] = fromOrt(t);
    return out;
  }

  /** Runs with outputs `bound` written into the given host buffers (pre-allocated outputs). */
  async runBound(
    feeds: Readonly<Record<string, HostTensor>>,
    bound: Readonly<Record<string, HostTensor>>,
    outputs: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrt(t);
    const fetches: Record<string, Tensor | null> = {};
    for (const [name, t] of Object.entries(bound)) fetches[name] = toOrt(t);
    for (const name of outputs) fetches[name] = null;
    const result = await this.session.run(ortFeeds, fetches);
    const out: Record<string, HostTensor> = {};
    for (const name of outputs) {
      const t = result[name];
      if (t === undefined) throw new Error(`the session returned no "${name}"`);
      out[name] = fromOrt(t);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Loads an ONNX model file into an onnxruntime-node session. */
export async function createOrtSession(
  path: string,
  options: OrtSessionOptions = {},
): Promise<InferenceSessionPort> {
  const choice = chooseProviders(options.providers ?? ['cpu'], detectBackends());
  const intraOpThreads = options.intraOpThreads || (await defaultIntraOpThreads());
  options.onProviders?.(choice.providers, choice.skipped, intraOpThreads);
  const sessionOptions: InferenceSession.SessionOptions = {
    executionProviders: choice.providers.map((name) =>
      name === 'webgpu' && options.webgpuValidation !== undefined
        ? { name, validationMode: options.webgpuValidation }
        : name,
    ),
    graphOptimizationLevel: 'all',
    intraOpNumThreads: intraOpThreads,
    ...(options.allowSpinning === false
      ? { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }
      : {}),
  };
  // State on the device only for a worker session on a GPU provider whose repository brought the
  // allocation graph; everything else keeps its state in host memory (the worker's, or this
  // thread's through LocalStateSession) and runs the host graph when there is one.
  const onDevice =
    options.thread === 'worker' && choice.providers[0] === 'webgpu' && options.stateAllocModel !== undefined;
  const model = onDevice ? path : (options.hostStateModel ?? path);
  if (options.thread === 'worker') {
    return WorkerSession.create(
      model,
      { ...sessionOptions },
      onDevice ? options.stateAllocModel : undefined,
      options.profileFilePrefix,
      onDevice ? options.stepStateModel : undefined,
    );
  }
  const session = await InferenceSession.create(
    model,
    options.profileFilePrefix === undefined
      ? sessionOptions
      : { ...sessionOptions, enableProfiling: true, profileFilePrefix: options.profileFilePrefix },
  );
  return new OrtSession(session);
}
