// Shared by the batch benches: a standalone gateway with the batch API on a queue prefix of the
// bench's own, and redis-cli on 127.0.0.1:6379 (their own keys only).
import { spawnSync } from 'node:child_process';
import { startStandaloneGateway } from '@imagebind-llm/testing';

/**
 * A standalone gateway (golden tiny-a models) with the batch API on Redis under `prefix`, its
 * in-process batch worker off (the benches measure a worker process, or none).
 */
export async function startBatchGateway(prefix, env = {}) {
  return startStandaloneGateway({
    GATEWAY_REDIS_URL: 'redis://127.0.0.1:6379',
    GATEWAY_QUEUE_PREFIX: prefix,
    GATEWAY_BATCH_WORKER: 'false',
    ...env,
  });
}

export function redis(...argv) {
  const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', '6379', ...argv], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  if (r.status !== 0) throw new Error(`redis-cli ${argv.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/** Deletes every key under `prefix` (a bench's own queue prefix). */
export function deleteKeys(prefix) {
  const keys = redis('--scan', '--pattern', `${prefix}*`).split('\n').filter(Boolean);
  for (let i = 0; i < keys.length; i += 500) redis('DEL', ...keys.slice(i, i + 500));
  return keys.length;
}
