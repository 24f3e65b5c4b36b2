// Medium (e2e): the bind service as a real process (compiled by `npm run build`) on the golden
// tiny-a bind network, called over loopback as the gateway and Kubernetes probes do. Its answers are
// compared with the official bind outputs (expected/fusion/*/v.npy) for the official bind inputs.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import {
  callUnary,
  checkHealth,
  createClient,
  float32Tensor,
  readFloat32Tensor,
} from '@imagebind-llm/grpc-kit';
import { bindV1, commonV1 } from '@imagebind-llm/proto';
import {
  goldenDir,
  goldenModelRepository,
  l2Norm,
  relativeError,
  startProcess,
  type RunningProcess,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
// ‖ours − official‖₂/‖official‖₂ per row. The official v was computed in float32 on CPU like ours;
// what remains is summation order in three matmuls and the RMSNorm, measured at 9.3e-7 here.
// 1e-5 is the bound golden-parity holds for v; a dropped norm weight or bias is off by > 1e-2.
const REL_TOLERANCE = 1e-5;

interface FusionCase {
  id: string;
  knn: { enabled: boolean };
  outputs: Record<string, { file: string }>;
}
const golden = goldenDir();
/** Every golden fusion case: the bind input (q, or q_knn with the cache on) and the official v. */
const fusionCases = (
  JSON.parse(readFileSync(join(golden, 'manifest.json'), 'utf8')) as { cases: FusionCase[] }
).cases
  .filter((c) => c.id.startsWith('fusion/'))
  .map((c) => ({
    id: c.id,
    input: toFloat32(readNpy(join(golden, c.outputs[c.knn.enabled ? 'q_knn' : 'q']!.file))),
    v: toFloat32(readNpy(join(golden, c.outputs['v']!.file))),
  }));

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

  it('projects the official bind inputs of every golden fusion case, in one batch, to the official v', async () => {
    const rows = fusionCases.length;
    expect(rows).toBeGreaterThanOrEqual(8);
    const queries = new Float32Array(rows * 1024);
    fusionCases.forEach((c, r) => queries.set(c.input, r * 1024));
    const response = await callUnary(client.project.bind(client), {
      queries: float32Tensor(queries, [rows, 1024]),
    });
    const { data, shape } = readFloat32Tensor(response.visualQueries, 'visual_queries');
    expect(shape).toEqual([rows, 64]);
    const errors = fusionCases.map((c, r) => {
      const mine = data.subarray(r * 64, (r + 1) * 64);
      const error = relativeError(mine, c.v);
      expect(error, c.id).toBeLessThanOrEqual(REL_TOLERANCE);
      // the RMSNorm weight sets the scale of v: check it on its own as well
      expect(Math.abs(l2Norm(mine) - l2Norm(c.v)) / l2Norm(c.v), c.id).toBeLessThanOrEqual(REL_TOLERANCE);
      return error;
    });
    console.log(`bind: max rel. error vs the official v ${Math.max(...errors).toExponential(2)}`);
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
