#!/usr/bin/env node
// bench/decoder/service.mjs — the decoder service as users reach it: its own process, gRPC on
// loopback, a model repository built by `ibllm models build` from synthetic checkpoints.
//
//   npm run build && node bench/decoder/service.mjs [--dim 1024] [--layers 8] [--heads 16]
//       [--tokens 64] [--prompt 16] [--streams 16] [--quantize none|int8|int4] [--repo DIR]
//       [--intra-op-threads N (the service's INTRA_OP_THREADS; 0: one per CPU)]
//       [--keep] [--json]
//
// Prints, measured side by side in this one run (machines are noisy):
//   - aggregate decode tok/s of --streams concurrent Generate streams ÷ tok/s of one stream
//     (`service_streams_16_over_1`), whole requests timed as a client sees them (prefill included);
//   - the decoder process's event-loop delay while the streams decode: p99 of prom-client's
//     `nodejs_eventloop_lag_p99_seconds` (monitorEventLoopDelay inside the process, reset by the
//     scrape before the window; its 10 ms sampling interval subtracted) and the latency p99 of
//     /healthz asked on fresh connections every 10 ms (what a kubelet probe sees), beside the same
//     figures for one stream.
// The repository is built once under --repo (reused when it exists) or in a temp folder.
// With --json the last line on stdout is one JSON object with the figures.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeSyntheticLanguageCheckpoints } from '@imagebind-llm/model-builder';
import { callServerStream, createClient, float32Tensor } from '@imagebind-llm/grpc-kit';
import { decoderV1 } from '@imagebind-llm/proto';
import { startService } from '@imagebind-llm/testing';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: args } = parseArgs({
  options: {
    dim: { type: 'string', default: '1024' },
    layers: { type: 'string', default: '8' },
    heads: { type: 'string', default: '16' },
    tokens: { type: 'string', default: '64' },
    prompt: { type: 'string', default: '16' },
    streams: { type: 'string', default: '16' },
    quantize: { type: 'string', default: 'none' },
    'intra-op-threads': { type: 'string', default: '0' },
    repo: { type: 'string' },
    keep: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    golden: { type: 'string', default: join(root, '..', 'shared', 'golden', 'tiny-a') },
  },
  strict: true,
});
const int = (name, min) => {
  const n = Number(args[name]);
  if (!Number.isSafeInteger(n) || n < min) {
    process.stderr.write(`--${name} must be an integer ≥ ${min}, got ${args[name]}\n`);
    process.exit(2);
  }
  return n;
};
const dim = int('dim', 64);
const layers = int('layers', 1);
const heads = int('heads', 1);
const newTokens = int('tokens', 2);
const intraOpThreads = int('intra-op-threads', 0);
const promptLen = int('prompt', 1);
const streams = int('streams', 2);
if (!['none', 'int8', 'int4'].includes(args.quantize)) {
  process.stderr.write(`--quantize must be none, int8 or int4, got ${args.quantize}\n`);
  process.exit(2);
}
const say = (line) => process.stderr.write(`${line}\n`);
const cli = join(root, 'tools', 'cli', 'bin', 'ibllm.js');
for (const built of ['services/decoder/dist/main.js', 'tools/cli/dist/main.js'].map((p) => join(root, p))) {
  if (!existsSync(built)) {
    say(`${built} is missing: run \`npm run build\` first`);
    process.exit(2);
  }
}
const tokenizer = join(args.golden, 'llama', 'tokenizer.model');
if (!existsSync(tokenizer)) {
  say(`${tokenizer} not found (pass --golden DIR)`);
  process.exit(2);
}

// ---- the repository ----------------------------------------------------------------------------
const scratch = mkdtempSync(join(tmpdir(), 'ibllm-decoder-service-'));
const repo = resolve(args.repo ?? join(scratch, 'repo'));
if (!existsSync(join(repo, 'llama-decoder'))) {
  const t0 = performance.now();
  const ckpt = join(scratch, 'checkpoints');
  const written = await writeSyntheticLanguageCheckpoints(ckpt, {
    dim,
    nLayers: layers,
    nHeads: heads,
    multipleOf: 256,
    vocabSize: 32000,
    loraRank: 16,
    bindHidden: 1024,
    bindIn: 1024,
    queryLayer: Math.min(32, layers),
    seed: 7,
    baseDtype: 'float16',
  });
  copyFileSync(tokenizer, join(written.llamaDir, written.llamaType, 'tokenizer.model'));
  copyFileSync(tokenizer, join(written.llamaDir, 'tokenizer.model'));
  mkdirSync(dirname(repo), { recursive: true });
  const build = spawnSync(
    process.execPath,
    [
      cli,
      'models',
      'build',
      '--llama-dir',
      written.llamaDir,
      '--llama-type',
      written.llamaType,
      '--adapter',
      written.adapter,
      ...(args.quantize === 'none' ? [] : ['--quantize', args.quantize]),
      '--out',
      repo,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (build.status !== 0) {
    say(`ibllm models build failed (exit ${build.status})`);
    process.exit(1);
  }
  rmSync(ckpt, { recursive: true, force: true });
  say(`built ${repo} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const decoderDir = join(repo, 'llama-decoder', readdirSync(join(repo, 'llama-decoder')).sort().at(-1));
const config = JSON.parse(readFileSync(join(decoderDir, 'model.json'), 'utf8')).config;

// ---- the decoder process -----------------------------------------------------------------------
const svc = await startService('decoder', {
  MODEL_REPO: repo,
  GRPC_PORT: '0',
  HTTP_PORT: '0',
  DECODER_MAX_BATCH: String(streams),
  INTRA_OP_THREADS: String(intraOpThreads),
});
const httpPort = Number(new URL(svc.httpBase).port);
const client = createClient(decoderV1.DecoderServiceClient, svc.grpcAddress);

/** GET on a fresh connection (as a kubelet probe): its latency in ms and the body. */
function get(path) {
  return new Promise((resolveGet, reject) => {
    const t0 = performance.now();
    const req = httpRequest({ host: '127.0.0.1', port: httpPort, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolveGet({ ms: performance.now() - t0, status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
/**
 * prom-client's monitorEventLoopDelay samples every 10 ms and records the whole interval between
 * two samples, so an idle loop reads ≈ 10 ms: the delay is what lies beyond that interval.
 */
const SAMPLING_MS = 10;
const lagP99Ms = async () => {
  const { body } = await get('/metrics');
  const m = /^nodejs_eventloop_lag_p99_seconds(?:\{[^}]*\})? (\S+)$/m.exec(body);
  return m === null ? null : Math.max(0, Number(m[1]) * 1000 - SAMPLING_MS);
};

let seed = 1;
const rand = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32 - 0.5;
};
/** One Generate stream to its end: the tokens it produced. */
function generate(i) {
  const v = Float32Array.from({ length: config.dim }, () => rand() / 8);
  const req = {
    visualQuery: float32Tensor(v, [v.length]),
    promptTokenIds: [1, ...Array.from({ length: promptLen - 1 }, (_, j) => 100 + ((i * 31 + j * 7) % 20000))],
    resumeFromTokenIds: [],
    sampling: { temperature: 0, topP: 0.75, seed: i },
    stopping: { maxNewTokens: newTokens, ignoreEos: true },
    returnPrefillLogits: false,
  };
  return (async () => {
    let tokens = 0;
    for await (const m of callServerStream(client.generate.bind(client), req, { timeoutMs: 600_000 }))
      tokens += m.tokens.length;
    return tokens;
  })();
}

/** `n` streams at once, with /healthz probed every 10 ms and the in-process lag read after. */
async function window(n, offset) {
  await lagP99Ms(); // the scrape resets prom-client's histogram: the next one covers this window
  const probes = [];
  let probing = true;
  const prober = (async () => {
    while (probing) {
      probes.push((await get('/healthz')).ms);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const t0 = performance.now();
  const counts = await Promise.all(Array.from({ length: n }, (_, i) => generate(offset + i)));
  const seconds = (performance.now() - t0) / 1000;
  probing = false;
  await prober;
  const lag = await lagP99Ms();
  probes.sort((a, b) => a - b);
  const tokens = counts.reduce((a, b) => a + b, 0);
  return {
    streams: n,
    tokens,
    seconds,
    tok_s: tokens / seconds,
    event_loop_lag_p99_ms: lag,
    healthz_p99_ms: probes[Math.min(probes.length - 1, Math.floor(0.99 * probes.length))] ?? null,
    healthz_probes: probes.length,
  };
}

const started = performance.now();
const report = {
  dim: config.dim,
  layers: config.nLayers ?? layers,
  heads,
  quantize: args.quantize,
  streams,
  tokens: newTokens,
  prompt: promptLen,
  cores: cpus().length,
  intra_op_threads: intraOpThreads,
  service_path: 'decoder service process over gRPC on loopback',
};
try {
  await window(1, 1000); // warm: first-use costs of the sessions and the arena
  const one = await window(1, 0);
  const many = await window(streams, 100);
  say(
    `1 stream: ${one.tok_s.toFixed(2)} tok/s (event loop p99 ${one.event_loop_lag_p99_ms?.toFixed(1)} ms, ` +
      `/healthz p99 ${one.healthz_p99_ms?.toFixed(1)} ms)`,
  );
  say(
    `${streams} streams: ${many.tok_s.toFixed(2)} tok/s aggregate → ratio ${(many.tok_s / one.tok_s).toFixed(2)} ` +
      `(event loop p99 ${many.event_loop_lag_p99_ms?.toFixed(1)} ms, /healthz p99 ${many.healthz_p99_ms?.toFixed(1)} ms ` +
      `over ${many.healthz_probes} probes)`,
  );
  Object.assign(report, {
    one,
    many,
    [`service_streams_${streams}_over_1`]: many.tok_s / one.tok_s,
    [`event_loop_p99_ms_${streams}_streams`]: many.event_loop_lag_p99_ms,
    [`healthz_p99_ms_${streams}_streams`]: many.healthz_p99_ms,
  });
} finally {
  client.close();
  await svc.proc.stop('SIGTERM');
  if (!args.keep || args.repo !== undefined) rmSync(scratch, { recursive: true, force: true });
  else say(`kept ${scratch}`);
}
report.wall_s = (performance.now() - started) / 1000;
if (args.json) process.stdout.write(`${JSON.stringify(report)}\n`);
