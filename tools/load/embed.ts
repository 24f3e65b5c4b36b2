// Load on the embedding APIs with a text + image input: gRPC `GatewayService/Embed` and REST
// `POST /v1/embeddings` (the image as an `imagebind_inputs` data URL part). EMBED_API picks grpc,
// rest or both (default, one scenario each, run side by side).
//
//   k6 run tools/load/embed.ts -e BASE_URL=http://127.0.0.1:8080 -e GRPC_ADDR=127.0.0.1:50051 \
//     -e API_KEY=... -e IMAGE_PATH=/abs/path/girl.jpg [-e EMBED_API=grpc] [-e PROFILE=load -e RATE=20]
//
// Every answer is checked for one float32 [1024] embedding per input plus the fused query, so a
// fast but wrong answer does not pass as a good latency.
import { check } from 'k6';
import http from 'k6/http';
import { Client, StatusOK, type Response as GrpcResponse } from 'k6/net/grpc';
import { Rate, Trend } from 'k6/metrics';
import type { Options, Scenario, Threshold } from 'k6/options';
import {
  assertModelReady,
  bodySnippet,
  authorization,
  dataUrl,
  envChoice,
  envNumber,
  envString,
  errorRateThresholds,
  isRecord,
  imageFromEnv,
  jsonHeaders,
  logFailure,
  protoRoot,
  scenarioFromEnv,
  SUMMARY_TREND_STATS,
  target,
  type LoadDefaults,
} from './lib.ts';

const gateway = target();
const EMBED = 'imagebind.gateway.v1.GatewayService/Embed';
/** ImageBind's joint space: float32 [1024], 4096 bytes, 5464 base64 characters. */
const DIMENSIONS = 1024;
const BASE64_LENGTH = Math.ceil((DIMENSIONS * 4) / 3) * 4;

const apis = envChoice('EMBED_API', ['grpc', 'rest', 'both'] as const, 'both');
const useGrpc = apis !== 'rest';
const useRest = apis !== 'grpc';

const client = new Client();
if (useGrpc) client.load([protoRoot()], 'imagebind/gateway/v1/gateway.proto');

const image = imageFromEnv();
const text = envString('EMBED_TEXT', 'A dog playing on the beach.');

const grpcRequest = {
  inputs: [
    { modality: 'MODALITY_TEXT', text },
    { modality: 'MODALITY_IMAGE', content: image.base64, mediaType: image.mediaType },
  ],
  includeFused: true,
};
const restBody = JSON.stringify({
  model: gateway.model,
  input: [text],
  imagebind_inputs: [{ type: 'image_url', image_url: { url: dataUrl(image) } }],
  // Raw float32 bytes in base64: a quarter of the size of a JSON number array to parse.
  encoding_format: 'base64',
});

const latency = new Trend('ibllm_embed_latency_ms', true);
const errors = new Rate('ibllm_errors');

const shape: LoadDefaults = {
  rate: 10,
  timeUnit: '1s',
  vus: 20,
  maxVus: 200,
  duration: '5m',
  ramp: '1m',
  iterations: 5,
};
const p95 = envNumber('EMBED_P95_MS', 500);
const scenarios: Record<string, Scenario> = {};
const thresholds: Record<string, Threshold[]> = {
  ibllm_errors: errorRateThresholds(envNumber('MAX_ERROR_RATE', 0.01)),
  checks: ['rate>0.99'],
};
if (useGrpc) {
  Object.assign(scenarios, scenarioFromEnv('grpc_embed', shape, 'grpcEmbed'));
  thresholds['ibllm_embed_latency_ms{api:grpc}'] = [`p(95)<${p95}`];
}
if (useRest) {
  Object.assign(scenarios, scenarioFromEnv('rest_embed', shape, 'restEmbed'));
  thresholds['ibllm_embed_latency_ms{api:rest}'] = [`p(95)<${p95}`];
}

export const options: Options = { scenarios, thresholds, summaryTrendStats: SUMMARY_TREND_STATS };

/** A Tensor in the JSON mapping: dtype by name, int64 dims as strings, data in base64. */
function isEmbeddingTensor(value: unknown): boolean {
  if (!isRecord(value) || !Array.isArray(value['shape'])) return false;
  const dims = (value['shape'] as unknown[]).map(Number);
  return (
    value['dtype'] === 'DATA_TYPE_FLOAT32' &&
    dims.length === 1 &&
    dims[0] === DIMENSIONS &&
    typeof value['data'] === 'string' &&
    value['data'].length === BASE64_LENGTH
  );
}

export function setup(): void {
  if (useRest) assertModelReady(gateway);
}

let connected = false;

export function grpcEmbed(): void {
  let res: GrpcResponse;
  // Wall time around invoke(), as a client sees it: it includes k6's conversion between JSON and
  // protobuf, which the built-in grpc_req_duration{name:embed} (the RPC alone) leaves out.
  const started = Date.now();
  try {
    if (!connected) {
      client.connect(gateway.grpcAddr, { plaintext: !gateway.grpcTls, timeout: '10s' });
      connected = true;
    }
    res = client.invoke(EMBED, grpcRequest, {
      metadata: authorization(),
      timeout: gateway.timeout,
      tags: { name: 'embed' },
    });
  } catch (e) {
    client.close();
    connected = false;
    errors.add(true, { api: 'grpc' });
    logFailure('Embed could not be called', String(e));
    return;
  }
  const elapsed = Date.now() - started;
  const message = isRecord(res.message) ? res.message : {};
  const embeddings = Array.isArray(message['embeddings']) ? (message['embeddings'] as unknown[]) : [];
  const ok = check(res, {
    'Embed status OK': (r) => r.status === StatusOK,
    'one float32 [1024] embedding per input': () =>
      embeddings.length === grpcRequest.inputs.length &&
      embeddings.every((e) => isRecord(e) && isEmbeddingTensor(e['embedding'])),
    'fused query returned': () => isEmbeddingTensor(message['fused']),
  });
  errors.add(!ok, { api: 'grpc' });
  if (!ok) {
    logFailure(`Embed failed (status ${res.status})`, JSON.stringify(res.error ?? message).slice(0, 300));
    return;
  }
  latency.add(elapsed, { api: 'grpc' });
}

export function restEmbed(): void {
  const res = http.post(`${gateway.baseUrl}/v1/embeddings`, restBody, {
    headers: jsonHeaders(),
    timeout: gateway.timeout,
    tags: { name: 'embeddings' },
  });
  let parsed: unknown = undefined;
  if (res.status === 200 && typeof res.body === 'string') {
    try {
      parsed = JSON.parse(res.body);
    } catch {
      parsed = undefined;
    }
  }
  const body = isRecord(parsed) ? parsed : {};
  const data = Array.isArray(body['data']) ? (body['data'] as unknown[]) : [];
  const extension = isRecord(body['imagebind']) ? body['imagebind'] : {};
  const ok = check(res, {
    'status is 200': (r) => r.status === 200,
    'one 1024-d embedding per input': () =>
      data.length === 2 &&
      data.every(
        (d) => isRecord(d) && typeof d['embedding'] === 'string' && d['embedding'].length === BASE64_LENGTH,
      ),
    'fused query returned': () =>
      typeof extension['fused'] === 'string' && extension['fused'].length === BASE64_LENGTH,
  });
  errors.add(!ok, { api: 'rest' });
  if (!ok) {
    logFailure(`POST /v1/embeddings failed (HTTP ${res.status})`, bodySnippet(res.body));
    return;
  }
  latency.add(res.timings.duration, { api: 'rest' });
}
