// Medium (e2e): the bind service as a real process (compiled by `npm run build`) on the golden
// tiny-a bind network, called over loopback as the gateway and Kubernetes probes do.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  callUnary,
  checkHealth,
  createClient,
  float32Tensor,
  readFloat32Tensor,
} from '@imagebind-llm/grpc-kit';
import { LanguagePipeline } from '@imagebind-llm/inference';
import { bindV1, commonV1 } from '@imagebind-llm/proto';
import {
  goldenModelRepository,
  relativeError,
  startProcess,
  type RunningProcess,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
// Same graph, same CPU, rows independent: only float32 summation order could differ.
const REL_TOLERANCE = 1e-6;

let proc: RunningProcess;
let grpcAddress: string;
let httpBase: string;
let client: bindV1.BindServiceClient;
let repo: string;

beforeAll(async () => {
  expect(existsSync(MAIN), `${MAIN} is missing: run \`npm run build\` first`).toBe(true);
  repo = goldenModelRepository();
  proc = startProcess(process.execPath, [MAIN], {
    env: {
      PATH: process.env['PATH'],
      MODEL_REPO: repo,
      GRPC_PORT: '0',
      HTTP_PORT: '0',
      LOG_LEVEL: 'info',
      // A partial batch waits a second, so a request can be caught in the queue at SIGTERM.
      BATCH_MAX_DELAY_MS: '1000',
    },
  });
  const ready = await proc.waitForLine((l) => l['event'] === 'service.ready', 60_000);
  grpcAddress = `127.0.0.1:${String(ready['grpcPort'])}`;
  httpBase = `http://127.0.0.1:${String(ready['httpPort'])}`;
  client = createClient(bindV1.BindServiceClient, grpcAddress);
}, 120_000);

afterAll(async () => {
  client?.close();
  await proc?.stop('SIGKILL');
});

describe('bind process', () => {
  it('is ready once the bind network is warm', async () => {
    expect((await fetch(`${httpBase}/readyz`)).status).toBe(200);
    expect(await checkHealth(grpcAddress, 'imagebind.bind.v1.BindService')).toBe('SERVING');
    const status = await callUnary(client.getModelStatus.bind(client), {});
    expect(status.models).toEqual([
      expect.objectContaining({
        model: { name: 'bind', version: '1' },
        state: commonV1.ModelState.MODEL_STATE_READY,
      }),
    ]);
  });

  it('projects each query row as the in-process LanguagePipeline does', async () => {
    const rows = 3;
    const queries = new Float32Array(rows * 1024).map((_, i) => Math.sin(i * 0.37) / 16);
    const response = await callUnary(client.project.bind(client), {
      queries: float32Tensor(queries, [rows, 1024]),
    });
    const { data, shape } = readFloat32Tensor(response.visualQueries, 'visual_queries');
    expect(shape).toEqual([rows, 64]);
    const language = await LanguagePipeline.load(repo);
    try {
      for (let r = 0; r < rows; r++) {
        const alone = await language.project(queries.slice(r * 1024, (r + 1) * 1024));
        expect(relativeError(data.subarray(r * 64, (r + 1) * 64), alone)).toBeLessThanOrEqual(REL_TOLERANCE);
      }
    } finally {
      await language.close();
    }
  });

  it('refuses queries of the wrong width with INVALID_ARGUMENT', async () => {
    await expect(
      callUnary(client.project.bind(client), { queries: float32Tensor(new Float32Array(8), [1, 8]) }),
    ).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringMatching(/last dimension must be 1024/) as unknown,
    });
  });

  it('exports the batcher metrics, including the queue depth while a request waits', async () => {
    const body = await (await fetch(`${httpBase}/metrics`)).text();
    expect(body).toMatch(/^ibllm_batch_size_count\{[^}]*model="bind"[^}]*\} [1-9]/m);
    expect(body).toMatch(/^ibllm_batcher_queue_depth\{[^}]*model="bind"[^}]*\} 0$/m);
  });

  it('on SIGTERM finishes the queued request, then exits 0', async () => {
    const queries = new Float32Array(1024).fill(1 / 32);
    const call = callUnary(client.project.bind(client), { queries: float32Tensor(queries, [1, 1024]) });
    await vi.waitFor(
      async () => {
        const body = await (await fetch(`${httpBase}/metrics`)).text();
        expect(body).toMatch(/^ibllm_batcher_queue_depth\{[^}]*model="bind"[^}]*\} 1$/m);
      },
      { timeout: 5_000, interval: 10 },
    );
    const exited = proc.stop('SIGTERM', 20_000);
    const response = await call;
    expect(readFloat32Tensor(response.visualQueries, 'visual_queries').shape).toEqual([1, 64]);
    expect(await exited).toEqual({ code: 0, signal: null });
  });
});
