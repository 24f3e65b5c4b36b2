import type { HostTensor, InferenceSessionPort } from './session.port';

/**
 * Float32 buffers a session keeps from run to run (the decoder's slot KV cache), held where the
 * session runs: in the caller's thread for an in-thread session, inside the worker for a worker
 * session. They never travel per run; a run reads them through StateRefs and updates them
 * through StateCopies.
 */

/** Feeds the first `dims`-many values of state buffer `state` as an input, without copying it. */
export interface StateRef {
  readonly state: string;
  readonly dims: readonly number[];
}

/**
 * After the run, copies runs of values of output `output` into state buffer `state`:
 * `spans` holds triples (from, to, length) in float32 elements.
 */
export interface StateCopy {
  readonly output: string;
  readonly state: string;
  readonly spans: Int32Array;
}

export type StatefulFeed = HostTensor | StateRef;

export function isStateRef(feed: StatefulFeed): feed is StateRef {
  return 'state' in feed;
}

/** An inference session that also holds named float32 state buffers (see above). */
export interface StatefulSessionPort extends InferenceSessionPort {
  /** Allocates (or replaces) state buffer `name` of `elements` zeros. */
  createState(name: string, elements: number): Promise<void>;
  /**
   * Runs the graph with state views among the feeds, applies `copies`, and returns `outputs`
   * (those only: outputs the copies consume stay where the session runs).
   */
  runWithState(
    feeds: Readonly<Record<string, StatefulFeed>>,
    copies: readonly StateCopy[],
    outputs: readonly string[],
  ): Promise<Record<string, HostTensor>>;
  /** Writes `values` into state buffer `name` from element `at` (per-row constants, at a join). */
  writeState(name: string, at: number, values: Float32Array): Promise<void>;
  /** Frees every state buffer. */
  dropState(): Promise<void>;
}

export function isStateful(session: InferenceSessionPort): session is StatefulSessionPort {
  return typeof (session as Partial<StatefulSessionPort>).runWithState === 'function';
}

function elements(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Resolves a state view: a subarray of the buffer, no copy. */
export function stateView(buffers: ReadonlyMap<string, Float32Array>, ref: StateRef): Float32Array {
  const buffer = buffers.get(ref.state);
  if (buffer === undefined) throw new Error(`no state buffer "${ref.state}"`);
  const n = elements(ref.dims);
  if (n > buffer.length) {
    throw new Error(`state "${ref.state}" holds ${buffer.length} values; a view of ${n} was asked for`);
  }
  return buffer.subarray(0, n);
}

/** Applies one StateCopy from an output's values. */
export function applyStateCopy(
  buffers: ReadonlyMap<string, Float32Array>,
  copy: StateCopy,
  source: Float32Array,
): void {
  const target = buffers.get(copy.state);
  if (target === undefined) throw new Error(`no state buffer "${copy.state}"`);
  const s = copy.spans;
  for (let i = 0; i + 2 < s.length; i += 3) {
    const from = s[i]!;
    const len = s[i + 2]!;
    target.set(source.subarray(from, from + len), s[i + 1]);
  }
}

/**
 * Gives any session state buffers held in this thread. The engine uses it for in-thread sessions
 * (tests, the CLI); worker sessions implement the port themselves.
 */
export class LocalStateSession implements StatefulSessionPort {
  /** The state buffers; exposed so tests can check a run touched only what it should. */
  readonly buffers = new Map<string, Float32Array>();

  constructor(private readonly inner: InferenceSessionPort) {}

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    return this.inner.run(feeds, outputs);
  }

  async createState(name: string, count: number): Promise<void> {
    this.buffers.set(name, new Float32Array(count));
    await Promise.resolve();
  }

  async writeState(name: string, at: number, values: Float32Array): Promise<void> {
    const buffer = this.buffers.get(name);
    if (buffer === undefined) throw new Error(`no state buffer "${name}"`);
    buffer.set(values, at);
    await Promise.resolve();
  }

  async dropState(): Promise<void> {
    this.buffers.clear();
    await Promise.resolve();
  }

  async runWithState(
    feeds: Readonly<Record<string, StatefulFeed>>,
    copies: readonly StateCopy[],
    outputs: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    const plain: Record<string, HostTensor> = {};
    for (const [name, feed] of Object.entries(feeds)) {
      plain[name] = isStateRef(feed)
        ? { dtype: 'float32', dims: feed.dims, data: stateView(this.buffers, feed) }
        : feed;
    }
    const out = await this.inner.run(plain);
    for (const copy of copies) {
      const source = out[copy.output]?.data;
      if (!(source instanceof Float32Array))
        throw new Error(`the session returned no float32 "${copy.output}"`);
      applyStateCopy(this.buffers, copy, source);
    }
    const kept: Record<string, HostTensor> = {};
    for (const name of outputs) {
      const t = out[name];
      if (t === undefined) throw new Error(`the session returned no "${name}"`);
      kept[name] = t;
    }
    return kept;
  }

  async release(): Promise<void> {
    this.buffers.clear();
    return this.inner.release();
  }
}
