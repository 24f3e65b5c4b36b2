#!/usr/bin/env node
// bench/decoder — the LLaMA decoder engine on a mid-size synthetic model, on this machine.
//
//   npm run build && node bench/decoder/run.mjs [--dim 1024] [--layers 8] [--heads 16] [--tokens 64]
//                                               [--streams 16] [--format fp32|fp16|int8|int4] [--json]
//
// Prints these ratios, each measured side by side in this one run (the machine is noisy):
//   (a) single-stream decode tok/s ÷ the memory-bandwidth bound (bandwidth ÷ weight bytes read per
//       token), with bandwidth measured here by a large memory copy (STREAM "copy": bytes read +
//       bytes written per second);
//   (b) aggregate tok/s with N concurrent sequences ÷ tok/s with one;
//   (b″) the same through DecoderRuntime (the decoder service's runtime without gRPC: admission,
//       the engine, and the decoder session in its worker thread with the slot KV cache there);
//   (c) KV-cache decode ÷ full recompute of the whole sequence for every new token.
// With --json the last line on stdout is one JSON object with the ratios and the bytes that cross
// the session boundary per row and decode step, keyed by the cache width of the step.
// Weights are random: speed does not depend on their values.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Buffer } from 'node:buffer';
import {
  adapterLlamaKeys,
  buildDecoderGraph,
  llamaBaseKeys,
  serializeModel,
  WeightStore,
} from '@imagebind-llm/model-builder';
import { createOrtSession, GenerationEngine, hostTensor, isStateRef } from '@imagebind-llm/inference';
import { DecoderRuntime } from '@imagebind-llm/serving';

const { values: args } = parseArgs({
  options: {
    dim: { type: 'string', default: '1024' },
    layers: { type: 'string', default: '8' },
    heads: { type: 'string', default: '16' },
    vocab: { type: 'string', default: '32000' },
    tokens: { type: 'string', default: '64' },
    prompt: { type: 'string', default: '16' },
    streams: { type: 'string', default: '16' },
    format: { type: 'string', default: 'fp32' },
    json: { type: 'boolean', default: false },
  },
});
const dim = Number(args.dim);
const nLayers = Number(args.layers);
const nHeads = Number(args.heads);
const vocab = Number(args.vocab);
const newTokens = Number(args.tokens);
const promptLen = Number(args.prompt);
const streams = Number(args.streams);
const format = args.format;

function say(line) {
  process.stdout.write(`${line}\n`);
}
const report = { provider: 'cpu', dim, layers: nLayers, heads: nHeads, streams, tokens: newTokens, format };

// ---- synthetic checkpoint entries (float32, random) ----
let seed = 12345;
function randomTensor(name, shape) {
  const n = shape.reduce((a, b) => a * b, 1);
  const fanIn = shape.at(-1) ?? 1;
  const scale = name.includes('norm') ? 0 : 1 / Math.sqrt(fanIn);
  return {
    name,
    dtype: 'float32',
    shape,
    byteLength: n * 4,
    async read() {
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        data[i] = name.includes('norm') ? 1 : ((seed / 2 ** 32) * 2 - 1) * scale * 1.7;
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
  headDim: dim / nHeads,
  vocabSize: vocab,
  ffnHidden,
  normEps: 1e-6,
  maxSeqLen: 512,
  ropeTableLen: 1024,
  ropeTheta: 10000,
  loraRank: 16,
  queryLayer: nLayers,
};
const entries = new Map();
for (const [k, shape] of llamaBaseKeys(config)) entries.set(`llama.${k}`, randomTensor(k, shape));
for (const [k, shape] of adapterLlamaKeys(config)) entries.set(k, randomTensor(k, shape));
const weights = new WeightStore(entries);

const work = mkdtempSync(join(tmpdir(), 'ibllm-bench-decoder-'));
try {
  say(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);
  say(
    `model: dim ${dim}, ${nLayers} layers, ${nHeads} heads, ffn ${ffnHidden}, vocab ${vocab}, weights ${format}`,
  );
  let t = performance.now();
  const graph = await buildDecoderGraph(weights, config, undefined, { format });
  const modelPath = join(work, 'decoder.onnx');
  writeFileSync(
    modelPath,
    serializeModel(graph, { opsets: { '': 17, 'com.microsoft': 1 }, producerVersion: 'bench' }),
  );
  // Bytes a decode step must read: every layer matrix and the output head (one embedding row is noise).
  const perWeight = {
    fp32: 4,
    fp16: 4 /* widened to float32 at load on CPU */,
    int8: 1 + 4 / 32,
    int4: 0.5 + 4 / 32,
  }[format];
  const layerParams = nLayers * (4 * dim * dim + 3 * dim * ffnHidden);
  const weightBytes = (layerParams + vocab * dim) * perWeight;
  say(
    `built in ${((performance.now() - t) / 1000).toFixed(1)} s; weight bytes read per token: ${(weightBytes / 1e6).toFixed(0)} MB`,
  );

  // ---- memory bandwidth: STREAM-style copy of a buffer far larger than the caches ----
  const size = 512 * 1024 * 1024;
  const src = Buffer.alloc(size, 1);
  const dst = Buffer.alloc(size);
  src.copy(dst); // fault the pages in
  let best = 0;
  for (let i = 0; i < 5; i++) {
    const s = performance.now();
    src.copy(dst);
    const secs = (performance.now() - s) / 1000;
    best = Math.max(best, (2 * size) / secs);
  }
  say(`copy bandwidth: ${(best / 1e9).toFixed(2)} GB/s (read + write, best of 5)`);
  const boundTokS = best / weightBytes;

  const session = await createOrtSession(modelPath);
  const shape = { nLayers, nHeads, headDim: dim / nHeads, dim, vocabSize: vocab, maxSeqLen: 512, eosId: 2 };
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

  // ---- (b′) the ceiling for (b): raw decode steps of the session at batch N vs 1, same past length ----
  const stepTime = async (b, past) => {
    const hd = dim / nHeads;
    const feeds = {
      input_ids: hostTensor('int64', [b, 1], new BigInt64Array(b).fill(5n)),
      position_ids: hostTensor('int64', [b, 1], new BigInt64Array(b).fill(BigInt(past))),
      attention_bias: hostTensor('float32', [b, 1, 1, past + 1], new Float32Array(b * (past + 1))),
      layer_offsets: hostTensor('float32', [b, nLayers, dim], new Float32Array(b * nLayers * dim)),
      gather_rows: hostTensor(
        'int64',
        [b],
        BigInt64Array.from({ length: b }, (_, i) => BigInt(i)),
      ),
    };
    for (let l = 0; l < nLayers; l++) {
      feeds[`cache_key_${l}`] = hostTensor(
        'float32',
        [b, nHeads, past, hd],
        new Float32Array(b * nHeads * past * hd),
      );
      feeds[`cache_value_${l}`] = hostTensor(
        'float32',
        [b, nHeads, past, hd],
        new Float32Array(b * nHeads * past * hd),
      );
    }
    await session.run(feeds, ['logits']);
    const reps = 10;
    const s0 = performance.now();
    for (let i = 0; i < reps; i++) await session.run(feeds, ['logits']);
    return (performance.now() - s0) / reps;
  };
  const past = promptLen + newTokens / 2;
  const t1 = await stepTime(1, past);
  const tn = await stepTime(streams, past);
  say(
    `(b′) raw session decode step at past ${past}: batch 1 ${t1.toFixed(1)} ms, batch ${streams} ${tn.toFixed(1)} ms → throughput ceiling ${((streams * t1) / tn).toFixed(2)}× (what (b) could reach with no engine overhead and no prefill)`,
  );
  report[`raw_ceiling_${streams}_over_1`] = (streams * t1) / tn;

  // ---- (b″) through DecoderRuntime, the decoder session in its worker thread ----
  const worker = await createOrtSession(modelPath, { thread: 'worker' });
  /** Bytes of feeds and returned outputs per decode step and row, keyed by the step's cache width. */
  const transfer = {};
  const counted = {
    get inputNames() {
      return worker.inputNames;
    },
    get outputNames() {
      return worker.outputNames;
    },
    run: (feeds, outputs) => worker.run(feeds, outputs),
    createState: (name, n) => worker.createState(name, n),
    writeState: (name, at, values) => worker.writeState(name, at, values),
    dropState: () => worker.dropState(),
    release: () => worker.release(),
    async runWithState(feeds, copies, outputs) {
      const out = await worker.runWithState(feeds, copies, outputs);
      const [rows, seq] = feeds.input_ids.dims;
      if (seq === 1) {
        let bytes = 0;
        for (const f of Object.values(feeds)) if (!isStateRef(f)) bytes += f.data.byteLength;
        for (const t of Object.values(out)) bytes += t.data.byteLength;
        transfer[String(feeds.attention_bias.dims[3] - 1)] = bytes / rows;
      }
      return out;
    },
  };
  const model = {
    decoder: counted,
    visual: undefined,
    tokenizer: undefined,
    shape,
    bosId: 1,
    info: { name: 'bench', version: '1', sourceSha256: '', executionProvider: 'cpu' },
  };
  const runtimeOf = (maxBatch) => DecoderRuntime.create(model, { maxBatch, maxWaiting: 64 });
  await runtimeOf(1).generate(request(4, { maxNewTokens: 4 })); // warm the worker
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
  const widths = Object.keys(transfer)
    .map(Number)
    .sort((a, b) => a - b);
  report.transfer_bytes_per_row_step = Object.fromEntries(
    [widths[0], widths.at(-1)].map((w) => [String(w), transfer[String(w)]]),
  );
  say(
    `bytes across the session boundary per row and decode step (KV stays in the worker): ${widths
      .filter((w, i) => i === 0 || i === widths.length - 1)
      .map((w) => `width ${w}: ${transfer[String(w)]} B`)
      .join(', ')}`,
  );
  await worker.release();

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
    const bias = new Float32Array(n * n);
    for (let q = 0; q < n; q++) for (let k = q + 1; k < n; k++) bias[q * n + k] = -Infinity;
    const feeds = {
      input_ids: hostTensor('int64', [1, n], BigInt64Array.from(seq, BigInt)),
      position_ids: hostTensor(
        'int64',
        [1, n],
        BigInt64Array.from({ length: n }, (_, i) => BigInt(i)),
      ),
      attention_bias: hostTensor('float32', [1, 1, n, n], bias),
      layer_offsets: hostTensor('float32', [1, nLayers, dim], offsets),
      gather_rows: hostTensor('int64', [1], BigInt64Array.of(BigInt(n - 1))),
    };
    for (let l = 0; l < nLayers; l++) {
      feeds[`cache_key_${l}`] = hostTensor('float32', [1, nHeads, 0, dim / nHeads], new Float32Array(0));
      feeds[`cache_value_${l}`] = hostTensor('float32', [1, nHeads, 0, dim / nHeads], new Float32Array(0));
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
  if (args.json) say(JSON.stringify(report));
  await session.release();
} finally {
  rmSync(work, { recursive: true, force: true });
}
