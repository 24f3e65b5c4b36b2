import { createRequire } from 'node:module';
import { join } from 'node:path';
import { threadId as mainThreadId, Worker } from 'node:worker_threads';
import type { HostData, HostDType, HostTensor } from './session.port';
import type { StateCopy, StatefulFeed, StatefulSessionPort } from './session-state';

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
const state = new Map();
const count = (dims) => dims.reduce((a, b) => a * b, 1);
function view(ref) {
  const buffer = state.get(ref.state);
  if (buffer === undefined) throw new Error('no state buffer "' + ref.state + '"');
  const n = count(ref.dims);
  if (n > buffer.length) throw new Error('state "' + ref.state + '" holds ' + buffer.length + ' values; a view of ' + n + ' was asked for');
  return buffer.subarray(0, n);
}
async function handle(msg) {
  switch (msg.type) {
    case 'load':
      session = await ort.InferenceSession.create(msg.path, msg.options);
      return { inputNames: session.inputNames, outputNames: session.outputNames };
    case 'createState':
      state.set(msg.name, new Float32Array(msg.elements));
      return {};
    case 'writeState': {
      const buffer = state.get(msg.name);
      if (buffer === undefined) throw new Error('no state buffer "' + msg.name + '"');
      buffer.set(msg.values, msg.at);
      return {};
    }
    case 'dropState':
      state.clear();
      return {};
    case 'run': {
      const feeds = {};
      for (const [name, t] of Object.entries(msg.feeds)) {
        feeds[name] = 'state' in t ? new ort.Tensor('float32', view(t), t.dims) : new ort.Tensor(t.dtype, t.data, t.dims);
      }
      const result = await session.run(feeds);
      for (const c of msg.copies) {
        const target = state.get(c.state);
        const source = result[c.output] && result[c.output].data;
        if (target === undefined) throw new Error('no state buffer "' + c.state + '"');
        if (!(source instanceof Float32Array)) throw new Error('the session returned no float32 "' + c.output + '"');
        const s = c.spans;
        for (let i = 0; i + 2 < s.length; i += 3) target.set(source.subarray(s[i], s[i] + s[i + 2]), s[i + 1]);
      }
      const out = {};
      const names = msg.outputs === undefined ? Object.keys(result) : msg.outputs;
      for (const name of names) {
        const t = result[name];
        if (t === undefined) throw new Error('the session returned no "' + name + '"');
        out[name] = { dtype: t.type, dims: t.dims, data: t.data };
      }
      return { out };
    }
    case 'release':
      state.clear();
      if (session !== undefined) await session.release();
      session = undefined;
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

  /** Starts a worker and loads `path` in it with onnxruntime session options `options`. */
  static async create(path: string, options: Record<string, unknown>): Promise<WorkerSession> {
    const worker = new Worker(WORKER_PROGRAM, { eval: true, workerData: { ortPath: ortPath() } });
    const session = new WorkerSession(worker);
    try {
      const reply = await session.call({ type: 'load', path, options });
      session.names = { inputs: reply.inputNames ?? [], outputs: reply.outputNames ?? [] };
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
    copies: readonly StateCopy[],
    outputs?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    const wire: Record<string, WireTensor | StatefulFeed> = { ...feeds };
    const reply = await this.call({
      type: 'run',
      feeds: wire,
      copies,
      ...(outputs === undefined ? {} : { outputs: [...outputs] }),
    });
    this.lastRunThreadId = reply.threadId;
    return WorkerSession.outputs(reply);
  }

  async createState(name: string, elements: number): Promise<void> {
    await this.call({ type: 'createState', name, elements });
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
