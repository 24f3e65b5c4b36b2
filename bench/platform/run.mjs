#!/usr/bin/env node
// bench/platform — the services as real processes on loopback, on this machine.
//
//   npm run build && node bench/platform/run.mjs [--requests 256] [--tokens 48] [--latency-runs 60]
//
// Prints three ratios, each measured side by side in this one run (the machine is noisy):
//   (a) encoder-vision throughput with 32 concurrent Encode calls ÷ the offline throughput of the
//       same model file run at the service's max batch size, straight through onnxruntime. The calls
//       carry preprocessed tensors so both sides do the same work (decode + resize is measured
//       separately by bench/preprocess); the gap is transport, batching and scheduling.
//   (b) decoder aggregate tok/s with 16 concurrent Generate streams ÷ one stream, through the
//       service over gRPC (tokens streamed one message each).
//   (c) p50 latency of the same Embed and Generate requests through the distributed platform
//       (gateway → services over loopback gRPC) minus standalone (everything in one process).
// Models: (a) a ViT-S-sized synthetic vision tower; (b), (c) the golden tiny-a repository (random
// weights, official formats), so absolute numbers are small-model numbers.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { callServerStream, callUnary, createClient, float32Tensor } from '@imagebind-llm/grpc-kit';
import { createOrtSession, hostTensor, resolveComponent } from '@imagebind-llm/inference';
import {
  demoImageBindConfigJson,
  parseImageBindConfig,
  writeSyntheticImageBindCheckpoint,
} from '@imagebind-llm/model-builder';
import { preprocessImage } from '@imagebind-llm/preprocess';
import { commonV1, decoderV1, encoderV1, gatewayV1 } from '@imagebind-llm/proto';
import {
  goldenModelRepository,
  goldenPath,
  repoRoot,
  startPlatform,
  startService,
} from '@imagebind-llm/testing';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '256' },
    tokens: { type: 'string', default: '48' },
    'latency-runs': { type: 'string', default: '60' },
    only: { type: 'string', default: 'abc' },
  },
});
const REQUESTS = Number(args.requests);
const TOKENS = Number(args.tokens);
const LATENCY_RUNS = Number(args['latency-runs']);
const MAX_BATCH = 32;
// The bench is one client sending back to back; the default per-key limit (600/min) would stop it.
const NO_RATE_LIMIT = { GATEWAY_RATE_LIMIT_RPM: '1000000', GATEWAY_RATE_LIMIT_BURST: '100000' };

const say = (line) => process.stdout.write(`${line}\n`);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

const repo = goldenModelRepository();

/**
 * (a) needs an encoder whose compute is not dwarfed by moving 600 KB tensors: a ViT-S-sized vision
 * tower (384 wide, 12 blocks, 6 heads; ViT-H is 1280/32/16) from a synthetic checkpoint in the
 * official format, built once into .models/bench-vision-s by `ibllm models build`.
 */
async function benchVisionRepository() {
  const out = join(repoRoot(), '.models', 'bench-vision-s');
  if (existsSync(join(out, 'imagebind-vision'))) return out;
  const work = join(repoRoot(), '.models', 'bench-vision-s-src');
  mkdirSync(work, { recursive: true });
  const json = demoImageBindConfigJson();
  Object.assign(json.imagebind, { vision_embed_dim: 384, vision_num_blocks: 12, vision_num_heads: 6 });
  writeFileSync(join(work, 'config.json'), JSON.stringify(json));
  await writeSyntheticImageBindCheckpoint(join(work, 'imagebind.pth'), parseImageBindConfig(json), 7);
  const cli = join(repoRoot(), 'tools', 'cli', 'bin', 'ibllm.js');
  const r = spawnSync(
    process.execPath,
    [
      cli,
      'models',
      'build',
      '--imagebind',
      join(work, 'imagebind.pth'),
      '--imagebind-config',
      join(work, 'config.json'),
      '--out',
      out,
    ],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) throw new Error('building the bench vision repository failed');
  return out;
}
const visionRepo = await benchVisionRepository();
const { tensor: image } = await preprocessImage(readFileSync(goldenPath('inputs', 'girl.jpg')));

// ---- (a) encoder: service at 32 concurrent vs offline max batch ----
async function offlineEncoder() {
  const session = await createOrtSession(resolveComponent(visionRepo, 'imagebind-vision').file('image'));
  const batch = new Float32Array(MAX_BATCH * image.length);
  for (let i = 0; i < MAX_BATCH; i++) batch.set(image, i * image.length);
  const feeds = { image: hostTensor('float32', [MAX_BATCH, 3, 224, 224], batch) };
  await session.run(feeds, ['embedding']);
  const rounds = Math.max(1, Math.round(REQUESTS / MAX_BATCH));
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) await session.run(feeds, ['embedding']);
  const s = (performance.now() - t0) / 1000;
  await session.release();
  return (rounds * MAX_BATCH) / s;
}

async function serviceEncoder() {
  const svc = await startService('encoder-vision', {
    MODEL_REPO: visionRepo,
    GRPC_PORT: '0',
    HTTP_PORT: '0',
  });
  const client = createClient(encoderV1.EncoderServiceClient, svc.grpcAddress);
  const request = {
    modality: commonV1.Modality.MODALITY_IMAGE,
    inputs: [
      { source: { $case: 'preprocessed', value: float32Tensor(image, [3, 224, 224]) }, mediaType: '' },
    ],
    includeUnnormalized: false,
    includePreprocessed: false,
  };
  const encode = () => callUnary(client.encode.bind(client), request, { timeoutMs: 60_000 });
  await Promise.all(Array.from({ length: 32 }, encode)); // warm connections and batches
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < REQUESTS) {
        next++;
        await encode();
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  const metrics = await (await fetch(`${svc.httpBase}/metrics`)).text();
  client.close();
  await svc.proc.stop('SIGTERM');
  const sum = Number(/ibllm_batch_size_sum\{[^}]*\} ([\d.e+]+)/.exec(metrics)?.[1] ?? NaN);
  const count = Number(/ibllm_batch_size_count\{[^}]*\} ([\d.e+]+)/.exec(metrics)?.[1] ?? NaN);
  return { perSecond: REQUESTS / s, meanBatch: sum / count };
}

// ---- (b) decoder: 16 streams vs 1 through the service ----
async function decoderStreams(client, tokenize, streams) {
  const v = new Float32Array(tokenize.dim).fill(0.01);
  const one = async (seed) => {
    let n = 0;
    for await (const m of callServerStream(
      client.generate.bind(client),
      {
        visualQuery: float32Tensor(v, [v.length]),
        promptTokenIds: tokenize.ids,
        resumeFromTokenIds: [],
        sampling: { temperature: 0.1, topP: 0.75, seed }, // the official defaults (MODEL_SPEC §1.3)
        stopping: { maxNewTokens: TOKENS, ignoreEos: true },
        returnPrefillLogits: false,
      },
      { timeoutMs: 120_000 },
    )) {
      n += m.tokens.length;
    }
    return n;
  };
  const t0 = performance.now();
  const counts = await Promise.all(Array.from({ length: streams }, (_, i) => one(i + 1)));
  const s = (performance.now() - t0) / 1000;
  return counts.reduce((a, b) => a + b, 0) / s;
}

async function decoderBench() {
  const svc = await startService('decoder', { MODEL_REPO: repo, GRPC_PORT: '0', HTTP_PORT: '0' });
  const client = createClient(decoderV1.DecoderServiceClient, svc.grpcAddress);
  const tok = await callUnary(client.tokenize.bind(client), {
    text: 'Describe the scene in detail.',
    input: '',
    template: decoderV1.PromptTemplate.PROMPT_TEMPLATE_ALPACA,
    addBos: true,
  });
  const dim = Number(
    JSON.parse(readFileSync(resolveComponent(repo, 'llama-decoder').dir + '/model.json', 'utf8')).config.dim,
  );
  const t = { ids: tok.tokenIds, dim };
  await decoderStreams(client, t, 2); // warm-up
  const single = await decoderStreams(client, t, 1);
  const multi = await decoderStreams(client, t, 16);
  const single2 = await decoderStreams(client, t, 1);
  client.close();
  await svc.proc.stop('SIGTERM');
  return { single: (single + single2) / 2, multi };
}

// ---- (c) latency: distributed − standalone ----
function gatewayRequests() {
  const text = {
    modality: commonV1.Modality.MODALITY_TEXT,
    source: { $case: 'text', value: 'A dog on the beach.' },
    mediaType: '',
  };
  const img = {
    modality: commonV1.Modality.MODALITY_IMAGE,
    source: { $case: 'content', value: readFileSync(goldenPath('inputs', 'girl.jpg')) },
    mediaType: 'image/jpeg',
  };
  return {
    embed: { inputs: [text], includeFused: true },
    generate: {
      inputs: [img],
      instruction: 'Describe the image.',
      input: '',
      sampling: { temperature: 0 },
      stopping: { maxNewTokens: 8 },
    },
  };
}

async function latencies(address) {
  const client = createClient(gatewayV1.GatewayServiceClient, address);
  const req = gatewayRequests();
  const embed = [];
  const generate = [];
  const once = async () => {
    let t0 = performance.now();
    await callUnary(client.embed.bind(client), req.embed, { timeoutMs: 60_000 });
    embed.push(performance.now() - t0);
    t0 = performance.now();
    for await (const m of callServerStream(client.generate.bind(client), req.generate, {
      timeoutMs: 60_000,
    })) {
      void m; // drain
    }
    generate.push(performance.now() - t0);
  };
  for (let i = 0; i < 5; i++) await once(); // warm-up
  embed.length = 0;
  generate.length = 0;
  for (let i = 0; i < LATENCY_RUNS; i++) await once();
  client.close();
  return { embed: median(embed), generate: median(generate) };
}

async function latencyBench() {
  const standalone = await startService(
    'gateway',
    {
      GATEWAY_MODE: 'standalone',
      GATEWAY_MODEL_REPO: repo,
      GATEWAY_GRPC_PORT: '0',
      GATEWAY_HTTP_PORT: '0',
      ...NO_RATE_LIMIT,
    },
    'gateway-standalone',
    120_000,
  );
  const a1 = await latencies(standalone.grpcAddress);
  await standalone.proc.stop('SIGTERM');
  const platform = await startPlatform({ repo, gatewayEnv: NO_RATE_LIMIT });
  const d = await latencies(platform.gateway.grpcAddress);
  await platform.stop();
  const standalone2 = await startService(
    'gateway',
    {
      GATEWAY_MODE: 'standalone',
      GATEWAY_MODEL_REPO: repo,
      GATEWAY_GRPC_PORT: '0',
      GATEWAY_HTTP_PORT: '0',
      ...NO_RATE_LIMIT,
    },
    'gateway-standalone',
    120_000,
  );
  const a2 = await latencies(standalone2.grpcAddress);
  await standalone2.proc.stop('SIGTERM');
  return {
    standalone: { embed: (a1.embed + a2.embed) / 2, generate: (a1.generate + a2.generate) / 2 },
    distributed: d,
  };
}

say(`bench/platform on ${repo} (golden tiny-a), ${REQUESTS} encode requests, ${TOKENS} tokens per stream`);
if (args.only.includes('a')) {
  const offline1 = await offlineEncoder();
  const service = await serviceEncoder();
  const offline2 = await offlineEncoder();
  const offline = (offline1 + offline2) / 2;
  say(
    `(a) encoder-vision: service ${service.perSecond.toFixed(0)} img/s at 32 concurrent (mean batch ${service.meanBatch.toFixed(1)}) ÷ offline batch-${MAX_BATCH} ${offline.toFixed(0)} img/s = ${(service.perSecond / offline).toFixed(2)} (goal ≥ 0.9)`,
  );
}
if (args.only.includes('b')) {
  const dec = await decoderBench();
  say(
    `(b) decoder: 16 streams ${dec.multi.toFixed(0)} tok/s ÷ 1 stream ${dec.single.toFixed(0)} tok/s = ${(dec.multi / dec.single).toFixed(2)}`,
  );
}
if (args.only.includes('c')) {
  const lat = await latencyBench();
  say(
    `(c) p50 Embed(text): distributed ${lat.distributed.embed.toFixed(2)} ms − standalone ${lat.standalone.embed.toFixed(2)} ms = ${(lat.distributed.embed - lat.standalone.embed).toFixed(2)} ms (goal ≤ 2 ms)`,
  );
  say(
    `    p50 Generate(image, 8 tokens): distributed ${lat.distributed.generate.toFixed(2)} ms − standalone ${lat.standalone.generate.toFixed(2)} ms = ${(lat.distributed.generate - lat.standalone.generate).toFixed(2)} ms`,
  );
}
process.exit(0);
