// Load on the public gRPC API: `imagebind.gateway.v1.GatewayService/Generate`, a server stream of
// token messages, with k6/net/grpc's Stream, so time to first token is measured on the first
// message itself.
//
//   k6 run tools/load/grpc-generate.ts -e GRPC_ADDR=127.0.0.1:50051 -e API_KEY=... \
//     -e IMAGE_PATH=/abs/path/girl.jpg [-e AUDIO_PATH=/abs/path/girl_bgm.wav] [-e PROFILE=load -e RATE=2]
//
// Messages follow the protobuf JSON mapping as k6 produces it (protojson, unpopulated fields
// included): lowerCamelCase field names (`tokenIds`, `finishReason`), enums by name
// (`FINISH_REASON_STOP`), 64-bit integers as strings (`usage.seed`), bytes as base64. Requests may
// use either proto or camelCase names; the camelCase ones are used here.
//
// Timing: k6 stamps a message's metadata with whole Unix seconds (`metadata.ts`), too coarse for
// time to first token, so Date.now() is read in the `data` handler instead. Handlers run on the
// VU's event loop, which has nothing else to do while it waits for the stream, so the delay
// between arrival and the handler is small next to the figures measured.
import { check } from 'k6';
import { Client, StatusOK, Stream } from 'k6/net/grpc';
import { Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import {
  audioFromEnv,
  authorization,
  envBool,
  envNumber,
  envString,
  generationMetrics,
  generationOptions,
  isRecord,
  imageFromEnv,
  logFailure,
  protoRoot,
  target,
  tokensPerSecond,
} from './lib.ts';

const gateway = target();
const GENERATE = 'imagebind.gateway.v1.GatewayService/Generate';
const LIST_MODELS = 'imagebind.gateway.v1.GatewayService/ListModels';

const client = new Client();
client.load([protoRoot()], 'imagebind/gateway/v1/gateway.proto');

const image = imageFromEnv();
const audio = audioFromEnv();

const inputs: object[] = [{ modality: 'MODALITY_IMAGE', content: image.base64, mediaType: image.mediaType }];
if (audio !== undefined) {
  inputs.push({ modality: 'MODALITY_AUDIO', content: audio.base64, mediaType: audio.mediaType });
}
const seed = envString('SEED', '');
const request = {
  inputs,
  instruction: envString('PROMPT', 'Describe the scene in detail.'),
  sampling: {
    temperature: envNumber('TEMPERATURE', 0.1),
    topP: envNumber('TOP_P', 0.75),
    // uint64: a decimal string in the JSON mapping.
    ...(seed === '' ? {} : { seed }),
  },
  stopping: { maxNewTokens: envNumber('MAX_TOKENS', 64) },
};

const { ttft, serverTtft, tokenRate, tokens, finishes, errors } = generationMetrics();
const streamDuration = new Trend('ibllm_stream_duration_ms', true);

export const options: Options = generationOptions('grpc_generate');

/** The GenerateResponse fields read here, as k6 hands them over. */
interface GenerateMessage {
  readonly tokenIds: readonly number[];
  readonly finishReason: string;
  readonly usage: { readonly completionTokens: number; readonly timeToFirstTokenMs: number } | null;
}

function asGenerateMessage(value: unknown): GenerateMessage | undefined {
  if (!isRecord(value)) return undefined;
  const tokenIds = Array.isArray(value['tokenIds']) ? (value['tokenIds'] as unknown[]) : [];
  const usage = isRecord(value['usage']) ? value['usage'] : undefined;
  return {
    tokenIds: tokenIds.filter((id): id is number => typeof id === 'number'),
    finishReason:
      typeof value['finishReason'] === 'string' ? value['finishReason'] : 'FINISH_REASON_UNSPECIFIED',
    usage:
      usage === undefined
        ? null
        : {
            completionTokens: Number(usage['completionTokens'] ?? 0),
            timeToFirstTokenMs: Number(usage['timeToFirstTokenMs'] ?? 0),
          },
  };
}

function describeError(value: unknown): { code: string; message: string } {
  if (isRecord(value)) {
    return {
      code: typeof value['code'] === 'number' ? String(value['code']) : 'unknown',
      message: typeof value['message'] === 'string' ? value['message'] : JSON.stringify(value),
    };
  }
  return { code: 'unknown', message: String(value) };
}

/** What one Generate stream delivered, with client-side arrival times (Date.now(), ms). */
interface StreamOutcome {
  readonly startedAt: number;
  firstAt: number | undefined;
  lastAt: number | undefined;
  endedAt: number;
  messages: number;
  tokenIds: number;
  finishReason: string | undefined;
  usage: GenerateMessage['usage'];
  error: { code: string; message: string } | undefined;
}

/** Opens one Generate stream and resolves when the server closes it (after an error too). */
const generate = (): Promise<StreamOutcome> =>
  new Promise<StreamOutcome>((resolve) => {
    const outcome: StreamOutcome = {
      startedAt: Date.now(),
      firstAt: undefined,
      lastAt: undefined,
      endedAt: 0,
      messages: 0,
      tokenIds: 0,
      finishReason: undefined,
      usage: null,
      error: undefined,
    };
    const stream = new Stream(client, GENERATE, {
      metadata: authorization(),
      timeout: gateway.timeout,
      tags: { name: 'generate' },
    });
    stream.on('data', (data) => {
      const now = Date.now();
      const message = asGenerateMessage(data);
      if (message === undefined) return;
      outcome.messages += 1;
      if (outcome.firstAt === undefined) outcome.firstAt = now;
      if (message.tokenIds.length > 0) outcome.lastAt = now;
      outcome.tokenIds += message.tokenIds.length;
      if (message.finishReason !== 'FINISH_REASON_UNSPECIFIED') {
        outcome.finishReason = message.finishReason;
        outcome.usage = message.usage;
      }
    });
    // k6 calls `error` (a gRPC status other than OK) before `end`, which always follows.
    stream.on('error', (e) => {
      outcome.error = describeError(e);
    });
    stream.on('end', () => {
      outcome.endedAt = Date.now();
      resolve(outcome);
    });
    stream.write(request);
    // Generate takes one request: half-close so the server sees the end of the client stream.
    stream.end();
  });

let connected = false;

function connect(): void {
  if (connected) return;
  client.connect(gateway.grpcAddr, { plaintext: !gateway.grpcTls, timeout: '10s' });
  connected = true;
}

/** Stops the test before it starts unless ListModels reports every component ready (READY_CHECK=false skips it). */
export function setup(): void {
  if (!envBool('READY_CHECK', true)) return;
  connect();
  const res = client.invoke(LIST_MODELS, {}, { metadata: authorization(), timeout: '30s' });
  const models =
    isRecord(res.message) && Array.isArray(res.message['models']) ? (res.message['models'] as unknown[]) : [];
  const ready = models.length > 0 && models.every((m) => isRecord(m) && m['ready'] === true);
  client.close();
  connected = false;
  if (res.status !== StatusOK) {
    throw new Error(`ListModels on ${gateway.grpcAddr} failed: ${describeError(res.error).message}`);
  }
  if (!ready)
    throw new Error(`the gateway at ${gateway.grpcAddr} does not report every model component ready`);
}

export default async function generateStream(): Promise<void> {
  let outcome: StreamOutcome;
  try {
    connect();
    outcome = await generate();
  } catch (e) {
    // Connection refused, unknown method: nothing was streamed. Dial again next time.
    client.close();
    connected = false;
    errors.add(true, { code: 'client' });
    logFailure('Generate could not start', String(e));
    return;
  }

  const ok = check(outcome, {
    'stream ended with status OK': (o) => o.error === undefined,
    'first message arrived': (o) => o.firstAt !== undefined,
    'final message has a finish reason': (o) => o.finishReason !== undefined,
  });
  errors.add(!ok, { code: outcome.error?.code ?? (ok ? '0' : 'incomplete') });
  if (!ok || outcome.firstAt === undefined) {
    logFailure(
      'Generate stream failed',
      outcome.error === undefined
        ? `ended after ${outcome.messages} messages without a finish reason`
        : `code ${outcome.error.code}: ${outcome.error.message}`,
    );
    return;
  }

  ttft.add(outcome.firstAt - outcome.startedAt);
  streamDuration.add(outcome.endedAt - outcome.startedAt);
  const n =
    outcome.usage !== null && outcome.usage.completionTokens > 0
      ? outcome.usage.completionTokens
      : outcome.tokenIds;
  tokens.add(n);
  const rate = tokensPerSecond(n, (outcome.lastAt ?? outcome.firstAt) - outcome.firstAt);
  if (rate !== undefined) tokenRate.add(rate);
  if (outcome.usage !== null && outcome.usage.timeToFirstTokenMs > 0)
    serverTtft.add(outcome.usage.timeToFirstTokenMs);
  finishes.add(1, { reason: outcome.finishReason ?? 'none' });
}
