#!/usr/bin/env node
// bench/batch — an EMBED batch job vs the online Embed RPC called in a client loop, same machine,
// same gateway, same concurrency, measured side by side in one run (the machine is noisy).
//
//   npm run build && node bench/batch/run.mjs [--items 400] [--concurrency 16] [--chunk N] [--json]
//
// Needs Redis on 127.0.0.1:6379 and redis-cli (its keys are deleted at the end). Starts a standalone gateway (golden tiny-a models) with the batch
// API and one batch-worker process; both paths embed the same text items.
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
    json: { type: 'boolean', default: false },
  },
});
const ITEMS = Number(args.items);
const CONCURRENCY = Number(args.concurrency);
const PREFIX = `bench-batch-${randomBytes(4).toString('hex')}`;
const say = (line) => {
  if (!args.json) process.stdout.write(`${line}\n`);
};

const gateway = await startBatchGateway(PREFIX, {
  GATEWAY_RATE_LIMIT_RPM: '1000000',
  GATEWAY_RATE_LIMIT_BURST: '1000000',
  ...(args.chunk === undefined ? {} : { GATEWAY_BATCH_CHUNK_ITEMS: args.chunk }),
});
const worker = await startService('batch-worker', {
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
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return ITEMS / ((performance.now() - t0) / 1000);
}

try {
  // Both paths warm up first (JIT, connections, the worker's first queue jobs), then alternate.
  await online();
  await batch();
  const o1 = await online();
  const b1 = await batch();
  const o2 = await online();
  const b2 = await batch();
  const o = (o1 + o2) / 2;
  const b = (b1 + b2) / 2;
  say(`bench/batch: ${ITEMS} text items, concurrency ${CONCURRENCY} (golden tiny-a, 2-core VM)`);
  say(`  online Embed loop: ${o.toFixed(0)} items/s (runs ${o1.toFixed(0)}, ${o2.toFixed(0)})`);
  say(
    `  EMBED batch job:   ${b.toFixed(0)} items/s (runs ${b1.toFixed(0)}, ${b2.toFixed(0)}) incl. submit, queue and result store`,
  );
  say(`  batch ÷ online = ${(b / o).toFixed(2)}`);
  if (args.json) {
    const result = {
      items: ITEMS,
      concurrency: CONCURRENCY,
      online_items_per_s: o,
      batch_items_per_s: b,
      online_runs: [o1, o2],
      batch_runs: [b1, b2],
      batch_over_online: b / o,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
} finally {
  client.close();
  await worker.proc.stop('SIGTERM', 20_000);
  await gateway.proc.stop('SIGTERM', 20_000);
  deleteKeys(PREFIX);
}
process.exit(0);
