// A batch worker in its own process, for the kill -9 test (batch-worker-crash.int-spec.ts).
// It loads the BUILT library (libs/queue/dist), which the test builds first, so it runs under
// plain node. Settings come from the environment the test passes.
'use strict';
/* global require */
/* eslint-disable @typescript-eslint/no-require-imports -- plain CommonJS run by node, no build step */

const { BatchJobStore, startBatchWorker } = require('../../dist/index.js');
const { createLogger } = require('@imagebind-llm/observability');
const { Redis } = require('ioredis');

async function main() {
  const redisUrl = process.env.REDIS_URL;
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const store = new BatchJobStore(redis, { prefix: process.env.STORE_PREFIX });
  const logger = createLogger({ service: 'batch-worker-child', level: 'warn' });
  await startBatchWorker({
    redisUrl,
    prefix: process.env.BULL_PREFIX,
    store,
    concurrency: 8,
    // Long enough that items are in flight when the test kills this process.
    processItem: async (ctx) => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      return { echo: ctx.index, pid: process.pid };
    },
    isTransient: () => false,
    logger,
    // Short locks, so the items this process held are redelivered soon after it dies.
    lockDurationMs: 2000,
    stalledIntervalMs: 500,
  });
  process.stdout.write('ready\n');
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : String(error)}\n`);
  process.exit(1);
});
