#!/usr/bin/env node
// bench/decoder — the LLaMA decoder engine on a synthetic model, on this machine's CPU or GPU.
//
//   npm run build && node bench/decoder/run.mjs [--provider cpu|webgpu] [--dim 1024] [--layers 8]
//       [--heads 16] [--vocab 32000] [--tokens 64] [--streams 16] [--format fp32|fp16|int8|int4]
//       [--quant-block 32|64|128] [--intra-op-threads N (0: one per CPU)] [--kv float32|float16] [--capacity 512] [--contexts 64,480] [--half-compute]
//       [--sections all|steps] [--profile-steps N [--profile-streams]]
//       [--webgpu-validation disabled|wgpuOnly|basic|full] [--general-steps] [--general-reps N] [--json]
//
// Prints these ratios, each measured side by side in this one run (machines are noisy):
//   (a) single-stream decode tok/s ÷ the memory-bandwidth bound (bandwidth ÷ weight bytes read per
//       token). Bandwidth is measured here by a large copy: a host memory copy for the CPU provider,
//       a copy between two device buffers through the session's provider for a GPU (bytes read +
//       bytes written per second);
//   (b) aggregate tok/s with N concurrent sequences ÷ tok/s with one, through the engine;
//   (b′) raw decode steps of the session, batch N vs 1, with the slot KV cache held by the session
//       (on the device for a GPU provider) at each context of --contexts: tok/s, ÷ the bound, and
//       the bytes that cross host ↔ session per row and step (equal at every context when nothing
//       of the cache travels). Greedy steps fetch the graph's next_token (its ArgMax of the logits);
//       `logits_fetch_cost` times a step that fetches the logits instead, side by side. On a
//       device the engine's decode steps run the step graph (model.step.onnx: the attention one
//       fused GroupQueryAttention writing the cache in place); (b′) times it and, side by side,
//       the general graph's steps (`general_steps`, `step_graph_speedup`; --general-reps N of
//       them, default --reps, 0 for none). --general-steps makes
//       the engine sections run the general graph instead;
//   (b″) the same as (b) through DecoderRuntime (the decoder service's runtime without gRPC);
//   (c) KV-cache decode ÷ full recompute of the whole sequence for every new token;
//   (p) with --profile-steps N: onnxruntime's profile of N raw steps, one row at the first context
//       (and with --profile-streams, --streams rows at the last), each in a session of its own (each
//       loads the model and allocates the slots once more): kernels per step by execution
//       provider, the host time recorded around them and, on WebGPU with timestamp queries, the
//       GPU programs' own time (host far above device: a step bounded by the cost per kernel). On a
//       device with the step graph, both graphs' steps are profiled (`profile`, `profile_general`).
// `--sections steps` runs (a) and (b′) only (the device check: a 7B-shaped model on a GPU).
// With --json the last line on stdout is one JSON object with the figures.
// Weights are random (a shared pool of values): speed does not depend on them.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Buffer } from 'node:buffer';
import {
  adapterLlamaKeys,
  buildDecoderGraph,
  buildStateGraph,
  GraphBuilder,
  hostDecoderGraph,
  llamaBaseKeys,
  stepDecoderGraph,
  OnnxType,
  QUANT_BLOCK_SIZE,
  QUANT_BLOCK_SIZES,
  WeightStore,
  writeGraph,
} from '@imagebind-llm/model-builder';
import {
  createOrtSession,
  GenerationEngine,
  hostTensor,
  isStateRef,
  readOrtProfile,
  STEP_GRAPH_INPUTS,
  WEBGPU_VALIDATION_MODES,
} from '@imagebind-llm/inference';

const { values: args } = parseArgs({
  options: {
    provider: { type: 'string', default: 'cpu' },
    dim: { type: 'string', default: '1024' },
    layers: { type: 'string', default: '8' },
    heads: { type: 'string', default: '16' },
    vocab: { type: 'string', default: '32000' },
    tokens: { type: 'string', default: '64' },
    prompt: { type: 'string', default: '16' },
    streams: { type: 'string', default: '16' },
    format: { type: 'string', default: 'fp32' },
    'quant-block': { type: 'string', default: String(QUANT_BLOCK_SIZE) },
    'intra-op-threads': { type: 'string', default: '0' },
    kv: { type: 'string', default: 'float32' },
    capacity: { type: 'string', default: '512' },
    contexts: { type: 'string', default: '64,480' },
    'half-compute': { type: 'boolean', default: false },
    sections: { type: 'string', default: 'all' },
    reps: { type: 'string', default: '10' },
    'profile-steps': { type: 'string', default: '0' },
    'profile-streams': { type: 'boolean', default: false },
    'webgpu-validation': { type: 'string' },
    'model-dir': { type: 'string' },
    'build-only': { type: 'boolean', default: false },
    'general-steps': { type: 'boolean', default: false },
    'general-reps': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const provider = args.provider;
const dim = Number(args.dim);
const nLayers = Number(args.layers);
const nHeads = Number(args.heads);
const headDim = dim / nHeads;
const vocab = Number(args.vocab);
const newTokens = Number(args.tokens);
const promptLen = Number(args.prompt);
const streams = Number(args.streams);
const format = args.format;
const kvDtype = args.kv;
const quantBlock = Number(args['quant-block']);
// 0: one per CPU the process may use (createOrtSession's default)
const intraOpThreads = Number(args['intra-op-threads']);
if (!(Number.isSafeInteger(intraOpThreads) && intraOpThreads >= 0))
  throw new Error(`--intra-op-threads must be an integer ≥ 0, got ${args['intra-op-threads']}`);
if (!QUANT_BLOCK_SIZES.includes(quantBlock))
  throw new Error(`--quant-block must be one of ${QUANT_BLOCK_SIZES.join(', ')}, got ${args['quant-block']}`);
const capacity = Number(args.capacity);
const contexts = args.contexts.split(',').map(Number);
const reps = Number(args.reps);
const profileSteps = Number(args['profile-steps']);
const generalReps = args['general-reps'] === undefined ? reps : Number(args['general-reps']);
if (!(Number.isSafeInteger(generalReps) && generalReps >= 0))
  throw new Error(`--general-reps must be an integer ≥ 0, got ${args['general-reps']}`);
const webgpuValidation = args['webgpu-validation'];
if (webgpuValidation !== undefined && !WEBGPU_VALIDATION_MODES.includes(webgpuValidation))
  throw new Error(`--webgpu-validation must be one of ${WEBGPU_VALIDATION_MODES.join(', ')}`);
// onnxruntime's default when unset
const validation = webgpuValidation === undefined ? {} : { webgpuValidation };
if (!(Number.isSafeInteger(profileSteps) && profileSteps >= 0))
  throw new Error(`--profile-steps must be an integer ≥ 0, got ${args['profile-steps']}`);
const allSections = args.sections === 'all';
if (!['cpu', 'webgpu'].includes(provider))
  throw new Error(`--provider must be cpu or webgpu, got ${provider}`);
if (!['float32', 'float16'].includes(kvDtype)) throw new Error(`--kv must be float32 or float16`);
if (contexts.some((c) => !(c > 0 && c < capacity)))
  throw new Error(`--contexts must lie in (0, --capacity ${capacity})`);

function say(line) {
  process.stdout.write(`${line}\n`);
}
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
const report = {
  provider,
  dim,
  layers: nLayers,
  heads: nHeads,
  vocab,
  streams,
  tokens: newTokens,
  format,
  quant_block: quantBlock,
  kv_dtype: kvDtype,
  half_compute: args['half-compute'],
  capacity,
  webgpu_validation: webgpuValidation ?? 'default',
};

// ---- synthetic checkpoint entries: float32 values cut from a random pool per fan-in ----
const POOL = 1 << 20;
const pools = new Map();
function poolFor(fanIn) {
  let pool = pools.get(fanIn);
  if (pool === undefined) {
    pool = new Float32Array(POOL + 65536);
    let seed = 12345 + fanIn;
    const scale = 1.7 / Math.sqrt(fanIn);
    for (let i = 0; i < pool.length; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      pool[i] = ((seed / 2 ** 32) * 2 - 1) * scale;
    }
    pools.set(fanIn, pool);
  }
  return pool;
}
let cursor = 0;
function randomTensor(name, shape) {
  const n = shape.reduce((a, b) => a * b, 1);
  const fanIn = shape.at(-1) ?? 1;
  // norms are ones; LoRA's second factor is zero (so merging it costs nothing); the rest random
  const kind = name.includes('norm') ? 'one' : name.includes('_l2.') ? 'zero' : 'random';
  return {
    name,
    dtype: 'float32',
    shape,
    byteLength: n * 4,
    async read() {
      const data = new Float32Array(n);
      if (kind === 'one') data.fill(1);
      else if (kind === 'random') {
        const pool = poolFor(fanIn);
        for (let at = 0; at < n; at += POOL) {
          const len = Math.min(POOL, n - at);
          cursor = (cursor + 7919) % 65536;
          data.set(pool.subarray(cursor, cursor + len), at);
        }
      }
      return { dtype: 'float32', shape, data: new Uint8Array(data.buffer) };
    },
  };
}
const ffnHidden = 256 * Math.ceil(Math.floor((8 * dim) / 3) / 256);
const config = {
  dim,
  nLayers,
  nHeads,
  headDim,
  vocabSize: vocab,
  ffnHidden,
  normEps: 1e-6,
  maxSeqLen: capacity,
  ropeTableLen: 2 * capacity,
  ropeTheta: 10000,
  loraRank: 16,
  queryLayer: nLayers,
};
const entries = new Map();
for (const [k, shape] of llamaBaseKeys(config)) entries.set(`llama.${k}`, randomTensor(k, shape));
for (const [k, shape] of adapterLlamaKeys(config)) entries.set(k, randomTensor(k, shape));

const weights = new WeightStore(entries);
const shape = {
  nLayers,
  nHeads,
  headDim,
  dim,
  vocabSize: vocab,
  maxSeqLen: capacity,
  eosId: 2,
  kvDtype,
};

/**
 * A graph that reads x and writes −x into the buffer bound to its output (device copy bandwidth).
 * An elementwise op, not Identity: the first H200 run showed Identity's copy taking a host round
 * trip (4.5 GB/s), which made every "of the bound" figure of that run meaningless.
 */
function copyGraph() {
  const g = new GraphBuilder('bench_copy');
  const x = g.input('x', OnnxType.FLOAT, ['n']);
  g.input('sink', OnnxType.FLOAT, ['n']);
  g.output(g.op1('Neg', [x]), 'y', OnnxType.FLOAT, ['n']);
  return g;
}

/** Device (or host) copy bandwidth in bytes/s, read + write, best of five. */
async function bandwidth(work) {
  if (provider === 'cpu') {
    const size = 512 * 1024 * 1024;
    const src = Buffer.alloc(size, 1);
    const dst = Buffer.alloc(size);
    src.copy(dst); // fault the pages in
    let best = 0;
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      src.copy(dst);
      best = Math.max(best, (2 * size) / ((performance.now() - s) / 1000));
    }
    return { bytesPerS: best, how: 'host memory copy (Buffer.copy, 512 MiB)' };
  }
  await writeGraph(work, 'copy.onnx', 0, 'never', async () => copyGraph());
  const session = await createOrtSession(join(work, 'copy.onnx'), {
    providers: [provider],
    ...validation,
    thread: 'worker',
    stateAllocModel: join(work, 'state.onnx'),
  });
  try {
    if (session.stateLocation !== 'device') throw new Error(`the copy session did not get device state`);
    const n = 256 * 1024 * 1024; // 1 GiB of float32 each way
    await session.createState('src', n);
    await session.createState('dst', n);
    const feeds = { x: { state: 'src', dims: [n] }, sink: { state: 'dst', dims: [n] } };
    const writes = [{ output: 'y', input: 'sink' }];
    await session.runWithState(feeds, writes, []);
    let best = 0;
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      // two copies per timed call so the fixed cost of a run weighs less
      await session.runWithState(feeds, writes, []);
      await session.runWithState(feeds, writes, []);
      best = Math.max(best, (2 * 2 * n * 4) / ((performance.now() - s) / 1000));
    }
    return {
      bytesPerS: best,
      how: `device buffer copy through ${provider} (1 GiB, Identity into a bound output)`,
    };
  } finally {
    await session.release();
  }
}

/** Zeroed KV elements in the cache's type. */
const kvElement = (n) => (kvDtype === 'float16' ? new Uint16Array(n) : new Float32Array(n));

/**
 * Feeds of one raw decode step for rows [0, b) at cache width `width` over the session's state,
 * the way GenerationEngine makes them: on a device the whole slot buffers with the present outputs
 * bound to them (in-place scatter); in host memory (the host graph) each row's first width
 * positions compacted as window_*, the new K/V copied into the slots from new_key/new_value.
 */
function stepFeeds(device, b, width) {
  const index = new BigInt64Array(b * nHeads * 3);
  for (let r = 0; r < b; r++)
    for (let h = 0; h < nHeads; h++)
      index.set([BigInt(r), BigInt(h), BigInt(device ? width : 0)], (r * nHeads + h) * 3);
  const scratch = { state: 'scratch', dims: [b, nHeads, 1, headDim] };
  const feeds = {
    input_ids: hostTensor('int64', [b, 1], new BigInt64Array(b).fill(5n)),
    position_ids: hostTensor('int64', [b, 1], new BigInt64Array(b).fill(BigInt(width))),
    past_lengths: hostTensor('int64', [b], new BigInt64Array(b).fill(BigInt(width))),
    new_lengths: hostTensor('int64', [b], new BigInt64Array(b).fill(1n)),
    layer_offsets: { state: 'offsets', dims: [b, nLayers, dim] },
    gather_rows: hostTensor(
      'int64',
      [b],
      BigInt64Array.from({ length: b }, (_, i) => BigInt(i)),
    ),
    kv_write_index: { dtype: 'int64', dims: [b, nHeads, 1, 3], data: index },
  };
  const writes = [];
  const spans = new Int32Array(b * nHeads * 3);
  for (let r = 0; r < b; r++)
    for (let h = 0; h < nHeads; h++)
      spans.set(
        [(r * nHeads + h) * headDim, ((r * nHeads + h) * capacity + width) * headDim, headDim],
        (r * nHeads + h) * 3,
      );
  for (let l = 0; l < nLayers; l++) {
    for (const kind of ['key', 'value']) {
      const state = `${kind[0]}${l}`;
      if (device) {
        const whole = { state, dims: [streams, nHeads, capacity, headDim] };
        feeds[`past_${kind}_${l}`] = whole;
        feeds[`cache_${kind}_${l}`] = whole;
        writes.push({ output: `present_${kind}_${l}`, input: `cache_${kind}_${l}` });
      } else {
        // as the engine feeds host memory: the rows' [0, width) positions to read, zeros of the
        // new position as the scatter's target, the new K/V copied into the slots
        feeds[`window_${kind}_${l}`] = {
          state,
          dims: [b, nHeads, width, headDim],
          window: { capacity, width },
        };
        feeds[`cache_${kind}_${l}`] = scratch;
        writes.push({ output: `new_${kind}_${l}`, state, spans });
      }
    }
  }
  return { feeds, writes };
}

/**
 * Feeds of one raw decode step of the step graph (device only) for rows [0, b) at cache length
 * `width`, the way GenerationEngine makes them: the first b slots of every buffer fed as past and
 * bound as present (GroupQueryAttention writes the new position in place).
 */
function fusedStepFeeds(b, width) {
  const feeds = {
    input_ids: hostTensor('int64', [b, 1], new BigInt64Array(b).fill(5n)),
    layer_offsets: { state: 'offsets', dims: [b, nLayers, dim] },
    gather_rows: hostTensor(
      'int64',
      [b],
      BigInt64Array.from({ length: b }, (_, i) => BigInt(i)),
    ),
    [STEP_GRAPH_INPUTS.seqlens]: { dtype: 'int32', dims: [b], data: new Int32Array(b).fill(width) },
    [STEP_GRAPH_INPUTS.total]: { dtype: 'int32', dims: [], data: Int32Array.of(width + 1) },
  };
  const writes = [];
  for (let l = 0; l < nLayers; l++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_${kind}_${l}`] = { state: `${kind[0]}${l}`, dims: [b, nHeads, capacity, headDim] };
      writes.push({ output: `present_${kind}_${l}`, input: `past_${kind}_${l}` });
    }
  }
  return { feeds, writes };
}

/** Bytes a run moves across the session boundary: host feeds and outputs (state stays put). */
function boundaryBytes(feeds, out) {
  let bytes = 0;
  for (const f of Object.values(feeds)) if (!isStateRef(f)) bytes += f.data.byteLength;
  for (const t of Object.values(out)) bytes += t.data.byteLength;
  return bytes;
}

// --model-dir keeps the built graphs (and reuses them when present): the device check builds two
// formats in parallel processes, then measures them one after the other.
const keep = args['model-dir'];
if (args['build-only'] && keep === undefined) throw new Error('--build-only needs --model-dir');
if (keep !== undefined) mkdirSync(keep, { recursive: true });
const work = keep ?? mkdtempSync(join(tmpdir(), 'ibllm-bench-decoder-'));
try {
  say(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
  say(
    `model: dim ${dim}, ${nLayers} layers, ${nHeads} heads, ffn ${ffnHidden}, vocab ${vocab}, weights ${format}${format.startsWith('int') ? ` block ${quantBlock}` : ''}` +
      `${args['half-compute'] ? ' (float16 matmuls)' : ''}, KV ${kvDtype}, capacity ${capacity}, provider ${provider}`,
  );
  let t = performance.now();
  await writeGraph(work, 'state.onnx', 0, 'never', async () => buildStateGraph());
  const perWeight = {
    fp32: 4,
    fp16: args['half-compute'] || provider !== 'cpu' ? 2 : 4,
    int8: 1 + 4 / quantBlock,
    int4: 0.5 + 4 / quantBlock,
  }[format];
  const layerParams = nLayers * (4 * dim * dim + 3 * dim * ffnHidden);
  const weightBytes = (layerParams + vocab * dim) * perWeight;
  // decoder.onnx for device state, decoder.host.onnx (fed the cache windows) for host state, as
  // `ibllm models build` writes model.onnx and model.host.onnx (external weights in one file)
  const modelPath = join(work, 'decoder.onnx');
  const hostModelPath = join(work, 'decoder.host.onnx');
  const stepModelPath = join(work, 'decoder.step.onnx');
  const models = {
    stateAllocModel: join(work, 'state.onnx'),
    hostStateModel: hostModelPath,
    stepStateModel: stepModelPath,
  };
  // A worker session of the decoder as every section opens it (`extra`: its own options).
  const decoderSession = (extra = {}) =>
    createOrtSession(modelPath, {
      providers: [provider],
      ...validation,
      thread: 'worker',
      intraOpThreads,
      ...models,
      ...extra,
    });
  if (keep !== undefined && [modelPath, hostModelPath, stepModelPath].every((p) => existsSync(p)))
    say(`reusing ${modelPath}`);
  else {
    await writeGraph(
      work,
      'decoder.onnx',
      weightBytes,
      'auto',
      (sink) =>
        buildDecoderGraph(weights, config, sink, {
          format,
          quantBlock,
          kvDtype,
          halfCompute: args['half-compute'],
          onLayer: (l) => {
            if ((l + 1) % 8 === 0 || l + 1 === nLayers)
              say(`  built layer ${l + 1}/${nLayers} (${elapsed()})`);
          },
        }),
      [
        { file: 'decoder.host.onnx', derive: (g) => hostDecoderGraph(g, config, kvDtype) },
        { file: 'decoder.step.onnx', derive: (g) => stepDecoderGraph(g, config, kvDtype) },
      ],
    );
    say(`built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  say(`weight bytes read per token: ${(weightBytes / 1e6).toFixed(0)} MB`);
  if (args['build-only']) process.exit(0);
  report.weight_bytes_per_token = weightBytes;

  const bw = await bandwidth(work);
  say(`copy bandwidth: ${(bw.bytesPerS / 1e9).toFixed(1)} GB/s (${bw.how}, read + write, best of 5)`);
  report.copy_bandwidth_gb_s = bw.bytesPerS / 1e9;
  const boundTokS = bw.bytesPerS / weightBytes;
  report.bound_tok_s = boundTokS;

  // ---- (b′) raw decode steps with the session's own slot cache, at each context ----
  // The slot buffers a raw-step session holds, as the engine keeps them with its session.
  const createSlots = async (session) => {
    for (let l = 0; l < nLayers; l++) {
      await session.createState(`k${l}`, streams * nHeads * capacity * headDim, { dtype: kvDtype });
      await session.createState(`v${l}`, streams * nHeads * capacity * headDim, { dtype: kvDtype });
    }
    await session.createState('offsets', streams * nLayers * dim);
    // host memory: the zeros the step's ScatterND targets (as the engine keeps them with the session)
    if (session.stateLocation !== 'device')
      await session.createState('scratch', streams * nHeads * headDim, { dtype: kvDtype });
  };
  const stepSession = await decoderSession({
    onProviders: (chosen, skipped, threads) => {
      report.providers = chosen;
      report.intra_op_threads = threads;
      if (skipped.length > 0) say(`providers skipped: ${JSON.stringify(skipped)}`);
    },
  });
  report.state_location = stepSession.stateLocation;
  say(
    `decoder session on ${report.providers.join(', ')}; slot KV cache held in ${stepSession.stateLocation} memory`,
  );
  t = performance.now();
  await createSlots(stepSession);
  const kvBytes = 2 * nLayers * streams * nHeads * capacity * headDim * (kvDtype === 'float16' ? 2 : 4);
  say(
    `slot cache: ${(kvBytes / 1e9).toFixed(2)} GB allocated in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );
  const steps = {};
  const transfer = {};
  // Greedy steps fetch the graph's next_token (the argmax where the session runs), as the engine
  // does for greedy rows; a repository built before it has only the logits.
  const fetch = stepSession.outputNames.includes('next_token') ? 'next_token' : 'logits';
  report.step_fetch = fetch;
  // On a device the engine's decode steps run the step graph; the general graph is timed beside it.
  const device = stepSession.stateLocation === 'device';
  const fused = device && stepSession.stepGraph === true;
  report.step_graph = fused ? 'step' : 'general';
  const feedsOf = (graph, b, ctx) => (graph === 'step' ? fusedStepFeeds(b, ctx) : stepFeeds(device, b, ctx));
  const timeSteps = async (feeds, writes, outputs, graph = 'main', n = reps) => {
    await stepSession.runWithState(feeds, writes, outputs, graph);
    const s0 = performance.now();
    for (let i = 0; i < n; i++) await stepSession.runWithState(feeds, writes, outputs, graph);
    return (performance.now() - s0) / n;
  };
  const compare = fused && generalReps > 0;
  const generalSteps = {};
  const speedup = {};
  for (const ctx of contexts) {
    const row = {};
    const generalRow = {};
    for (const b of [1, streams]) {
      const { feeds, writes } = feedsOf(fused ? 'step' : 'main', b, ctx);
      const out = await stepSession.runWithState(feeds, writes, [fetch], fused ? 'step' : 'main');
      if (b === 1) transfer[String(ctx)] = boundaryBytes(feeds, out) / b;
      else transfer[`${ctx}x${b}`] = boundaryBytes(feeds, out) / b;
      const ms = await timeSteps(feeds, writes, [fetch], fused ? 'step' : 'main');
      row[String(b)] = { step_ms: ms, tok_s: (1000 * b) / ms, over_bound: (1000 * b) / ms / boundTokS };
      if (compare) {
        const general = feedsOf('main', b, ctx);
        const generalMs = await timeSteps(general.feeds, general.writes, [fetch], 'main', generalReps);
        generalRow[String(b)] = { step_ms: generalMs, tok_s: (1000 * b) / generalMs };
      }
    }
    steps[String(ctx)] = row;
    const one = row['1'];
    const many = row[String(streams)];
    say(
      `(b′) context ${ctx}: 1 stream ${one.tok_s.toFixed(1)} tok/s (${one.step_ms.toFixed(2)} ms/step, ${one.over_bound.toFixed(2)} of the bound); ` +
        `${streams} streams ${many.tok_s.toFixed(1)} tok/s (${many.step_ms.toFixed(2)} ms/step, ${many.over_bound.toFixed(2)}× the bound) → ${(many.tok_s / one.tok_s).toFixed(2)}× (${elapsed()})`,
    );
    if (compare) {
      generalSteps[String(ctx)] = generalRow;
      speedup[String(ctx)] = Object.fromEntries(
        [1, streams].map((b) => [String(b), generalRow[String(b)].step_ms / row[String(b)].step_ms]),
      );
      say(
        `     the general graph's steps, same session: ${[1, streams]
          .map(
            (b) =>
              `${b} row(s) ${generalRow[String(b)].step_ms.toFixed(2)} ms/step → step graph ${speedup[String(ctx)][String(b)].toFixed(2)}× faster`,
          )
          .join(', ')}`,
      );
    }
  }
  report.steps = steps;
  if (compare) {
    report.general_steps = generalSteps;
    report.step_graph_speedup = speedup;
  }
  report.transfer_bytes_per_row_step = Object.fromEntries(
    contexts.map((c) => [String(c), transfer[String(c)]]),
  );
  report.transfer_bytes_per_row_step_at_n = Object.fromEntries(
    contexts.map((c) => [String(c), transfer[`${c}x${streams}`]]),
  );
  say(
    `bytes across host ↔ session per row and decode step: ${contexts
      .map(
        (c) => `context ${c}: ${transfer[String(c)]} B (${transfer[`${c}x${streams}`]} B at ${streams} rows)`,
      )
      .join(', ')}`,
  );
  if (fetch === 'next_token') {
    // What fetching the logits instead costs a step (sampling, log-probabilities): at the first
    // context, 1 and N rows, side by side with the argmax fetch.
    const ctx = contexts[0];
    const cost = {};
    for (const b of [1, streams]) {
      const graph = fused ? 'step' : 'main';
      const { feeds, writes } = feedsOf(graph, b, ctx);
      const argmaxMs = await timeSteps(feeds, writes, ['next_token'], graph);
      const logitsMs = await timeSteps(feeds, writes, ['logits'], graph);
      cost[String(b)] = {
        next_token_step_ms: argmaxMs,
        logits_step_ms: logitsMs,
        logits_over_next_token: logitsMs / argmaxMs,
      };
    }
    report.logits_fetch_cost = { context: ctx, ...cost };
    say(
      `fetching the logits instead of next_token at context ${ctx}: ${[1, streams]
        .map(
          (b) =>
            `${b} rows ${cost[b].logits_step_ms.toFixed(2)} vs ${cost[b].next_token_step_ms.toFixed(2)} ms/step (${cost[b].logits_over_next_token.toFixed(3)}×)`,
        )
        .join(', ')}`,
    );
  }
  const lastCtx = String(contexts.at(-1));
  report[`raw_ceiling_${streams}_over_1`] = steps[lastCtx][String(streams)].tok_s / steps[lastCtx]['1'].tok_s;
  report.bound_ratio_1_stream_raw = steps[String(contexts[0])]['1'].over_bound;
  await stepSession.release();

  // ---- (p) onnxruntime's profile of raw decode steps: one row at the first context, N rows at
  // the last. Kernels per step by provider, the time the profiler records around them on the host,
  // and (WebGPU, with timestamp queries) the GPU programs' own time: host time far above device
  // time is a step bounded by the host's cost per kernel.
  // The worker writes the step graph's profile to `<prefix>.step_*.json` (ort-worker-session.ts).
  const profileOf = async (rows, ctx, name) => {
    const prefix = join(work, name);
    const session = await decoderSession({ profileFilePrefix: prefix });
    try {
      await createSlots(session);
      for (const graph of fused ? ['step', 'main'] : ['main']) {
        const { feeds, writes } = feedsOf(graph, rows, ctx);
        for (let i = 0; i < profileSteps; i++) await session.runWithState(feeds, writes, [fetch], graph);
      }
    } finally {
      await session.release();
    }
    const summary = (profile, graph) => summarizeProfile(profile, graph, rows, ctx);
    return fused
      ? {
          ...summary(readOrtProfile(`${prefix}.step`), 'step'),
          general: summary(readOrtProfile(prefix), 'general'),
        }
      : summary(readOrtProfile(prefix), 'general');
  };
  const summarizeProfile = (profile, graph, rows, ctx) => {
    const eps = Object.keys(profile.kernels);
    say(
      `(p) profile of ${profile.runs} ${graph}-graph steps of ${rows} row(s) at context ${ctx}: ${(profile.runMicros / 1000).toFixed(2)} ms/step (profiled); ` +
        eps
          .map(
            (ep) =>
              `${ep}: ${profile.kernels[ep].toFixed(0)} kernels, ${(profile.micros[ep] / 1000).toFixed(2)} ms, ${(profile.micros[ep] / profile.kernels[ep]).toFixed(1)} µs each`,
          )
          .join('; ') +
        (profile.devicePrograms > 0
          ? `; device: ${profile.devicePrograms.toFixed(0)} programs, ${(profile.deviceMicros / 1000).toFixed(2)} ms`
          : '; no device timestamps'),
    );
    say(
      `    most time: ${profile.ops
        .slice(0, 6)
        .map(
          (o) =>
            `${o.op} ×${o.kernels.toFixed(0)} ${(o.micros / 1000).toFixed(2)} ms` +
            (o.deviceMicros > 0 ? ` (device ${(o.deviceMicros / 1000).toFixed(2)})` : ''),
        )
        .join(', ')}`,
    );
    return {
      graph,
      context: ctx,
      rows,
      steps: profile.runs,
      step_us: profile.runMicros,
      kernels_per_step: profile.kernels,
      kernel_us_per_step: profile.micros,
      us_per_kernel: Object.fromEntries(eps.map((ep) => [ep, profile.micros[ep] / profile.kernels[ep]])),
      device_programs_per_step: profile.devicePrograms,
      device_us_per_step: profile.deviceMicros,
      top_ops: profile.ops.slice(0, 12),
    };
  };
  if (profileSteps > 0) {
    report.profile = await profileOf(1, contexts[0], 'profile-1');
    if (args['profile-streams'])
      report[`profile_${streams}`] = await profileOf(streams, contexts.at(-1), `profile-${streams}`);
  }

  if (allSections) {
    // --general-steps: the engine's decode steps run the general graph (no step graph loaded)
    const session = await decoderSession(args['general-steps'] ? { stepStateModel: undefined } : {});
    report.engine_step_graph = session.stepGraph === true ? 'step' : 'general';
    const offsets = new Float32Array(nLayers * dim).fill(0.01);
    const prompt = (i) => [
      1,
      ...Array.from({ length: promptLen - 1 }, (_, k) => 100 + ((i * 31 + k * 7) % 5000)),
    ];
    const request = (i, extra = {}) => ({
      promptIds: prompt(i),
      layerOffsets: offsets,
      sampling: { temperature: 0, topP: 0.75, seed: 0n },
      maxNewTokens: newTokens,
      ignoreEos: true,
      ...extra,
    });
    // warm-up
    await new GenerationEngine(session, shape, { maxBatch: 1 }).generate(request(0, { maxNewTokens: 4 }));

    // ---- (a) single stream ----
    const single = new GenerationEngine(session, shape, { maxBatch: 1 });
    const stamps = [];
    await single.generate(request(1, { onToken: () => stamps.push(performance.now()) }));
    const decodeTokS = (stamps.length - 1) / ((stamps.at(-1) - stamps[0]) / 1000);
    say(
      `(a) single-stream decode: ${decodeTokS.toFixed(2)} tok/s; bandwidth bound ${boundTokS.toFixed(2)} tok/s → ratio ${(decodeTokS / boundTokS).toFixed(2)}`,
    );
    report.bound_ratio_1_stream = decodeTokS / boundTokS;

    // ---- (b) N concurrent streams vs 1 (same engine code, whole requests timed, prefill included) ----
    t = performance.now();
    await new GenerationEngine(session, shape, { maxBatch: 1 }).generate(request(2));
    const oneTokS = newTokens / ((performance.now() - t) / 1000);
    const batched = new GenerationEngine(session, shape, { maxBatch: streams });
    t = performance.now();
    await Promise.all(Array.from({ length: streams }, (_, i) => batched.generate(request(10 + i))));
    const manyTokS = (streams * newTokens) / ((performance.now() - t) / 1000);
    say(
      `(b) ${streams} streams: ${manyTokS.toFixed(2)} tok/s aggregate vs 1 stream ${oneTokS.toFixed(2)} tok/s → ratio ${(manyTokS / oneTokS).toFixed(2)}`,
    );
    report[`streams_${streams}_over_1`] = manyTokS / oneTokS;

    // ---- (b″) through DecoderRuntime, the decoder session in its worker thread ----
    // (imported here: the device check's bundle carries only what `--sections steps` needs)
    const { DecoderRuntime } = await import('@imagebind-llm/serving');
    const model = {
      decoder: session,
      visual: undefined,
      tokenizer: undefined,
      shape,
      bosId: 1,
      info: { name: 'bench', version: '1', sourceSha256: '', executionProvider: provider },
    };
    const runtimeOf = (maxBatch) => DecoderRuntime.create(model, { maxBatch, maxWaiting: 64 });
    await runtimeOf(1).generate(request(4, { maxNewTokens: 4 })); // warm
    t = performance.now();
    await runtimeOf(1).generate(request(5));
    const rtOne = newTokens / ((performance.now() - t) / 1000);
    const rtMany = runtimeOf(streams);
    t = performance.now();
    await Promise.all(Array.from({ length: streams }, (_, i) => rtMany.generate(request(40 + i))));
    const rtManyTokS = (streams * newTokens) / ((performance.now() - t) / 1000);
    say(
      `(b″) through DecoderRuntime (worker thread, slot cache): ${streams} streams ${rtManyTokS.toFixed(2)} tok/s vs 1 stream ${rtOne.toFixed(2)} tok/s → ratio ${(rtManyTokS / rtOne).toFixed(2)}`,
    );
    report[`service_streams_${streams}_over_1`] = rtManyTokS / rtOne;
    report.service_path = 'DecoderRuntime in-process (no gRPC)';

    // ---- (c) KV cache vs full recompute ----
    const recomputeTokens = Math.min(newTokens, 32);
    const kvEngine = new GenerationEngine(session, shape, { maxBatch: 1 });
    t = performance.now();
    await kvEngine.generate(request(3, { maxNewTokens: recomputeTokens }));
    const kvSecs = (performance.now() - t) / 1000;
    const seq = prompt(3);
    t = performance.now();
    for (let step = 0; step < recomputeTokens; step++) {
      const n = seq.length;
      const index = new BigInt64Array(nHeads * n * 3);
      for (let h = 0; h < nHeads; h++)
        for (let k = 0; k < n; k++) index.set([0n, BigInt(h), BigInt(k)], (h * n + k) * 3);
      const feeds = {
        input_ids: hostTensor('int64', [1, n], BigInt64Array.from(seq, BigInt)),
        position_ids: hostTensor(
          'int64',
          [1, n],
          BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
        ),
        past_lengths: hostTensor('int64', [1], BigInt64Array.of(0n)),
        new_lengths: hostTensor('int64', [1], BigInt64Array.of(BigInt(n))),
        layer_offsets: hostTensor('float32', [1, nLayers, dim], offsets),
        gather_rows: hostTensor('int64', [1], BigInt64Array.of(BigInt(n - 1))),
        kv_write_index: { dtype: 'int64', dims: [1, nHeads, n, 3], data: index },
      };
      // no past: the graph reads one position, masked out (the host graph is fed just that one)
      const windowed = session.inputNames.includes('window_key_0');
      for (let l = 0; l < nLayers; l++) {
        for (const input of [windowed ? 'window' : 'past', 'cache'])
          for (const kind of ['key', 'value']) {
            const positions = input === 'window' ? 1 : n;
            feeds[`${input}_${kind}_${l}`] = {
              dtype: kvDtype,
              dims: [1, nHeads, positions, headDim],
              data: kvElement(nHeads * positions * headDim),
            };
          }
      }
      const out = await session.run(feeds, ['logits']);
      const logits = out.logits.data;
      let arg = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i] > logits[arg]) arg = i;
      seq.push(arg);
    }
    const recomputeSecs = (performance.now() - t) / 1000;
    say(
      `(c) ${recomputeTokens} tokens after a ${promptLen}-token prompt: KV cache ${kvSecs.toFixed(2)} s, full recompute ${recomputeSecs.toFixed(2)} s → KV cache ${(recomputeSecs / kvSecs).toFixed(2)}× faster`,
    );
    report.kv_cache_over_recompute = recomputeSecs / kvSecs;
    await session.release();
  }
  report.wall_s = (performance.now() - started) / 1000;
  if (args.json) say(JSON.stringify(report));
} finally {
  if (keep === undefined) rmSync(work, { recursive: true, force: true });
}
