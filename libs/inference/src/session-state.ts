import type { HostTensor, InferenceSessionPort } from './session.port';

/**
 * Buffers a session keeps from run to run (the decoder's slot KV cache and each slot's visual
 * offsets), held where the session runs: in the caller's thread for an in-thread session, inside
 * the worker for a worker session, and on the device (WebGPU buffers) when the session runs on a
 * GPU provider and the buffer is not marked `host`. They never travel per run: a run reads them
 * through StateRefs, and a graph output bound to a StateRef's view (a StateWrite) is written into
 * the buffer in place by the graph itself.
 */

/** Element types a state buffer can hold. */
export type StateDtype = 'float32' | 'float16';

export interface StateOptions {
  /** float32 by default. */
  readonly dtype?: StateDtype;
  /**
   * Keep the buffer in host memory even when the session runs on a device (small per-row values
   * the host writes at a join, such as each slot's visual offsets).
   */
  readonly host?: boolean;
}

/** Feeds the first `dims`-many values of state buffer `state` as an input, without copying it. */
export interface StateRef {
  readonly state: string;
  readonly dims: readonly number[];
}

/**
 * Binds graph output `output` to the view fed as input `input` (a StateRef), so the graph's own
 * update of that buffer (the decoder's ScatterND into the slot cache) lands in place.
 */
export interface StateWrite {
  readonly output: string;
  readonly input: string;
}

export type StatefulFeed = HostTensor | StateRef;

export function isStateRef(feed: StatefulFeed): feed is StateRef {
  return 'state' in feed;
}

/** Where a session keeps state buffers that are not marked `host`. */
export type StateLocation = 'host' | 'device';

/** An inference session that also holds named state buffers (see above). */
export interface StatefulSessionPort extends InferenceSessionPort {
  /** Where non-host state buffers live: on the device for a GPU session, else in host memory. */
  readonly stateLocation: StateLocation;
  /** Allocates (or replaces) state buffer `name` of `elements` zeros. */
  createState(name: string, elements: number, options?: StateOptions): Promise<void>;
  /**
   * Runs the graph with state views among the feeds, binds each write's output to its input's
   * view, and returns `outputs` (those only: bound outputs stay where the session runs).
   */
  runWithState(
    feeds: Readonly<Record<string, StatefulFeed>>,
    writes: readonly StateWrite[],
    outputs: readonly string[],
  ): Promise<Record<string, HostTensor>>;
  /** Writes `values` into float32 host state buffer `name` from element `at` (per-row constants). */
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

type HostStateBuffer = Float32Array | Uint16Array;

/** Resolves a state view as a host tensor over the buffer's first values: no copy. */
export function stateView(buffers: ReadonlyMap<string, HostStateBuffer>, ref: StateRef): HostTensor {
  const buffer = buffers.get(ref.state);
  if (buffer === undefined) throw new Error(`no state buffer "${ref.state}"`);
  const n = elements(ref.dims);
  if (n > buffer.length) {
    throw new Error(`state "${ref.state}" holds ${buffer.length} values; a view of ${n} was asked for`);
  }
  const data = buffer.subarray(0, n);
  return { dtype: data instanceof Float32Array ? 'float32' : 'float16', dims: ref.dims, data };
}

/**
 * A session that can bind outputs to caller-provided buffers (onnxruntime's pre-allocated
 * outputs). Sessions without it (test fakes) return the output and the state copies it.
 */
export interface BindingSessionPort extends InferenceSessionPort {
  runBound(
    feeds: Readonly<Record<string, HostTensor>>,
    bound: Readonly<Record<string, HostTensor>>,
    outputs: readonly string[],
  ): Promise<Record<string, HostTensor>>;
}

function canBind(session: InferenceSessionPort): session is BindingSessionPort {
  return typeof (session as Partial<BindingSessionPort>).runBound === 'function';
}

/**
 * Gives any session state buffers held in this thread, in host memory. The engine uses it for
 * in-thread sessions (tests); worker sessions implement the port themselves and add device state.
 */
export class LocalStateSession implements StatefulSessionPort {
  /** The state buffers; exposed so tests can check a run touched only what it should. */
  readonly buffers = new Map<string, HostStateBuffer>();
  readonly stateLocation = 'host';

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

  async createState(name: string, count: number, options: StateOptions = {}): Promise<void> {
    this.buffers.set(name, options.dtype === 'float16' ? new Uint16Array(count) : new Float32Array(count));
    await Promise.resolve();
  }

  async writeState(name: string, at: number, values: Float32Array): Promise<void> {
    const buffer = this.buffers.get(name);
    if (!(buffer instanceof Float32Array)) throw new Error(`no float32 state buffer "${name}"`);
    buffer.set(values, at);
    await Promise.resolve();
  }

  async dropState(): Promise<void> {
    this.buffers.clear();
    await Promise.resolve();
  }

  async runWithState(
    feeds: Readonly<Record<string, StatefulFeed>>,
    writes: readonly StateWrite[],
    outputs: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    const plain: Record<string, HostTensor> = {};
    for (const [name, feed] of Object.entries(feeds)) {
      plain[name] = isStateRef(feed) ? stateView(this.buffers, feed) : feed;
    }
    const bound: Record<string, HostTensor> = {};
    for (const w of writes) {
      const view = plain[w.input];
      if (view === undefined || !isStateRef(feeds[w.input]!))
        throw new Error(`write "${w.output}" names input "${w.input}", which is not a state view`);
      bound[w.output] = view;
    }
    if (canBind(this.inner)) return this.inner.runBound(plain, bound, outputs);
    const out = await this.inner.run(plain);
    for (const [name, view] of Object.entries(bound)) {
      const source = out[name];
      if (source === undefined || source.data.length !== view.data.length)
        throw new Error(`the session returned no "${name}" of ${view.data.length} values`);
      (view.data as HostStateBuffer).set(source.data as HostStateBuffer);
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
