// `ibllm serve --standalone`: the whole platform in one process on the embedded store, answering
// exactly what the in-process `ibllm generate` answers; the API-key rules of standalone mode.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { audio, image, ImageBindClient } from '@imagebind-llm/client';
import { callServerStream, createClient } from '@imagebind-llm/grpc-kit';
import { gatewayV1 } from '@imagebind-llm/proto';
import {
  goldenDemoInputs,
  goldenModelRepository,
  goldenPath,
  startProcess,
  type RunningProcess,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CLI = join(__dirname, '..', 'bin', 'ibllm.js');
const QUESTION = "Guess the girl's mood based on the background music and explain the reason?";
const KEY = 'k-0123456789abcdef0123';

function serve(args: string[]): RunningProcess {
  return startProcess(process.execPath, [CLI, 'serve', ...args], {
    env: { PATH: process.env['PATH'], LOG_LEVEL: 'info' },
  });
}

async function ready(proc: RunningProcess): Promise<{ grpc: string; http: string }> {
  const line = await proc.waitForLine((l) => l['event'] === 'service.ready', 60_000);
  return {
    grpc: `127.0.0.1:${String(line['grpcPort'])}`,
    http: `http://127.0.0.1:${String(line['httpPort'])}`,
  };
}

describe('ibllm serve --standalone', () => {
  let repo: string;
  let proc: RunningProcess;
  let at: { grpc: string; http: string };

  beforeAll(async () => {
    repo = goldenModelRepository();
    proc = serve(['--standalone', '--models', repo, '--grpc-port', '0', '--http-port', '0']);
    at = await ready(proc);
  }, 90_000);

  afterAll(async () => {
    await proc?.stop('SIGKILL');
  });

  it('streams the tokens `ibllm generate` produces for image + audio', async () => {
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        'generate',
        '--models',
        repo,
        '--image',
        goldenPath('inputs', 'girl.jpg'),
        '--audio',
        goldenPath('inputs', 'girl_bgm.wav'),
        '--prompt',
        QUESTION,
        '--temperature',
        '0',
        '--max-new-tokens',
        '24',
        '--json',
      ],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    const expected = JSON.parse(r.stdout) as { generated_ids: number[]; text: string };
    const client = createClient(gatewayV1.GatewayServiceClient, at.grpc);
    const ids: number[] = [];
    let text = '';
    for await (const m of callServerStream(client.generate.bind(client), {
      inputs: goldenDemoInputs(),
      instruction: QUESTION,
      input: '',
      sampling: { temperature: 0 },
      stopping: { maxNewTokens: 24 },
    })) {
      ids.push(...m.tokenIds);
      text += m.text;
    }
    client.close();
    expect(ids).toEqual(expected.generated_ids);
    expect(text.trim()).toBe(expected.text);
  });

  it('answers the SDK (@imagebind-llm/client) the same way: streamed chunks, embeddings as Float32Array', async () => {
    const client = new ImageBindClient({ addresses: [at.grpc] });
    try {
      const stream = client.generate({
        inputs: [image(goldenPath('inputs', 'girl.jpg')), audio(goldenPath('inputs', 'girl_bgm.wav'))],
        instruction: QUESTION,
        sampling: { temperature: 0 },
        maxNewTokens: 24,
      });
      const chunks: (readonly number[])[] = [];
      for await (const chunk of stream) chunks.push(chunk.tokenIds);
      expect(chunks.length).toBeGreaterThan(1);
      const direct = createClient(gatewayV1.GatewayServiceClient, at.grpc);
      const ids: number[] = [];
      for await (const m of callServerStream(direct.generate.bind(direct), {
        inputs: goldenDemoInputs(),
        instruction: QUESTION,
        input: '',
        sampling: { temperature: 0 },
        stopping: { maxNewTokens: 24 },
      })) {
        ids.push(...m.tokenIds);
      }
      direct.close();
      expect(chunks.flat()).toEqual(ids);
      const embedded = await client.embed({
        inputs: [image(goldenPath('inputs', 'girl.jpg'))],
        includeFused: true,
      });
      expect(embedded.embeddings[0]?.vector).toBeInstanceOf(Float32Array);
      expect(embedded.embeddings[0]?.vector.length).toBe(1024);
    } finally {
      client.close();
    }
  });

  it('serves /v1/models and /v1/embeddings (1024 values per input)', async () => {
    const models = (await (await fetch(`${at.http}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data[0]?.id).toBe('imagebind-llm');
    const res = await fetch(`${at.http}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'imagebind-llm', input: ['a dog', 'a cat'] }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: { embedding: number[] }[] };
    expect(body.data.map((d) => d.embedding.length)).toEqual([1024, 1024]);
  });

  it('answers a bad REST body with 400 naming the field, and keeps serving', async () => {
    const res = await fetch(`${at.http}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'imagebind-llm', messages: [] }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string } };
    expect(body.error.message).toMatch(/messages/);
    expect((await fetch(`${at.http}/readyz`)).status).toBe(200);
  });

  it('drains and exits 0 on SIGTERM (passed through the CLI)', async () => {
    const other = serve(['--standalone', '--models', repo, '--grpc-port', '0', '--http-port', '0']);
    await ready(other);
    expect(await other.stop('SIGTERM', 20_000)).toEqual({ code: 0, signal: null });
  }, 60_000);
});

describe('standalone API keys', () => {
  it('refuses to listen beyond loopback without API keys', async () => {
    const proc = serve([
      '--standalone',
      '--models',
      goldenModelRepository(),
      '--host',
      '0.0.0.0',
      '--grpc-port',
      '0',
      '--http-port',
      '0',
    ]);
    const result = await proc.exited();
    expect(result.code).not.toBe(0);
    expect(proc.stderr()).toMatch(/refusing to listen on 0\.0\.0\.0 without API keys: set GATEWAY_API_KEYS/);
  });

  it('with keys configured, calls without a valid key get UNAUTHENTICATED / 401', async () => {
    const proc = serve([
      '--standalone',
      '--models',
      goldenModelRepository(),
      '--api-keys',
      `team-a:${KEY}`,
      '--grpc-port',
      '0',
      '--http-port',
      '0',
    ]);
    try {
      const at = await ready(proc);
      const client = createClient(gatewayV1.GatewayServiceClient, at.grpc);
      const call = (md: Metadata): Promise<ServiceError | null> =>
        new Promise((resolve) => {
          client.listModels({}, md, (error) => resolve(error));
        });
      expect((await call(new Metadata()))?.code).toBe(status.UNAUTHENTICATED);
      const wrong = new Metadata();
      wrong.set('authorization', 'Bearer not-the-key-at-all');
      expect((await call(wrong))?.code).toBe(status.UNAUTHENTICATED);
      const good = new Metadata();
      good.set('authorization', `Bearer ${KEY}`);
      expect(await call(good)).toBeNull();
      client.close();
      expect((await fetch(`${at.http}/v1/models`)).status).toBe(401);
      expect(
        (await fetch(`${at.http}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })).status,
      ).toBe(200);
    } finally {
      await proc.stop('SIGKILL');
    }
  }, 60_000);
});
