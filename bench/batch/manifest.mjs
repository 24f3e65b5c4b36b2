#!/usr/bin/env node
// bench/batch/manifest — submits one EMBED job from an N-line manifest (default 100,000 items, issue
// #16 item 6) to a standalone gateway and measures what the submission costs: wall time of the
// SubmitBatchJob call, the gateway's peak RSS growth, and the Redis memory the queued job holds
// (per item), then cancels it (which removes its queued items) and times that. Nothing is run: the
// gateway's worker is off; the bench's keys are deleted at the end.
//
//   npm run build && node bench/batch/manifest.mjs [--items 100000] [--json]
//
// Needs Redis on 127.0.0.1:6379 and redis-cli. Timings are measured, never asserted.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { gatewayV1, ImageBindClient } from '@imagebind-llm/client';
import { deleteKeys, redis, startBatchGateway } from './support.mjs';

const { values: args } = parseArgs({
  options: { items: { type: 'string', default: '100000' }, json: { type: 'boolean', default: false } },
});
const ITEMS = Number(args.items);
if (!Number.isSafeInteger(ITEMS) || ITEMS < 1) throw new RangeError(`--items must be a positive integer`);
const PREFIX = `bench-manifest-${randomBytes(4).toString('hex')}`;
const say = (line) => {
  if (!args.json) process.stdout.write(`${line}\n`);
};

const redisUsedBytes = () => Number(/used_memory:(\d+)/.exec(redis('INFO', 'memory'))?.[1]);
/** Peak and current resident set of a process (kB from /proc, returned in bytes). */
function rss(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1]) * 1024;
  return { peak: kb('VmHWM'), now: kb('VmRSS') };
}

const dir = mkdtempSync(join(tmpdir(), 'ibllm-manifest-'));
const manifest = join(dir, 'manifest.jsonl');
const lines = [];
for (let i = 0; i < ITEMS; i++) {
  lines.push(
    JSON.stringify({
      itemId: `item-${i}`,
      inputs: [{ modality: 'MODALITY_TEXT', text: `a photo of item number ${i}`, weight: 1 }],
    }),
  );
}
writeFileSync(manifest, `${lines.join('\n')}\n`);
lines.length = 0;
const manifestBytes = statSync(manifest).size;

const gateway = await startBatchGateway(PREFIX, {
  GATEWAY_BATCH_MAX_ITEMS: String(Math.max(ITEMS, 10_000)),
  GATEWAY_BATCH_FILE_ROOT: dir,
  GATEWAY_MAX_BODY_BYTES: String(Math.max(manifestBytes + 1024, 48 * 1024 * 1024)),
});
const client = new ImageBindClient({ addresses: [gateway.grpcAddress] });
const pid = gateway.proc.child.pid;
try {
  const before = { redis: redisUsedBytes(), rss: rss(pid) };
  const t0 = performance.now();
  const job = await client.submitBatchJob(
    { kind: gatewayV1.BatchJobKind.BATCH_JOB_KIND_EMBED, manifestUri: 'manifest.jsonl' },
    { timeoutMs: 600_000 },
  );
  const submitS = (performance.now() - t0) / 1000;
  const after = { redis: redisUsedBytes(), rss: rss(pid) };
  const out = {
    items: ITEMS,
    manifest_bytes: manifestBytes,
    submit_s: Number(submitS.toFixed(2)),
    job_state: gatewayV1.BatchJobState[job.state],
    gateway_peak_rss_growth_bytes: after.rss.peak - before.rss.now,
    redis_bytes: after.redis - before.redis,
    redis_bytes_per_item: Math.round((after.redis - before.redis) / ITEMS),
  };
  say(`bench/batch/manifest: ${ITEMS} items, manifest ${(manifestBytes / 1e6).toFixed(1)} MB`);
  say(`  SubmitBatchJob: ${out.submit_s} s (job ${out.job_state})`);
  say(`  gateway peak RSS growth: ${(out.gateway_peak_rss_growth_bytes / 1e6).toFixed(0)} MB`);
  say(
    `  Redis: ${(out.redis_bytes / 1e6).toFixed(1)} MB for the queued job, ${out.redis_bytes_per_item} bytes per item`,
  );
  // Cancelling removes every queued item from BullMQ: timed too (it is part of the job's life).
  const t1 = performance.now();
  await client.cancelBatchJob(job.jobId, { timeoutMs: 600_000 });
  out.cancel_s = Number(((performance.now() - t1) / 1000).toFixed(2));
  say(`  CancelBatchJob (removes the queued items): ${out.cancel_s} s`);
  if (args.json) process.stdout.write(`${JSON.stringify(out)}\n`);
} finally {
  client.close();
  await gateway.proc.stop('SIGTERM', 20_000);
  deleteKeys(PREFIX);
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
