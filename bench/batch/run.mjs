#!/usr/bin/env node
// bench/batch — an EMBED batch job vs the online Embed RPC called in a client loop, same machine,
// same gateway, same concurrency, measured side by side in one run (the machine is noisy).
//
//   npm run build && node bench/batch/run.mjs [--items 400] [--concurrency 16] [--chunk N] [--rounds 3]
//       [--worker process|in-process] [--json]
//
// Needs Redis on 127.0.0.1:6379 and redis-cli (its keys are deleted at the end). Starts a standalone
// gateway (golden tiny-a models) with the batch API, and one batch-worker process or the gateway's
// own worker (--worker); both paths embed the same text items.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { gatewayV1, ImageBindClient, text } from '@imagebind-llm/client';
import { startService } from '@imagebind-llm/testing';
import { deleteKeys, startBatchGateway } from './support.mjs';

const { values: args } = parseArgs({
  options: {
    items: { type: 'string', default: '400' },
    concurrency: { type: 'string', default: '16' },
    // Items per queue job; unset = the gateway's default for EMBED (DEFAULT_CHUNK_ITEMS).
    chunk: { type: 'string' },
    // Measured rounds after the warm-up; each runs the online loop, then the batch job.
    rounds: { type: 'string', default: '3' },
    worker: { type: 'string', default: 'process' },
    json: { type: 'boolean', default: false },
  },
});
const ITEMS = Number(args.items);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Math.max(1, Number(args.rounds));
const PREFIX = `bench-batch-${randomBytes(4).toString('hex')}`;
const say = (line) => {
  if (!args.json) process.stdout.write(`${line}\n`);
};

// --worker process: a batch-worker process calling the gateway over gRPC (the distributed
// deployment); --worker in-process: the standalone gateway's own worker, whose items call its
// orchestration directly (ibllm serve --standalone with a Redis URL).
const IN_PROCESS = args.worker === 'in-process';
if (!IN_PROCESS && args.worker !== 'process') {
  throw new Error(`--worker must be process or in-process (got ${args.worker})`);
}
const gateway = await startBatchGateway(PREFIX, {
  GATEWAY_RATE_LIMIT_RPM: '1000000',
  GATEWAY_RATE_LIMIT_BURST: '1000000',
  ...(args.chunk === undefined ? {} : { GATEWAY_BATCH_CHUNK_ITEMS: args.chunk }),
  ...(IN_PROCESS
    ? { GATEWAY_BATCH_WORKER: 'true', GATEWAY_BATCH_WORKER_CONCURRENCY: String(CONCURRENCY) }
    : {}),
});
const worker = IN_PROCESS
  ? undefined
  : await startService('batch-worker', {
      GRPC_PORT: '0',
      HTTP_PORT: '0',
      REDIS_URL: 'redis://127.0.0.1:6379',
      QUEUE_PREFIX: PREFIX,
      GATEWAY_TARGET: gateway.grpcAddress,
      WORKER_CONCURRENCY: String(CONCURRENCY),
    });
const client = new ImageBindClient({ addresses: [gateway.grpcAddress] });
const items = Array.from({ length: ITEMS }, (_, i) => `a photo of item number ${i}`);

async function online() {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < ITEMS) {
        const i = next++;
        await client.embed({ inputs: [text(items[i])], includeFused: true });
      }
    }),
  );
  return ITEMS / ((performance.now() - t0) / 1000);
}

/**
 * How long to wait before the next status poll: a quarter of the time the rest of the job should
 * take at the rate seen so far, between 5 and 100 ms. Each poll is a gateway call and a Redis read
 * on the same two cores the job runs on: polling every few ms throughout would slow the job it
 * measures, while polling seldom near the end would overstate its time.
 */
function pollDelayMs(progress, elapsedMs) {
  const done = Number(progress?.succeeded ?? 0) + Number(progress?.failed ?? 0);
  if (done === 0) return 10;
  const remainingMs = ((ITEMS - done) * elapsedMs) / done;
  return Math.max(5, Math.min(100, remainingMs / 4));
}

async function batch() {
  const t0 = performance.now();
  const job = await client.submitBatchJob({
    kind: gatewayV1.BatchJobKind.BATCH_JOB_KIND_EMBED,
    items: items.map((t, i) => ({ itemId: String(i), inputs: [text(t)], instruction: '', input: '' })),
  });
  for (;;) {
    const j = await client.getBatchJob(job.jobId);
    if (j.state === gatewayV1.BatchJobState.BATCH_JOB_STATE_SUCCEEDED) break;
    if (
      j.state !== gatewayV1.BatchJobState.BATCH_JOB_STATE_RUNNING &&
      j.state !== gatewayV1.BatchJobState.BATCH_JOB_STATE_QUEUED
    ) {
      throw new Error(`the batch job ended ${j.state}`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollDelayMs(j.progress, performance.now() - t0)));
  }
  return ITEMS / ((performance.now() - t0) / 1000);
}

try {
  // Both paths warm up first (JIT, connections, the worker's first queue jobs: the online loop
  // speeds up over its first three or four passes, 560 -> 900 items/s here), then alternate; the
  // ratio is the median of the rounds' ratios (one slow round on a shared machine moves it least).
  for (let i = 0; i < 4; i++) await online();
  await batch();
  const onlineRuns = [];
  const batchRuns = [];
  for (let r = 0; r < ROUNDS; r++) {
    onlineRuns.push(await online());
    batchRuns.push(await batch());
  }
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const ratios = onlineRuns.map((o, r) => batchRuns[r] / o).sort((a, b) => a - b);
  const mid = Math.floor(ratios.length / 2);
  const ratio = ratios.length % 2 === 1 ? ratios[mid] : (ratios[mid - 1] + ratios[mid]) / 2;
  const runs = (xs) => xs.map((x) => x.toFixed(0)).join(', ');
  say(
    `bench/batch: ${ITEMS} text items, concurrency ${CONCURRENCY}, ${IN_PROCESS ? "the gateway's in-process worker" : 'a batch-worker process'} (golden tiny-a)`,
  );
  say(`  online Embed loop: ${mean(onlineRuns).toFixed(0)} items/s (runs ${runs(onlineRuns)})`);
  say(
    `  EMBED batch job:   ${mean(batchRuns).toFixed(0)} items/s (runs ${runs(batchRuns)}) incl. submit, queue and result store`,
  );
  say(
    `  batch ÷ online = ${ratio.toFixed(2)} (median of ${ROUNDS} rounds: ${ratios.map((x) => x.toFixed(2)).join(', ')})`,
  );
  if (args.json) {
    const result = {
      items: ITEMS,
      concurrency: CONCURRENCY,
      worker: IN_PROCESS ? 'in-process' : 'process',
      rounds: ROUNDS,
      online_items_per_s: mean(onlineRuns),
      batch_items_per_s: mean(batchRuns),
      online_runs: onlineRuns,
      batch_runs: batchRuns,
      round_ratios: ratios,
      batch_over_online: ratio,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
} finally {
  client.close();
  await worker?.proc.stop('SIGTERM', 20_000);
  await gateway.proc.stop('SIGTERM', 20_000);
  deleteKeys(PREFIX);
}
process.exit(0);
