import { createRequire } from 'node:module';
import { join } from 'node:path';
import { threadId as mainThreadId, Worker } from 'node:worker_threads';
import type { HostData, HostDType, HostTensor } from './session.port';
import {
  WINDOW_GROWTH,
  type StatefulFeed,
  type StatefulSessionPort,
  type StateLocation,
  type SessionGraph,
  type StateOptions,
  type StateUpdate,
} from './session-state';

/**
 * The worker's program. onnxruntime-node's `session.run` calls the native Run synchronously on the
 * JavaScript thread (its backend wraps it in setImmediate; the binding has no async worker for
 * Run), so a decode step would block the event loop that serves gRPC streams, health and metrics.
 * This worker owns the session and its state buffers (the slot KV cache): per run only small
 * feeds arrive and the requested outputs leave (transferred, not copied).
 *
 * Plain CommonJS in a string so it runs the same from the built library and from sources under
 * test; it mirrors LocalStateSession (session-state.ts) for state views and copies.
 */
const WORKER_PROGRAM = `
const { parentPort, workerData, threadId } = require('node:worker_threads');
const ort = require(workerData.ortPath);
let session;
// The step graph (model.step.onnx), loaded beside the main graph for device state: runs that ask
// for it read and write the same state buffers.
let stepSession;
let stepError;
// Device state: the repository's state graph, loaded as one allocator per element type (outputs
// left on the device; one session per output, as the binding keeps the outputs of earlier runs
// bound) that makes zeroed buffers there, and as \`writer\` (outputs bound in place) that writes a
// row into one. A buffer lives as a gpu-buffer tensor that views are cut from. Every run of that
// graph runs all its nodes, so each use feeds the other's inputs with one-element placeholders.
let stateModel;
let sessionOptions;
const allocators = new Map();
let writer;
const placeholders = () => ({
  shape: new ort.Tensor('int64', BigInt64Array.of(1n), [1]),
  rows: new ort.Tensor('float32', new Float32Array(1), [1, 1]),
  row_index: new ort.Tensor('int64', BigInt64Array.of(0n), [1, 1]),
  row_values: new ort.Tensor('float32', new Float32Array(1), [1, 1]),
});
const state = new Map();
// Window copies' buffers by input name, reused from run to run (session-state.ts, WINDOW_GROWTH).
const windows = new Map();
const WINDOW_GROWTH = workerData.windowGrowth;
const count = (dims) => dims.reduce((a, b) => a * b, 1);
function view(ref, input) {
  const entry = state.get(ref.state);
  if (entry === undefined) throw new Error('no state buffer "' + ref.state + '"');
  const n = count(ref.dims);
  if (ref.window !== undefined) {
    // a compact copy of the first width of every capacity positions (host state only)
    if (entry.host === undefined) throw new Error('state "' + ref.state + '" is on the device: no window reads');
    const inner = ref.dims[ref.dims.length - 1];
    const run = ref.window.width * inner;
    const stride = ref.window.capacity * inner;
    const rows = n / run;
    if (ref.dims[ref.dims.length - 2] !== ref.window.width || rows * stride > entry.elements) throw new Error('state "' + ref.state + '": the window does not fit');
    const target = rows * Math.min(ref.window.capacity, Math.ceil(ref.window.width / WINDOW_GROWTH) * WINDOW_GROWTH) * inner;
    let kept = windows.get(input);
    if (kept === undefined || kept.length < n || kept.length > 2 * target || kept.constructor !== entry.host.constructor) {
      kept = new entry.host.constructor(target);
      windows.set(input, kept);
    }
    const data = kept.subarray(0, n);
    for (let r = 0; r < rows; r++) data.set(entry.host.subarray(r * stride, r * stride + run), r * run);
    return new ort.Tensor(entry.dtype, data, ref.dims);
  }
  if (n > entry.elements) throw new Error('state "' + ref.state + '" holds ' + entry.elements + ' values; a view of ' + n + ' was asked for');
  if (entry.device !== undefined) return ort.Tensor.fromGpuBuffer(entry.device.gpuBuffer, { dataType: entry.dtype, dims: ref.dims });
  return new ort.Tensor(entry.dtype, entry.host.subarray(0, n), ref.dims);
}
function drop() {
  for (const entry of state.values()) if (entry.device !== undefined) entry.device.dispose();
  state.clear();
  windows.clear();
}
async function handle(msg) {
  switch (msg.type) {
    case 'load':
      session = await ort.InferenceSession.create(msg.path, msg.profile === undefined ? msg.options : { ...msg.options, enableProfiling: true, profileFilePrefix: msg.profile });
      if (msg.allocModel !== undefined) {
        stateModel = msg.allocModel;
        sessionOptions = msg.options;
        writer = await ort.InferenceSession.create(stateModel, sessionOptions);
        // The step graph is an optimisation: if it does not load (a provider without its fused
        // attention, too little device memory for its copy of the weights), every step runs the
        // main graph and the reply says why.
        if (msg.stepPath !== undefined) {
          try {
            stepSession = await ort.InferenceSession.create(msg.stepPath, msg.profile === undefined ? msg.options : { ...msg.options, enableProfiling: true, profileFilePrefix: msg.profile + '.step' });
          } catch (error) {
            stepError = error && error.message ? error.message : String(error);
          }
        }
      }
      return { inputNames: session.inputNames, outputNames: session.outputNames, stateLocation: writer === undefined ? 'host' : 'device', stepGraph: stepSession !== undefined, stepError };
    case 'createState': {
      const old = state.get(msg.name);
      if (old !== undefined && old.device !== undefined) old.device.dispose();
      const dtype = msg.dtype === 'float16' ? 'float16' : 'float32';
      if (writer !== undefined) {
        const shape = new ort.Tensor('int64', BigInt64Array.of(BigInt(msg.elements)), [1]);
        const name = dtype === 'float16' ? 'zeros_float16' : 'zeros_float32';
        if (!allocators.has(name)) allocators.set(name, await ort.InferenceSession.create(stateModel, { ...sessionOptions, preferredOutputLocation: 'gpu-buffer' }));
        const out = await allocators.get(name).run({ ...placeholders(), shape }, [name]);
        state.set(msg.name, { dtype, elements: msg.elements, device: out[name] });
      } else {
        const host = dtype === 'float16' ? new Uint16Array(msg.elements) : new Float32Array(msg.elements);
        state.set(msg.name, { dtype, elements: msg.elements, host });
      }
      return {};
    }
    case 'writeState': {
      const entry = state.get(msg.name);
      if (entry === undefined || entry.dtype !== 'float32') throw new Error('no float32 state buffer "' + msg.name + '"');
      if (entry.host !== undefined) {
        entry.host.set(msg.values, msg.at);
        return {};
      }
      // on the device: one row of the buffer viewed as rows of values.length, written in place
      const width = msg.values.length;
      if (msg.at % width !== 0 || entry.elements % width !== 0) throw new Error('state "' + msg.name + '": a device write must cover one whole row');
      const rows = ort.Tensor.fromGpuBuffer(entry.device.gpuBuffer, { dataType: 'float32', dims: [entry.elements / width, width] });
      await writer.run(
        { ...placeholders(), rows, row_index: new ort.Tensor('int64', BigInt64Array.of(BigInt(msg.at / width)), [1, 1]), row_values: new ort.Tensor('float32', msg.values, [1, width]) },
        { rows_out: rows },
      );
      return {};
    }
    case 'dropState':
      drop();
      return {};
    case 'run': {
      const runner = msg.graph === 'step' ? stepSession : session;
      if (runner === undefined) throw new Error('this session has no step graph');
      const feeds = {};
      for (const [name, t] of Object.entries(msg.feeds)) {
        feeds[name] = 'state' in t ? view(t, name) : new ort.Tensor(t.dtype, t.data, t.dims);
      }
      const names = msg.outputs === undefined ? runner.outputNames : msg.outputs;
      const copies = msg.updates.filter((u) => 'spans' in u);
      const writes = msg.updates.filter((u) => !('spans' in u));
      // Outputs bound to the views fed as state: the graph writes into the buffers in place.
      const fetches = {};
      for (const w of writes) {
        const fed = msg.feeds[w.input];
        if (fed === undefined || !('state' in fed) || fed.window !== undefined) throw new Error('write "' + w.output + '" names input "' + w.input + '", which is not a whole state view');
        fetches[w.output] = feeds[w.input];
      }
      for (const name of [...names, ...copies.map((c) => c.output)]) fetches[name] = null;
      const result = await runner.run(feeds, fetches);
      for (const c of copies) {
        const entry = state.get(c.state);
        const source = result[c.output] && result[c.output].data;
        if (entry === undefined || entry.host === undefined) throw new Error('no host state buffer "' + c.state + '"');
        if (source === undefined || source.constructor !== entry.host.constructor) throw new Error('the session returned no "' + c.output + '" in the element type of the state');
        const s = c.spans;
        for (let i = 0; i + 2 < s.length; i += 3) entry.host.set(source.subarray(s[i], s[i] + s[i + 2]), s[i + 1]);
      }
      const out = {};
      for (const name of names) {
        const t = result[name];
        if (t === undefined) throw new Error('the session returned no "' + name + '"');
        out[name] = { dtype: t.type, dims: t.dims, data: t.data };
      }
      return { out };
    }
    case 'release':
      drop();
      for (const a of allocators.values()) await a.release();
      allocators.clear();
      if (writer !== undefined) await writer.release();
      if (stepSession !== undefined) await stepSession.release();
      if (session !== undefined) await session.release();
      session = undefined;
      stepSession = undefined;
      writer = undefined;
      return {};
    default:
      throw new Error('unknown message ' + msg.type);
  }
}
parentPort.on('message', (msg) => {
  handle(msg).then(
    (reply) => {
      const transfer = [];
      if (reply.out !== undefined) {
        for (const t of Object.values(reply.out)) {
          const b = t.data.buffer;
          if (b instanceof ArrayBuffer && !transfer.includes(b)) transfer.push(b);
        }
      }
      try {
        parentPort.postMessage({ id: msg.id, ok: true, threadId, ...reply }, transfer);
      } catch {
        parentPort.postMessage({ id: msg.id, ok: true, threadId, ...reply });
      }
    },
    (error) => parentPort.postMessage({ id: msg.id, ok: false, threadId, message: error && error.message ? error.message : String(error) }),
  );
});
`;

interface Reply {
  readonly id: number;
  readonly ok: boolean;
  readonly threadId: number;
  readonly message?: string;
  readonly inputNames?: readonly string[];
  readonly outputNames?: readonly string[];
  readonly stateLocation?: StateLocation;
  readonly stepGraph?: boolean;
  readonly stepError?: string;
  readonly out?: Record<string, { dtype: string; dims: readonly number[]; data: HostData }>;
}

interface WireTensor {
  readonly dtype: HostDType;
  readonly dims: readonly number[];
  readonly data: HostData;
}

/** Where onnxruntime-node lives, resolved from this library (the only one that may import it). */
function ortPath(): string {
  const here = typeof __filename === 'string' ? __filename : join(process.cwd(), 'index.js');
  return createRequire(here).resolve('onnxruntime-node');
}

/**
 * An onnxruntime-node session that runs in a worker thread of its own, with state buffers (the
 * slot KV cache) kept in that worker. Runs are serialised in the order they are asked for.
 */
export class WorkerSession implements StatefulSessionPort {
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: unknown) => void }>();
  private nextId = 1;
  private names: { inputs: readonly string[]; outputs: readonly string[] } = { inputs: [], outputs: [] };
  private failure: Error | undefined;
  private location: StateLocation = 'host';
  private hasStep = false;
  private stepFailure: string | undefined;
  /** Thread id that executed the latest run (not the caller's: see `callerThreadId`). */
  lastRunThreadId: number | undefined;
  readonly callerThreadId = mainThreadId;

  private constructor(private readonly worker: Worker) {
    // An idle worker must not keep the process alive; one with a run in flight must.
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiter = this.pending.get(reply.id);
      if (waiter === undefined) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.ok) waiter.resolve(reply);
      else waiter.reject(new Error(reply.message ?? 'the decoder worker failed'));
    });
    const fail = (error: Error): void => {
      this.failure ??= error;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      fail(new Error(`the inference worker exited (code ${code})`));
    });
  }

  /**
   * Starts a worker and loads `path` in it with onnxruntime session options `options`. With
   * `allocModel` (the repository's state-allocation graph) state buffers live on the device the
   * session runs on; without it, in the worker's memory. With `profileFilePrefix` onnxruntime
   * profiles the session's runs (not its state graphs) and writes the profile at release (the step
   * graph's to `<prefix>.step_…`). With `stepModel` as well, the worker loads that graph beside `path`
   * (runWithState's 'step' runs).
   */
  static async create(
    path: string,
    options: Record<string, unknown>,
    allocModel?: string,
    profileFilePrefix?: string,
    stepModel?: string,
  ): Promise<WorkerSession> {
    const worker = new Worker(WORKER_PROGRAM, {
      eval: true,
      workerData: { ortPath: ortPath(), windowGrowth: WINDOW_GROWTH },
    });
    const session = new WorkerSession(worker);
    try {
      const reply = await session.call({
        type: 'load',
        path,
        options,
        ...(allocModel === undefined ? {} : { allocModel }),
        ...(profileFilePrefix === undefined ? {} : { profile: profileFilePrefix }),
        ...(allocModel === undefined || stepModel === undefined ? {} : { stepPath: stepModel }),
      });
      session.hasStep = reply.stepGraph === true;
      session.stepFailure = reply.stepError;
      session.names = { inputs: reply.inputNames ?? [], outputs: reply.outputNames ?? [] };
      session.location = reply.stateLocation ?? 'host';
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    return session;
  }

  get inputNames(): readonly string[] {
    return this.names.inputs;
  }

  get outputNames(): readonly string[] {
    return this.names.outputs;
  }

  get stateLocation(): StateLocation {
    return this.location;
  }

  get stepGraph(): boolean {
    return this.hasStep;
  }

  get stepGraphError(): string | undefined {
    return this.stepFailure;
  }

  private async call(message: Record<string, unknown>): Promise<Reply> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    });
  }

  private static outputs(reply: Reply): Record<string, HostTensor> {
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(reply.out ?? {})) {
      out[name] = { dtype: t.dtype as HostDType, dims: t.dims, data: t.data };
    }
    return out;
  }

  async run(
    feeds: Readonly<Record<string, HostTensor>>,
    outputs?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    return this.runWithState(feeds, [], outputs);
  }

  async runWithState(
    feeds: Readonly<Record<string, StatefulFeed>>,
    updates: readonly StateUpdate[],
    outputs?: readonly string[],
    graph: SessionGraph = 'main',
  ): Promise<Record<string, HostTensor>> {
    const wire: Record<string, WireTensor | StatefulFeed> = { ...feeds };
    const reply = await this.call({
      type: 'run',
      feeds: wire,
      updates,
      graph,
      ...(outputs === undefined ? {} : { outputs: [...outputs] }),
    });
    this.lastRunThreadId = reply.threadId;
    return WorkerSession.outputs(reply);
  }

  async createState(name: string, elements: number, options: StateOptions = {}): Promise<void> {
    await this.call({ type: 'createState', name, elements, ...options });
  }

  async writeState(name: string, at: number, values: Float32Array): Promise<void> {
    await this.call({ type: 'writeState', name, at, values });
  }

  async dropState(): Promise<void> {
    await this.call({ type: 'dropState' });
  }

  async release(): Promise<void> {
    if (this.failure === undefined) {
      try {
        await this.call({ type: 'release' });
      } finally {
        await this.worker.terminate();
      }
    }
  }
}
