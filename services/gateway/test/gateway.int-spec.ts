// Medium test: the gateway as a real process (compiled by `npm run build`), called over loopback
// with the generated client, as a user or a Kubernetes probe would.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { checkHealth, createClient, listServicesByReflection } from '@imagebind-llm/grpc-kit';
import { commonV1, gatewayV1 } from '@imagebind-llm/proto';
import { startProcess, type RunningProcess } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
const baseEnv = {
  PATH: process.env['PATH'],
  GATEWAY_GRPC_PORT: '0',
  GATEWAY_HTTP_PORT: '0',
  LOG_LEVEL: 'info',
  // Distributed mode with every downstream service absent (port 1 refuses connections): the
  // gateway itself must still start, validate, report health and fail calls cleanly.
  GATEWAY_MODE: 'distributed',
  GATEWAY_ENCODER_TEXT_TARGET: '127.0.0.1:1',
  GATEWAY_RETRIEVER_TARGET: '127.0.0.1:1',
  GATEWAY_BIND_TARGET: '127.0.0.1:1',
  GATEWAY_DECODER_TARGET: '127.0.0.1:1',
};

async function unary<Req, Res>(
  fn: (req: Req, md: Metadata, cb: (e: ServiceError | null, r: Res) => void) => unknown,
  req: Req,
  md = new Metadata(),
): Promise<{ error: ServiceError | null; response: Res }> {
  return new Promise((resolve) => fn(req, md, (error, response) => resolve({ error, response })));
}

describe('gateway process', () => {
  let proc: RunningProcess;
  let grpcAddress: string;
  let httpBase: string;

  beforeAll(async () => {
    expect(existsSync(MAIN), `${MAIN} is missing: run \`npm run build\` first`).toBe(true);
    proc = startProcess(process.execPath, [MAIN], { env: baseEnv });
    const ready = await proc.waitForLine((l) => l['event'] === 'service.ready');
    grpcAddress = `127.0.0.1:${String(ready['grpcPort'])}`;
    httpBase = `http://127.0.0.1:${String(ready['httpPort'])}`;
  });

  afterAll(async () => {
    await proc?.stop('SIGKILL');
  });

  it('answers grpc.health.v1.Health/Check with SERVING, overall and per service', async () => {
    expect(await checkHealth(grpcAddress)).toBe('SERVING');
    expect(await checkHealth(grpcAddress, 'imagebind.gateway.v1.GatewayService')).toBe('SERVING');
    expect(await checkHealth(grpcAddress, 'imagebind.gateway.v1.BatchJobService')).toBe('SERVING');
  });

  it('answers UNAVAILABLE when the encoder is down, after retrying, echoing the request id', async () => {
    const client = createClient(gatewayV1.GatewayServiceClient, grpcAddress);
    const md = new Metadata();
    md.set('x-request-id', 'it-embed-1');
    const { error } = await unary(
      client.embed.bind(client),
      {
        inputs: [
          {
            modality: commonV1.Modality.MODALITY_TEXT,
            source: { $case: 'text', value: 'A dog.' },
            mediaType: '',
          },
        ],
        includeFused: true,
      },
      md,
    );
    expect(error?.code).toBe(status.UNAVAILABLE);
    expect(error?.metadata.get('ibllm-error-code')).toEqual(['DEPENDENCY_UNAVAILABLE']);
    client.close();
  });

  it('validates before anything else: a bad Generate gets INVALID_ARGUMENT naming the field', async () => {
    const client = createClient(gatewayV1.GatewayServiceClient, grpcAddress);
    const stream = client.generate({
      inputs: [
        {
          modality: commonV1.Modality.MODALITY_IMAGE,
          weight: 0,
          source: { $case: 'content', value: Buffer.from('x') },
          mediaType: '',
        },
      ],
      instruction: 'Describe the image.',
      input: '',
    });
    const error = await new Promise<ServiceError>((resolve) => stream.on('error', resolve));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toBe('inputs[0].weight: must be a positive number (unset means 1), got 0');
    expect(error.metadata.get('ibllm-error-field')).toEqual(['inputs[0].weight']);

    const valid = client.generate({
      inputs: [
        {
          modality: commonV1.Modality.MODALITY_TEXT,
          source: { $case: 'text', value: 'A dog.' },
          mediaType: '',
        },
      ],
      instruction: 'Describe the image.',
      input: '',
    });
    const unavailable = await new Promise<ServiceError>((resolve) => valid.on('error', resolve));
    expect(unavailable.code).toBe(status.UNAVAILABLE);
    client.close();
  });

  /** Generate with raw request bytes, bypassing the generated encoder; resolves with its error. */
  async function rawGenerate(bytes: Buffer): Promise<ServiceError> {
    const client = new Client(grpcAddress, credentials.createInsecure());
    const call = client.makeServerStreamRequest(
      '/imagebind.gateway.v1.GatewayService/Generate',
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
    );
    call.on('data', () => undefined);
    const error = await new Promise<ServiceError>((resolve) => call.on('error', resolve));
    client.close();
    return error;
  }

  const textRequest = (): gatewayV1.GenerateRequest => ({
    inputs: [
      {
        modality: commonV1.Modality.MODALITY_TEXT,
        source: { $case: 'text', value: 'A dog.' },
        mediaType: '',
      },
    ],
    instruction: 'Describe it.',
    input: '',
  });

  it('answers sampling.seed beyond 2^53 - 1 (up to uint64 max) with INVALID_ARGUMENT naming the range', async () => {
    const base = Buffer.from(gatewayV1.GenerateRequest.encode(textRequest()).finish());
    // GenerateRequest.sampling (field 5) holding SamplingParameters.seed (field 3) = 2^64 - 1:
    // ten varint bytes that ts-proto cannot hold in a number.
    const seed = Buffer.from([0x18, ...Array<number>(9).fill(0xff), 0x01]);
    const sampling = Buffer.concat([Buffer.from([0x2a, seed.length]), seed]);
    for (const bytes of [Buffer.concat([base, sampling])]) {
      const error = await rawGenerate(bytes);
      expect(error.code).toBe(status.INVALID_ARGUMENT);
      expect(error.details).toMatch(
        /sampling\.seed\) is out of range: this API accepts 0\.\.9007199254740991/,
      );
    }
    // The largest accepted seed decodes and passes validation (the absent encoder answers next).
    const client = createClient(gatewayV1.GatewayServiceClient, grpcAddress);
    const stream = client.generate({ ...textRequest(), sampling: { seed: Number.MAX_SAFE_INTEGER } });
    const error = await new Promise<ServiceError>((resolve) => stream.on('error', resolve));
    expect(error.code).toBe(status.UNAVAILABLE);
    client.close();
  });

  it('answers request bytes that do not decode with INVALID_ARGUMENT, not INTERNAL', async () => {
    const error = await rawGenerate(Buffer.from([0x0a, 0x7f, 0x01]));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toMatch(
      /^the request bytes are not a valid protobuf message for \/imagebind\.gateway\.v1\.GatewayService\/Generate: /,
    );
  });

  it('answers batch job RPCs with UNIMPLEMENTED too', async () => {
    const client = createClient(gatewayV1.BatchJobServiceClient, grpcAddress);
    const { error } = await unary(client.getBatchJob.bind(client), { jobId: 'j1' });
    expect(error?.code).toBe(status.UNIMPLEMENTED);
    client.close();
  });

  it('exposes Prometheus metrics that counted those calls, and readiness', async () => {
    const metrics = await fetch(`${httpBase}/metrics`);
    expect(metrics.status).toBe(200);
    const body = await metrics.text();
    expect(body).toMatch(
      /grpc_server_handled_total\{grpc_type="unary",grpc_service="imagebind.gateway.v1.GatewayService",grpc_method="Embed",grpc_code="UNAVAILABLE",service="gateway"\} [1-9]/,
    );
    expect(body).toContain('ibllm_ready{service="gateway"} 1');
    expect((await fetch(`${httpBase}/readyz`)).status).toBe(200);
    expect((await fetch(`${httpBase}/healthz`)).status).toBe(200);
  });

  it('logs a client mistake at info and a dependency outage at warn, once each and without a stack', async () => {
    const post = (path: string, requestId: string, body: unknown): Promise<Response> =>
      fetch(`${httpBase}/v1/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': requestId },
        body: JSON.stringify(body),
      });
    expect(
      (await post('chat/completions', 'it-rest-400', { model: 'imagebind-llm', messages: [] })).status,
    ).toBe(400);
    // The text encoder is down (port 1): a server-side state, not a bug.
    const down = await post('embeddings', 'it-rest-503', { model: 'imagebind-llm', input: ['A dog.'] });
    expect(down.status).toBe(503);
    // Log lines reach stdout asynchronously: wait for the last one before reading them all.
    await proc.waitForLine((l) => l['requestId'] === 'it-rest-503' && l['event'] === 'rest.failed', 5_000);
    const failures = (id: string) =>
      proc.lines.filter(
        (l) =>
          l['requestId'] === id &&
          (l['level'] === 'warn' || l['level'] === 'error' || l['event'] === 'rest.failed'),
      );
    expect(failures('it-rest-400')).toEqual([
      expect.objectContaining({ level: 'info', status: 400, code: 'INVALID_INPUT' }),
    ]);
    expect(failures('it-rest-503')).toEqual([expect.objectContaining({ level: 'warn', status: 503 })]);
    for (const line of [...failures('it-rest-400'), ...failures('it-rest-503')])
      expect(line).not.toHaveProperty('err');
  });

  it('logs JSON lines only, with the request id of the call', () => {
    const raw = proc.lines.filter((l) => 'raw' in l);
    expect(raw).toEqual([]);
    const line = proc.lines.find((l) => l['requestId'] === 'it-embed-1');
    expect(line).toMatchObject({ service: 'gateway', method: '/imagebind.gateway.v1.GatewayService/Embed' });
  });
});

describe('a keyed gateway bound beyond loopback (127.0.0.2)', () => {
  const KEY = 'alice-key-0123456789abcdef';
  let proc: RunningProcess;
  let grpcAddress: string;
  let httpBase: string;

  beforeAll(async () => {
    proc = startProcess(process.execPath, [MAIN], {
      env: {
        ...baseEnv,
        GATEWAY_GRPC_HOST: '127.0.0.2',
        GATEWAY_HTTP_HOST: '127.0.0.2',
        GATEWAY_API_KEYS: `alice:${KEY}`,
      },
    });
    const ready = await proc.waitForLine((l) => l['event'] === 'service.ready');
    grpcAddress = `127.0.0.2:${String(ready['grpcPort'])}`;
    httpBase = `http://127.0.0.2:${String(ready['httpPort'])}`;
  });

  afterAll(async () => {
    await proc?.stop('SIGKILL');
  });

  it('answers calls without a key with 401 / UNAUTHENTICATED', async () => {
    expect((await fetch(`${httpBase}/v1/models`)).status).toBe(401);
    expect((await fetch(`${httpBase}/v1/playground/config`)).status).toBe(401);
    expect(
      (await fetch(`${httpBase}/v1/playground/config`, { headers: { authorization: `Bearer ${KEY}` } }))
        .status,
    ).toBe(200);
    const client = createClient(gatewayV1.GatewayServiceClient, grpcAddress);
    const { error } = await unary(client.listModels.bind(client), {});
    expect(error?.code).toBe(status.UNAUTHENTICATED);
    client.close();
  });

  it('answers health, readiness and metrics without a key (probes and scrapers carry none)', async () => {
    expect((await fetch(`${httpBase}/healthz`)).status).toBe(200);
    expect((await fetch(`${httpBase}/readyz`)).status).toBe(200);
    expect((await fetch(`${httpBase}/metrics`)).status).toBe(200);
    expect(await checkHealth(grpcAddress)).toBe('SERVING');
  });

  it('lists only its public services through reflection', async () => {
    const names = await listServicesByReflection(grpcAddress);
    expect(names).toContain('imagebind.gateway.v1.GatewayService');
    expect(names).toContain('imagebind.gateway.v1.BatchJobService');
    for (const internal of ['Encoder', 'Decoder', 'Bind', 'Retriever']) {
      expect(names.filter((n) => n.includes(internal))).toEqual([]);
    }
  });
});

describe('gateway lifecycle', () => {
  it('drains and exits 0 on SIGTERM, reporting NOT_SERVING first', async () => {
    const proc = startProcess(process.execPath, [MAIN], { env: { ...baseEnv, SHUTDOWN_GRACE_MS: '2000' } });
    await proc.waitForLine((l) => l['event'] === 'service.ready');
    const result = await proc.stop('SIGTERM', 10_000);
    expect(result).toEqual({ code: 0, signal: null });
    const events = proc.lines.map((l) => l['event']).filter((e) => e !== undefined);
    expect(events.indexOf('grpc.draining')).toBeGreaterThan(events.indexOf('service.ready'));
    expect(events).toContain('grpc.stopped');
  });

  it.each([
    [
      { GATEWAY_GRPC_PORT: 'fifty' },
      /^invalid configuration for gateway: GATEWAY_GRPC_PORT is "fifty": must be a port number/,
    ],
    [{ GATEWAY_MAX_INPUTS: '0' }, /GATEWAY_MAX_INPUTS is "0": must be at least 1/],
    [{ LOG_LEVEL: 'chatty' }, /LOG_LEVEL is "chatty": must be one of fatal, error/],
    [
      { GATEWAY_HTTP_HOST: '127.0.0.2' },
      /^invalid configuration for gateway: GATEWAY_HTTP_HOST is "127\.0\.0\.2" without API keys: set GATEWAY_API_KEYS/,
    ],
    [
      { GATEWAY_GRPC_HOST: '127.0.0.1.example' },
      /GATEWAY_GRPC_HOST is "127\.0\.0\.1\.example" without API keys/,
    ],
    [
      { GATEWAY_FETCH_ALLOWED_HOSTS: 'localhost,127.0.0.1' },
      /^invalid configuration for gateway: GATEWAY_FETCH_ALLOWED_HOSTS: allowedHosts\[0\] \("localhost"\) is a loopback name, which is never fetched; GATEWAY_FETCH_ALLOWED_HOSTS: allowedHosts\[1\] \("127\.0\.0\.1"\) is a private, loopback or reserved address/,
    ],
    [{ GATEWAY_API_KEYS: 'alice' }, /GATEWAY_API_KEYS entry 1: must look like tenant:key/],
    [{ GATEWAY_REDIS_URL: 'localhost:6379' }, /GATEWAY_REDIS_URL: Redis URL must start with redis:\/\//],
  ])('exits 78 with a one-line explanation on bad configuration %j', async (bad, expected) => {
    const proc = startProcess(process.execPath, [MAIN], { env: { ...baseEnv, ...bad } });
    const result = await proc.exited();
    expect(result.code).toBe(78);
    const stderr = proc.stderr();
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(expected);
    expect(proc.lines).toEqual([]);
  });

  it('exits non-zero with one line when its port is taken', async () => {
    const first = startProcess(process.execPath, [MAIN], { env: baseEnv });
    const ready = await first.waitForLine((l) => l['event'] === 'service.ready');
    const second = startProcess(process.execPath, [MAIN], {
      env: { ...baseEnv, GATEWAY_GRPC_PORT: String(ready['grpcPort']) },
    });
    const result = await second.exited();
    await first.stop('SIGKILL');
    expect(result.code).toBe(1);
    expect(second.stderr()).toMatch(/^gateway failed to start: cannot bind gRPC server to 127\.0\.0\.1:\d+/);
  });
});
