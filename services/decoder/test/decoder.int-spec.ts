// E2e test: the decoder service as a real process (compiled with `npx tsc -b services/decoder`)
// over the golden tiny-a model repository, called over loopback as the gateway or a probe would.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { checkHealth, createClient, float32Tensor } from '@imagebind-llm/grpc-kit';
import { defaultIntraOpThreads } from '@imagebind-llm/inference';
import { decoderV1, SERVICE_NAMES } from '@imagebind-llm/proto';
import { goldenDir, goldenModelRepository, startProcess, type RunningProcess } from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MAIN = join(__dirname, '..', 'dist', 'main.js');
const EXIT_CONFIG = 78;

interface Case {
  id: string;
  fusion_case: string;
  prompt_ids: number[];
  generated_ids: number[];
  outputs: Record<string, { file: string }>;
}

const golden = goldenDir();
const manifest = JSON.parse(readFileSync(join(golden, 'manifest.json'), 'utf8')) as { cases: Case[] };
const decodeCase = manifest.cases.find((c) => c.id === 'decode/demo_image+audio_knn-on')!;
const fusionCase = manifest.cases.find((c) => c.id === decodeCase.fusion_case)!;
const visualQuery = toFloat32(readNpy(join(golden, fusionCase.outputs['v']!.file)));

function request(maxNewTokens: number, ignoreEos = false): decoderV1.GenerateRequest {
  return {
    visualQuery: float32Tensor(visualQuery, [visualQuery.length]),
    promptTokenIds: decodeCase.prompt_ids,
    resumeFromTokenIds: [],
    sampling: { temperature: 0, topP: 0.75, seed: 0 },
    stopping: { maxNewTokens, ignoreEos },
    returnPrefillLogits: false,
    returnLayerOffsets: false,
  };
}

interface Collected {
  messages: decoderV1.GenerateResponse[];
  error: ServiceError | undefined;
}

/** Reads a stream to its end; `onMessage` sees each message as it arrives. */
async function collect(
  client: decoderV1.DecoderServiceClient,
  req: decoderV1.GenerateRequest,
  onMessage: (m: decoderV1.GenerateResponse) => void = () => undefined,
): Promise<Collected> {
  const messages: decoderV1.GenerateResponse[] = [];
  return new Promise((resolve) => {
    const call = client.generate(req, new Metadata());
    call.on('data', (m: decoderV1.GenerateResponse) => {
      messages.push(m);
      onMessage(m);
    });
    call.on('error', (error: ServiceError) => resolve({ messages, error }));
    call.on('end', () => resolve({ messages, error: undefined }));
  });
}

const ids = (c: Collected): number[] => c.messages.flatMap((m) => m.tokens.map((t) => t.id));

function baseEnv(): Record<string, string | undefined> {
  return {
    PATH: process.env['PATH'],
    MODEL_REPO: goldenModelRepository(),
    GRPC_PORT: '0',
    HTTP_PORT: '0',
    LOG_LEVEL: 'info',
    SHUTDOWN_GRACE_MS: '20000',
  };
}

describe('decoder process', () => {
  let proc: RunningProcess;
  let grpcAddress: string;
  let httpBase: string;
  let client: decoderV1.DecoderServiceClient;

  beforeAll(async () => {
    expect(existsSync(MAIN), `${MAIN} is missing: run \`npx tsc -b services/decoder\` first`).toBe(true);
    proc = startProcess(process.execPath, [MAIN], { env: baseEnv() });
    const ready = await proc.waitForLine((l) => l['event'] === 'service.ready', 60_000);
    grpcAddress = `127.0.0.1:${String(ready['grpcPort'])}`;
    httpBase = `http://127.0.0.1:${String(ready['httpPort'])}`;
    client = createClient(decoderV1.DecoderServiceClient, grpcAddress);
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await proc?.stop('SIGKILL');
  });

  it('logs the execution providers it chose and announces ready with the model', async () => {
    const providers = proc.lines.find((l) => l['event'] === 'decoder.execution_providers');
    expect(providers?.['providers']).toEqual(['cpu']);
    // INTRA_OP_THREADS unset: one per CPU the process may use, not onnxruntime's own default
    expect(providers?.['intraOpThreads']).toBe(await defaultIntraOpThreads());
    const ready = proc.lines.find((l) => l['event'] === 'service.ready')!;
    expect(ready).toMatchObject({ model: 'llama-decoder@1', executionProvider: 'cpu' });
    // ready comes only after the model loaded and warmed up
    expect(proc.lines.indexOf(ready)).toBeGreaterThan(
      proc.lines.findIndex((l) => l['event'] === 'decoder.loaded'),
    );
  });

  it('is ready: /readyz 200, /healthz 200, gRPC health SERVING overall and for DecoderService', async () => {
    expect((await fetch(`${httpBase}/readyz`)).status).toBe(200);
    expect((await fetch(`${httpBase}/healthz`)).status).toBe(200);
    expect(await checkHealth(grpcAddress)).toBe('SERVING');
    expect(await checkHealth(grpcAddress, SERVICE_NAMES.decoder)).toBe('SERVING');
  });

  it('streams a greedy generation token by token: the golden tokens, then LENGTH', async () => {
    const result = await collect(client, request(24));
    expect(result.error).toBeUndefined();
    expect(ids(result)).toEqual(decodeCase.generated_ids);
    expect(result.messages).toHaveLength(25);
    expect(result.messages.at(-1)!.finishReason).toBe(decoderV1.FinishReason.FINISH_REASON_LENGTH);
  });

  it('exports TTFT and generated-token series with counts above zero', async () => {
    const text = await (await fetch(`${httpBase}/metrics`)).text();
    const value = (name: string): number =>
      Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
    expect(value('ibllm_time_to_first_token_seconds_count')).toBeGreaterThan(0);
    expect(value('ibllm_generated_tokens_total')).toBeGreaterThanOrEqual(24);
    expect(value('ibllm_decoder_active_sequences')).toBe(0);
  });

  it('moves the same bytes per row and decode step at a short and a long context: the KV cache never crosses', async () => {
    const repo = goldenModelRepository();
    const decoderDir = join(repo, 'llama-decoder', readdirSync(join(repo, 'llama-decoder'))[0]!);
    const cfg = (
      JSON.parse(readFileSync(join(decoderDir, 'model.json'), 'utf8')) as { config: Record<string, number> }
    ).config;
    const perRow = async (): Promise<{ to: number; from: number }> => {
      const text = await (await fetch(`${httpBase}/metrics`)).text();
      const gauge = (direction: string): number =>
        Number(
          new RegExp(
            `^ibllm_decoder_step_transfer_bytes_per_row\\{[^}]*direction="${direction}"[^}]*\\} (\\S+)$`,
            'm',
          ).exec(text)?.[1] ?? Number.NaN,
        );
      return { to: gauge('to_session'), from: gauge('from_session') };
    };
    // short: the golden prompt and 2 new tokens; long: a prompt 8× as long and the same 2 tokens
    expect((await collect(client, request(2, true))).error).toBeUndefined();
    const short = await perRow();
    const longPrompt = Array.from({ length: 8 }, () => decodeCase.prompt_ids.slice(1)).flat();
    const long = await collect(client, {
      ...request(2, true),
      promptTokenIds: [1, ...longPrompt].slice(0, 400),
    });
    expect(long.error).toBeUndefined();
    expect(await perRow()).toEqual(short);
    // per row: ids, position, past/new lengths, gather row (5 int64) and the (slot, head, position)
    // write index per head in; the logits out. Nothing grows with the context.
    expect(short).toEqual({ to: 5 * 8 + cfg['nHeads']! * 3 * 8, from: cfg['vocabSize']! * 4 });
    const text = await (await fetch(`${httpBase}/metrics`)).text();
    expect(text).toMatch(
      /^ibllm_decoder_transfer_bytes_total\{[^}]*direction="from_session"[^}]*phase="decode"[^}]*\} [1-9]/m,
    );
  });

  it('on SIGTERM turns not ready, lets the stream in flight finish, then exits 0', async () => {
    const MAX = 200;
    let signalled = false;
    const stream = collect(client, request(MAX, true), () => {
      if (!signalled) {
        signalled = true;
        proc.child.kill('SIGTERM');
      }
    });
    await proc.waitForLine((l) => l['event'] === 'shutdown.begin');
    // While it drains the pod must leave the load balancer.
    let readyz = 200;
    for (let i = 0; i < 50 && readyz === 200; i++) {
      readyz = (await fetch(`${httpBase}/readyz`).catch(() => ({ status: -1 }))).status;
      if (readyz === 200) await sleep(20);
    }
    expect(readyz).not.toBe(200);
    const result = await stream;
    expect(result.error).toBeUndefined();
    expect(ids(result)).toHaveLength(MAX);
    expect(ids(result).slice(0, 24)).toEqual(decodeCase.generated_ids);
    expect(result.messages.at(-1)!.finishReason).toBe(decoderV1.FinishReason.FINISH_REASON_LENGTH);
    expect(await proc.exited()).toEqual({ code: 0, signal: null });
    const events = proc.lines.map((l) => l['event']);
    // the generation finished after shutdown began: it was drained, not cut
    expect(events.lastIndexOf('generate.finished')).toBeGreaterThan(events.indexOf('shutdown.begin'));
    expect(events.indexOf('shutdown.done')).toBeGreaterThan(events.lastIndexOf('generate.finished'));
  }, 60_000);
});

describe('decoder process configuration', () => {
  it('exits 78 with one line naming MODEL_REPO when it is unset', async () => {
    expect(existsSync(MAIN)).toBe(true);
    const proc = startProcess(process.execPath, [MAIN], { env: { ...baseEnv(), MODEL_REPO: undefined } });
    expect(await proc.exited()).toEqual({ code: EXIT_CONFIG, signal: null });
    const lines = proc.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/MODEL_REPO is unset/);
  });

  it('exits 1 with one line saying what is missing when the repository has no decoder', async () => {
    const proc = startProcess(process.execPath, [MAIN], {
      // a folder that exists but holds no built components (a missing folder gets its own message)
      env: { ...baseEnv(), MODEL_REPO: golden },
    });
    expect(await proc.exited()).toEqual({ code: 1, signal: null });
    const lines = proc.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/decoder failed to start: .*has no llama-decoder component/);
  });
});
