import { InferenceSession, Tensor } from 'onnxruntime-node';
import { chooseProviders, detectBackends, type ProviderName } from './execution-providers';
import { WorkerSession } from './ort-worker-session';
import type { HostData, HostDType, HostTensor, InferenceSessionPort } from './session.port';

export interface OrtSessionOptions {
  /** Ordered execution-provider preference; filtered to what this machine can run. */
  readonly providers?: readonly string[];
  /** Threads for one operator (0 lets onnxruntime decide). */
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
  /** Called once with the providers chosen and skipped, for the start-up log. */
  readonly onProviders?: (
    chosen: readonly ProviderName[],
    skipped: readonly { name: string; reason: string }[],
  ) => void;
}

function toOrt(t: HostTensor): Tensor {
  return new Tensor(t.dtype, t.data, t.dims);
}

function fromOrt(t: Tensor): HostTensor {
  return { dtype: t.type as HostDType, dims: t.dims, data: t.data as HostData };
}

/** The onnxruntime-node driver of InferenceSessionPort. */
class OrtSession implements InferenceSessionPort {
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
  options.onProviders?.(choice.providers, choice.skipped);
  const sessionOptions: InferenceSession.SessionOptions = {
    executionProviders: [...choice.providers],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: options.intraOpThreads ?? 0,
    ...(options.allowSpinning === false
      ? { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }
      : {}),
  };
  if (options.thread === 'worker') return WorkerSession.create(path, { ...sessionOptions });
  const session = await InferenceSession.create(path, sessionOptions);
  return new OrtSession(session);
}
