// Medium (e2e): encoder-vision as a real process (compiled by `npm run build`) on the golden tiny-a
// models, called over loopback as the gateway and Kubernetes probes do.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { callUnary, checkHealth, createClient, readFloat32Tensor } from '@imagebind-llm/grpc-kit';
import { EncoderPipeline } from '@imagebind-llm/inference';
import { commonV1, encoderV1 } from '@imagebind-llm/proto';
import {
  cosineSimilarity,
  goldenModelRepository,
  goldenPath,
  relativeError,
  startProcess,
  type RunningProcess,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
// The service runs the same graph on the same CPU as the in-process pipeline, one image per
// batch here: the bytes should match exactly; 1e-6 relative allows float32 reordering and no more.
const REL_TOLERANCE = 1e-6;

let proc: RunningProcess;
let grpcAddress: string;
let httpBase: string;
let client: encoderV1.EncoderServiceClient;
let repo: string;

beforeAll(async () => {
  expect(existsSync(MAIN), `${MAIN} is missing: run \`npm run build\` first`).toBe(true);
  repo = goldenModelRepository();
  proc = startProcess(process.execPath, [MAIN], {
    env: { PATH: process.env['PATH'], MODEL_REPO: repo, GRPC_PORT: '0', HTTP_PORT: '0', LOG_LEVEL: 'info' },
  });
  const ready = await proc.waitForLine((l) => l['event'] === 'service.ready', 60_000);
  grpcAddress = `127.0.0.1:${String(ready['grpcPort'])}`;
  httpBase = `http://127.0.0.1:${String(ready['httpPort'])}`;
  client = createClient(encoderV1.EncoderServiceClient, grpcAddress);
}, 120_000);

afterAll(async () => {
  client?.close();
  await proc?.stop('SIGKILL');
});

describe('encoder-vision process', () => {
  it('is ready once its models are warm: /readyz 200 and gRPC health SERVING', async () => {
    expect((await fetch(`${httpBase}/readyz`)).status).toBe(200);
    expect(await checkHealth(grpcAddress)).toBe('SERVING');
    expect(await checkHealth(grpcAddress, 'imagebind.encoder.v1.EncoderService')).toBe('SERVING');
    const status = await callUnary(client.getModelStatus.bind(client), {});
    expect(status.models).toEqual([
      expect.objectContaining({
        model: { name: 'imagebind-vision', version: '1' },
        state: commonV1.ModelState.MODEL_STATE_READY,
        executionProvider: 'cpu',
      }),
    ]);
  });

  it('encodes girl.jpg to the embedding the in-process pipeline gives', async () => {
    const bytes = readFileSync(goldenPath('inputs', 'girl.jpg'));
    const response = await callUnary(client.encode.bind(client), {
      modality: commonV1.Modality.MODALITY_IMAGE,
      inputs: [{ source: { $case: 'content', value: bytes }, mediaType: 'girl.jpg' }],
      includeUnnormalized: false,
      includePreprocessed: false,
    });
    const { data, shape } = readFloat32Tensor(response.embeddings[0]!.embedding, 'embedding');
    expect(shape).toEqual([1024]);
    const pipeline = new EncoderPipeline(repo);
    try {
      const reference = await pipeline.encode({ modality: 'image', weight: 1, bytes });
      expect(relativeError(data, reference.embedding)).toBeLessThanOrEqual(REL_TOLERANCE);
      expect(cosineSimilarity(data, reference.embedding)).toBeGreaterThan(0.999999);
    } finally {
      await pipeline.close();
    }
  });

  it('refuses a modality it does not serve with INVALID_ARGUMENT naming what it does', async () => {
    await expect(
      callUnary(client.encode.bind(client), {
        modality: commonV1.Modality.MODALITY_AUDIO,
        inputs: [{ source: { $case: 'content', value: Buffer.from([1]) }, mediaType: '' }],
        includeUnnormalized: false,
        includePreprocessed: false,
      }),
    ).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringMatching(/MODALITY_IMAGE, MODALITY_VIDEO/) as unknown,
    });
  });

  it('exports the batcher metrics on /metrics', async () => {
    const body = await (await fetch(`${httpBase}/metrics`)).text();
    // prom-client orders labels differently per metric type: match the series, not the order.
    const series = (name: string, model: string, rest = '') =>
      new RegExp(`^${name}\\{(?=[^}]*model="${model}")${rest}[^}]*\\} (\\S+)$`, 'm');
    expect(body).toMatch(series('ibllm_batch_size_count', 'imagebind-vision:image'));
    expect(Number(series('ibllm_batch_size_count', 'imagebind-vision:image').exec(body)![1])).toBeGreaterThan(
      0,
    );
    expect(series('ibllm_batcher_queue_depth', 'imagebind-vision:image').exec(body)?.[1]).toBe('0');
    expect(series('ibllm_batcher_queue_depth', 'imagebind-vision:video').exec(body)?.[1]).toBe('0');
    const ok = series('ibllm_inference_requests_total', 'imagebind-vision:image', '(?=[^}]*outcome="ok")');
    expect(Number(ok.exec(body)?.[1])).toBe(1);
  });

  it('exits 0 on SIGTERM', async () => {
    expect(await proc.stop('SIGTERM', 20_000)).toEqual({ code: 0, signal: null });
    expect(proc.lines.some((l) => l['event'] === 'shutdown.done')).toBe(true);
  });
});
