// The README's batch quick start, run verbatim (issue #16): its two ```bash blocks are read out of
// README.md, the server block's last command (`ibllm serve ... --redis ...`) runs in the
// background, the client block as one `bash -e` script. A fresh GATEWAY_QUEUE_PREFIX in the
// environment (which `ibllm serve` passes through) keeps the run apart from other Redis users.
// Editing the README so the commands break fails this test.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { repoRoot, testRunEnv } from '@imagebind-llm/testing';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = repoRoot();
const PREFIX = `t-quickstart-${randomBytes(4).toString('hex')}`;

/** The ```bash block that follows the `<!-- batch-quickstart:NAME ... -->` marker. */
function readmeBlock(readme: string, name: string): string[] {
  const marker = readme.indexOf(`<!-- batch-quickstart:${name}`);
  if (marker < 0) throw new Error(`README.md has no <!-- batch-quickstart:${name} --> marker`);
  const match = /```bash\n([\s\S]*?)\n\s*```/.exec(readme.slice(marker));
  if (match === null) throw new Error(`no \`\`\`bash block after the batch-quickstart:${name} marker`);
  return match[1]!
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

/** Whether something already listens on 127.0.0.1:port (the quick start uses the default ports). */
async function inUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe("README's batch quick start, verbatim", () => {
  const work = join(ROOT, 'tmp', `batch-quickstart-${randomBytes(4).toString('hex')}`);
  // Only what a user's shell would have, plus the fresh prefix; LOG_LEVEL=info for the ready line.
  // And the test run's marker, so the runner sees any process left over.
  const env = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/root', ...testRunEnv() };
  let server: ChildProcess | undefined;
  let serverLog = '';

  afterAll(async () => {
    if (server?.pid !== undefined && server.exitCode === null) {
      // Its own process group: npx, the ibllm launcher and the gateway it spawned.
      process.kill(-server.pid, 'SIGTERM');
      await new Promise((resolve) => server!.once('exit', resolve));
    }
    rmSync(work, { recursive: true, force: true });
    const redis = new Redis('redis://127.0.0.1:6379');
    const keys = await redis.keys(`${PREFIX}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }, 60_000);

  it('200 embed items → SUCCEEDED, exit 0, every result an embedding (no shared-bucket failures)', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const serverBlock = readmeBlock(readme, 'server');
    const clientBlock = readmeBlock(readme, 'client');
    const serve = serverBlock[serverBlock.length - 1]!;
    expect(serve).toMatch(/ibllm serve .*--standalone/);

    for (const port of [50051, 8080]) {
      expect(await inUse(port), `127.0.0.1:${port} is taken; the quick start needs it`).toBe(false);
    }
    mkdirSync(work, { recursive: true });
    const setup = spawnSync('bash', ['-e', '-o', 'pipefail', '-c', serverBlock.slice(0, -1).join('\n')], {
      cwd: work,
      env,
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(setup.status, setup.stderr).toBe(0);

    server = spawn('bash', ['-c', serve], {
      cwd: work,
      env: { ...env, GATEWAY_QUEUE_PREFIX: PREFIX, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no service.ready in 90 s:\n${serverLog}`)), 90_000);
      const onData = (chunk: Buffer): void => {
        serverLog += chunk.toString('utf8');
        if (serverLog.includes('"event":"service.ready"')) {
          clearTimeout(timer);
          resolve();
        }
      };
      server!.stdout!.on('data', onData);
      server!.stderr!.on('data', onData);
      server!.once('exit', (code) => reject(new Error(`ibllm serve exited with ${code}:\n${serverLog}`)));
    });
    expect(serverLog).toContain('"event":"batch.worker.started"');

    const client = spawnSync('bash', ['-e', '-o', 'pipefail', '-c', clientBlock.join('\n')], {
      cwd: work,
      env,
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(client.status, client.stderr).toBe(0);
    expect(client.stderr).toMatch(/SUCCEEDED 200\/200 \(100%\): 200 succeeded, 0 failed, 0 cancelled/);

    const lines = readFileSync(join(work, 'results.jsonl'), 'utf8').trim().split('\n');
    const results = lines.map(
      (l) => JSON.parse(l) as { index: number; item_id: string; embedding?: number[] },
    );
    expect(results.map((r) => r.index)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(results.map((r) => r.item_id)).toEqual(Array.from({ length: 200 }, (_, i) => `item-${i}`));
    // Every item embedded: an error (RESOURCE_EXHAUSTED from a shared bucket, or anything else)
    // would be an "error" object instead.
    expect(results.filter((r) => r.embedding?.length !== 1024)).toEqual([]);
    expect(serverLog).not.toContain('RESOURCE_EXHAUSTED');
    expect(serverLog).not.toContain('"msg":"batch item failed');
  }, 420_000);

  it('--no-batch-worker keeps the batch API but runs no worker in the gateway', async () => {
    const models = join(work, '.models', 'demo'); // built by the quick start above
    const proc = spawn(
      process.execPath,
      [
        join(ROOT, 'tools', 'cli', 'bin', 'ibllm.js'),
        'serve',
        '--standalone',
        '--models',
        models,
        '--no-batch-worker',
      ],
      {
        env: {
          ...env,
          LOG_LEVEL: 'info',
          GATEWAY_QUEUE_PREFIX: PREFIX,
          GATEWAY_REDIS_URL: 'redis://127.0.0.1:6379',
          GATEWAY_GRPC_PORT: '0',
          GATEWAY_HTTP_PORT: '0',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let log = '';
    proc.stderr.on('data', (chunk: Buffer) => (log += chunk.toString('utf8')));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no service.ready in 90 s:\n${log}`)), 90_000);
      proc.stdout.on('data', (chunk: Buffer) => {
        log += chunk.toString('utf8');
        if (log.includes('"event":"service.ready"')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    proc.kill('SIGTERM');
    await new Promise((resolve) => proc.once('exit', resolve));
    expect(log).toMatch(/"event":"service.ready".*"batch":"on"/);
    expect(log).not.toContain('batch.worker.started');
  }, 120_000);
});
