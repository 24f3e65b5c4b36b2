import {
  ENCODER_COMPONENTS,
  type HostData,
  type HostTensor,
  type InferenceSessionPort,
  type InputModality,
  type TensorSpec,
} from '@imagebind-llm/inference';
import type { EncoderModelParts } from '../encoder-runtime';

/** What a fake session saw in one `run`. */
export interface FakeRun {
  readonly feeds: Readonly<Record<string, HostTensor>>;
  readonly outputs: readonly string[] | undefined;
}

export interface FakeRowSessionOptions {
  /** Output names, each [batch, width]. */
  readonly outputs?: readonly string[];
  /** Width of every output row. Default 4. */
  readonly width?: number;
  /**
   * Value k of output `o` for one batch row, given that row's values of the first feed (as numbers).
   * Default: (index of o + 1) · (Σ row + k), so outputs differ and every row's content shows.
   */
  readonly compute?: (row: readonly number[], k: number, outputIndex: number) => number;
  /** When true, every run waits until `openGate()` (to hold batches in flight). */
  readonly gated?: boolean;
  /** Makes a run fail with this error. */
  readonly failWith?: () => unknown;
}

export interface FakeRowSession extends InferenceSessionPort {
  readonly runs: FakeRun[];
  /** Lets every gated run waiting now finish. */
  openGate(): Promise<void>;
  /** Runs waiting at the gate. */
  readonly waiting: number;
  /** Set by `release()` (the session port's). */
  released: boolean;
}

function asNumbers(data: HostData, from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(Number(data[i]!));
  return out;
}

/**
 * A session whose output rows are a function of its input rows, batch row by batch row, like an
 * encoder graph: a batched row must come out exactly as if it had run alone. For a [batch, 1, ...]
 * clips feed it behaves as the graph's mean over one clip (the identity).
 */
export function fakeRowSession(options: FakeRowSessionOptions = {}): FakeRowSession {
  const outputs = options.outputs ?? ['embedding', 'head_prenorm'];
  const width = options.width ?? 4;
  const compute = options.compute ?? ((row, k, o) => (o + 1) * (row.reduce((a, b) => a + b, 0) + k));
  const runs: FakeRun[] = [];
  let gate: (() => void)[] = [];
  const session: FakeRowSession = {
    inputNames: [],
    outputNames: outputs,
    runs,
    released: false,
    get waiting() {
      return gate.length;
    },
    async run(feeds, wanted) {
      runs.push({ feeds: { ...feeds }, outputs: wanted });
      if (options.gated === true) await new Promise<void>((resolve) => gate.push(resolve));
      if (options.failWith !== undefined) throw options.failWith();
      const first = Object.values(feeds)[0]!;
      const batch = first.dims[0]!;
      const per = first.data.length / batch;
      const result: Record<string, HostTensor> = {};
      (wanted ?? outputs).forEach((name) => {
        const o = outputs.indexOf(name);
        const data = new Float32Array(batch * width);
        for (let b = 0; b < batch; b++) {
          const row = asNumbers(first.data, b * per, (b + 1) * per);
          for (let k = 0; k < width; k++) data[b * width + k] = compute(row, k, o);
        }
        result[name] = { dtype: 'float32', dims: [batch, width], data };
      });
      return result;
    },
    async openGate() {
      const waiting = gate;
      gate = [];
      for (const resolve of waiting) resolve();
      // Let the released runs' continuations (batch completion) happen before the test goes on.
      await new Promise((resolve) => setImmediate(resolve));
    },
    async release() {
      session.released = true;
      await Promise.resolve();
    },
  };
  return session;
}

/** An EncoderRuntime model around a fake session, with the graph inputs a test chooses. */
export function fakeEncoderModel(
  modality: InputModality,
  inputs: readonly TensorSpec[],
  session: InferenceSessionPort,
): EncoderModelParts {
  const component = ENCODER_COMPONENTS[modality].component;
  return {
    info: {
      modality,
      component,
      version: '1',
      label: `${component}:${modality}`,
      sourceSha256: 'f'.repeat(64),
      executionProvider: 'cpu',
    },
    session,
    inputs,
  };
}

/**
 * A session that answers zeros at once and, like ONNX Runtime, does no work on the event loop (the
 * fake row session sums every input row in JS, which would be the loop's own load).
 */
export function idleSession(
  outputs: readonly string[] = ['embedding', 'head_prenorm'],
  width = 4,
): InferenceSessionPort {
  return {
    inputNames: [],
    outputNames: outputs,
    async run(feeds, wanted) {
      const batch = Object.values(feeds)[0]!.dims[0]!;
      const out: Record<string, HostTensor> = {};
      for (const name of wanted ?? outputs) {
        out[name] = { dtype: 'float32', dims: [batch, width], data: new Float32Array(batch * width) };
      }
      return Promise.resolve(out);
    },
    release: async () => Promise.resolve(),
  };
}
