// redis-cli on 127.0.0.1:6379 for the batch benches: their own keys only (a random prefix).
import { spawnSync } from 'node:child_process';

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
