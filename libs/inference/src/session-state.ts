import type { HostTensor, InferenceSessionPort } from './session.port';

/**
 * Buffers a session keeps from run to run (the decoder's slot KV cache and each slot's visual
 * offsets), held where the session runs: in the caller's thread for an in-thread session, inside
 * the worker for a worker session, and on the device (WebGPU buffers) when a worker session runs
 * on a GPU provider. They never travel per run: a run reads them through StateRefs and updates them
 * either in place, through a graph output bound to a StateRef's view (a StateWrite), or by copying
 * runs of an output into them (a StateCopy).
 */

/** Element types a state buffer can hold. */
export type StateDtype = 'float32' | 'float16';

export interface StateOptions {
  /** float32 by default. */
  readonly dtype?: StateDtype;
}

/**
 * Feeds the first `dims`-many values of state buffer `state` as an input, without copying it; or,
 * with `window`, a compact copy of the first `width` of every `capacity` positions: the buffer is
 * read as rows of capacity × inner values (inner = the last dim) and `dims` ends in [width, inner].
 * Host state only: a CPU run copies its inputs anyway, so the window copies just what is read. The
 * copy goes into a buffer the session keeps for that input and reuses from run to run (see
 * WINDOW_GROWTH).
 */
export interface StateRef {
  readonly state: string;
  readonly dims: readonly number[];
  readonly window?: { readonly capacity: number; readonly width: number };
}

/**
 * Binds graph output `output` to the view fed as input `input` (a StateRef), so the graph's own
 * update of that buffer (the decoder's ScatterND into the slot cache) lands in place.
 */
export interface StateWrite {
  readonly output: string;
  readonly input: string;
}

/**
 * After the run, copies runs of values of output `output` into state buffer `state`: `spans`
 * holds triples (from, to, length) in elements (how a host cache takes each step's new K/V).
 */
export interface StateCopy {
  readonly output: string;
  readonly state: string;
  readonly spans: Int32Array;
}

/** How a run updates state: in place through a bound output, or by copying from an output. */
export type StateUpdate = StateWrite | StateCopy;

export function isStateCopy(update: StateUpdate): update is StateCopy {
  return 'spans' in update;
}

export type StatefulFeed = HostTensor | StateRef;

export function isStateRef(feed: StatefulFeed): feed is StateRef {
  return 'state' in feed;
}

/** Where a session keeps state buffers that are not marked `host`. */
export type StateLocation = 'host' | 'device';

/** Which of a stateful session's graphs a run uses: its main graph or its step graph. */
export type SessionGraph = 'main' | 'step';

/** An inference session that also holds named state buffers (see above). */
export interface StatefulSessionPort extends InferenceSessionPort {
  /** Where non-host state buffers live: on the device for a GPU session, else in host memory. */
  readonly stateLocation: StateLocation;
  /** Allocates (or replaces) state buffer `name` of `elements` zeros. */
  createState(name: string, elements: number, options?: StateOptions): Promise<void>;
  /**
   * Runs the graph with state views among the feeds, binds each write's output to its input's
   * view, applies each copy, and returns `outputs` (those only: bound and copied outputs stay where
   * the session runs).
   */
  runWithState(
    feeds: Readonly<Record<string, StatefulFeed>>,
    updates: readonly StateUpdate[],
    outputs: readonly string[],
    graph?: SessionGraph,
  ): Promise<Record<string, HostTensor>>;
  /**
   * The session also loaded a step graph (the decoder's model.step.onnx: one token per row, the
   * attention fused, the cache written in place) that `runWithState(…, 'step')` runs over the same
   * state buffers. Device sessions only.
   */
  readonly stepGraph?: boolean;
  /** Why a step graph the session was given did not load (it then runs every step on its main graph). */
  readonly stepGraphError?: string;
  /**
   * Writes `values` into float32 state buffer `name` from element `at` (per-row constants). A
   * device buffer takes whole rows only: `at` a multiple of `values.length`.
   */
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

/**
 * Positions by which a window copy's buffer grows. The buffer of each windowed input is kept and
 * reused from run to run: a fresh array every step is zeroed and faulted in anew, which on a
 * 16-row step of the dim-1024 bench model cost more than the copy itself (19 against 7 ms). It is
 * allocated for the window's width rounded up to this many positions (a row's window grows by one
 * a step, so it is reallocated every WINDOW_GROWTH steps), and replaced by a smaller one when it
 * holds more than twice that (rows left).
 */
export const WINDOW_GROWTH = 32;

/** Buffers of window copies, by input name (LocalStateSession; the worker keeps its own). */
export type WindowBuffers = Map<string, HostStateBuffer>;

/**
 * Resolves a state view as a host tensor: the buffer's first values (no copy), or a window's copy,
 * written into `windows`' buffer for input `input` when given (valid until the next run), else into
 * a new array.
 */
export function stateView(
  buffers: ReadonlyMap<string, HostStateBuffer>,
  ref: StateRef,
  reuse?: { readonly windows: WindowBuffers; readonly input: string },
): HostTensor {
  const buffer = buffers.get(ref.state);
  if (buffer === undefined) throw new Error(`no state buffer "${ref.state}"`);
  const dtype = buffer instanceof Float32Array ? 'float32' : 'float16';
  const n = elements(ref.dims);
  if (ref.window === undefined) {
    if (n > buffer.length) {
      throw new Error(`state "${ref.state}" holds ${buffer.length} values; a view of ${n} was asked for`);
    }
    return { dtype, dims: ref.dims, data: buffer.subarray(0, n) };
  }
  const { capacity, width } = ref.window;
  const inner = ref.dims.at(-1) ?? 1;
  const rows = n / (width * inner);
  if (ref.dims.at(-2) !== width || rows * capacity * inner > buffer.length) {
    throw new Error(
      `state "${ref.state}": a window of ${width} of ${capacity} does not fit [${ref.dims.join(', ')}]`,
    );
  }
  const make = (count: number): HostStateBuffer =>
    buffer instanceof Float32Array ? new Float32Array(count) : new Uint16Array(count);
  let data: HostStateBuffer;
  if (reuse === undefined) data = make(n);
  else {
    const target = rows * Math.min(capacity, Math.ceil(width / WINDOW_GROWTH) * WINDOW_GROWTH) * inner;
    let kept = reuse.windows.get(reuse.input);
    if (
      kept === undefined ||
      kept.length < n ||
      kept.length > 2 * target ||
      kept.constructor !== buffer.constructor
    ) {
      kept = make(target);
      reuse.windows.set(reuse.input, kept);
    }
    data = kept.subarray(0, n);
  }
  const run = width * inner;
  for (let r = 0; r < rows; r++)
    data.set(buffer.subarray(r * capacity * inner, r * capacity * inner + run), r * run);
  return { dtype, dims: ref.dims, data };
}

/** Applies one StateCopy from an output's values. */
export function applyStateCopy(target: HostStateBuffer, copy: StateCopy, source: HostStateBuffer): void {
  const s = copy.spans;
  for (let i = 0; i + 2 < s.length; i += 3) {
    const from = s[i]!;
    target.set(source.subarray(from, from + s[i + 2]!), s[i + 1]);
  }
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
  /** Window copies' buffers, reused from run to run (WINDOW_GROWTH). */
  private readonly windows: WindowBuffers = new Map();

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
    this.windows.clear();
    await Promise.resolve();
  }

  async runWithState(
    feeds: Readonly<Record<string, StatefulFeed>>,
    updates: readonly StateUpdate[],
    outputs: readonly string[],
    graph: SessionGraph = 'main',
  ): Promise<Record<string, HostTensor>> {
    if (graph !== 'main') throw new Error('this session has no step graph (a device session loads one)');
    const plain: Record<string, HostTensor> = {};
    for (const [name, feed] of Object.entries(feeds)) {
      plain[name] = isStateRef(feed)
        ? stateView(this.buffers, feed, { windows: this.windows, input: name })
        : feed;
    }
    const bound: Record<string, HostTensor> = {};
    const copies: StateCopy[] = [];
    for (const u of updates) {
      if (isStateCopy(u)) {
        copies.push(u);
        continue;
      }
      const feed = feeds[u.input];
      if (feed === undefined || !isStateRef(feed) || feed.window !== undefined)
        throw new Error(`write "${u.output}" names input "${u.input}", which is not a whole state view`);
      bound[u.output] = plain[u.input]!;
    }
    const wanted = [...outputs, ...copies.map((c) => c.output)];
    let out: Record<string, HostTensor>;
    if (Object.keys(bound).length > 0 && canBind(this.inner)) {
      out = await this.inner.runBound(plain, bound, wanted);
    } else {
      out = await this.inner.run(plain, Object.keys(bound).length > 0 ? undefined : wanted);
      for (const [name, view] of Object.entries(bound)) {
        const source = out[name];
        if (source === undefined || source.data.length !== view.data.length)
          throw new Error(`the session returned no "${name}" of ${view.data.length} values`);
        (view.data as HostStateBuffer).set(source.data as HostStateBuffer);
      }
    }
    for (const c of copies) {
      const target = this.buffers.get(c.state);
      const source = out[c.output]?.data;
      if (target === undefined) throw new Error(`no state buffer "${c.state}"`);
      if (source === undefined || source.constructor !== target.constructor)
        throw new Error(`the session returned no "${c.output}" of the state's element type`);
      applyStateCopy(target, c, source as HostStateBuffer);
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
    this.windows.clear();
    return this.inner.release();
  }
}
