// `ibllm serve --standalone`: the whole platform in one process on the embedded store, answering
// the demo request with the official greedy tokens and the official embeddings (golden tiny-a);
// the API-key rules of standalone mode.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { audio, image, ImageBindClient, text } from '@imagebind-llm/client';
import { readNpy, toFloat32 } from '@imagebind-llm/checkpoint';
import { createClient } from '@imagebind-llm/grpc-kit';
import { gatewayV1 } from '@imagebind-llm/proto';
import {
  collectGenerate,
  GOLDEN_DEMO_QUESTION,
  goldenDemoCase,
  goldenDemoRequest,
  goldenModelRepository,
  goldenPath,
  l2Norm,
  relativeError,
  startProcess,
  type RunningProcess,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CLI = join(__dirname, '..', 'bin', 'ibllm.js');
const QUESTION = GOLDEN_DEMO_QUESTION;
const KEY = 'k-0123456789abcdef0123';
/** What the official code answered for girl.jpg + girl_bgm.wav and QUESTION (greedy, cache on). */
const DEMO = goldenDemoCase();
const golden = (file: string): Float32Array => toFloat32(readNpy(goldenPath(file)));
// ‖ours − official‖₂/‖official‖₂ of an embedding from the raw input (image: the preprocessed tensor
// is bit-identical, see encoder-vision's e2e; text: the same token ids), and the same for its norm.
// The encoder graphs reach ≤ 6.2e-7 on every modality; 1e-5 is the bound the encoder parity tests
// hold. The vectors are ImageBind's output after its postprocessor: unit length for images, × the
// logit scale (norm 14.6) for text, so a dropped scale fails.
const EMBED_REL_TOLERANCE = 1e-5;

function expectEmbedding(got: ArrayLike<number>, file: string, what: string): number {
  const want = golden(file);
  const error = relativeError(got, want);
  expect(error, `${what} vs ${file}`).toBeLessThanOrEqual(EMBED_REL_TOLERANCE);
  expect(Math.abs(l2Norm(got) - l2Norm(want)) / l2Norm(want), `${what} norm`).toBeLessThanOrEqual(
    EMBED_REL_TOLERANCE,
  );
  return error;
}

function serve(args: string[]): RunningProcess {
  return startProcess(process.execPath, [CLI, 'serve', ...args], {
    env: { PATH: process.env['PATH'], LOG_LEVEL: 'info' },
  });
}

/** `serve --standalone` on the golden models, on ports the system picks. */
function standaloneOnAnyPorts(): string[] {
  return ['--standalone', '--models', goldenModelRepository(), '--grpc-port', '0', '--http-port', '0'];
}

/** Whether process `pid` exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The processes whose parent is `ppid` (Linux: /proc). */
function childrenOf(ppid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) found.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/**
 * Ends a test's `ibllm serve` and the gateway it started. Killed with -9, the launcher leaves the
 * gateway to drain and exit by itself (its own test below checks that), which can take seconds on
 * a loaded machine: without this the test run could end with a gateway still draining.
 */
async function stopServe(proc: RunningProcess): Promise<void> {
  const gateways = proc.child.pid === undefined ? [] : childrenOf(proc.child.pid);
  await proc.stop('SIGKILL');
  for (const pid of gateways) {
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
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
    if (proc !== undefined) await stopServe(proc);
  });

  it('streams the official greedy tokens for image + audio (decode/demo_image+audio_knn-on)', async () => {
    expect(DEMO.instruction).toBe(QUESTION);
    const client = createClient(gatewayV1.GatewayServiceClient, at.grpc);
    const { ids, text } = await collectGenerate(client, goldenDemoRequest()).finally(() => client.close());
    expect(ids).toEqual(DEMO.generated_ids);
    expect(text.trim()).toBe(DEMO.text_stripped);
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
      const { ids } = await collectGenerate(direct, goldenDemoRequest()).finally(() => direct.close());
      expect(chunks.flat()).toEqual(ids);
      expect(ids).toEqual(DEMO.generated_ids);
      const embedded = await client.embed({
        inputs: [image(goldenPath('inputs', 'girl.jpg'))],
        includeFused: true,
      });
      expect(embedded.embeddings[0]?.vector).toBeInstanceOf(Float32Array);
      const error = expectEmbedding(
        embedded.embeddings[0]!.vector,
        'expected/embed/girl.l2.npy',
        'SDK girl.jpg',
      );
      console.log(`serve: SDK girl.jpg embedding rel. error ${error.toExponential(2)}`);
      // Text carries its logit scale; normalize: true gives the official unit vector.
      const [scaled, unit] = await Promise.all([
        client.embed({ inputs: [text('A dog.')] }),
        client.embed({ inputs: [text('A dog.')], normalize: true }),
      ]);
      expectEmbedding(scaled.embeddings[0]!.vector, 'expected/embed/a_dog.npy', 'SDK "A dog."');
      expectEmbedding(unit.embeddings[0]!.vector, 'expected/embed/a_dog.l2.npy', 'SDK "A dog." normalize');
    } finally {
      client.close();
    }
  });

  it('serves /v1/models and /v1/embeddings (the official embedding for "A dog.")', async () => {
    const models = (await (await fetch(`${at.http}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data[0]?.id).toBe('imagebind-llm');
    const res = await fetch(`${at.http}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'imagebind-llm', input: ['A dog.', 'a cat'] }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: { embedding: number[] }[] };
    expect(body.data.map((d) => d.embedding.length)).toEqual([1024, 1024]);
    const error = expectEmbedding(body.data[0]!.embedding, 'expected/embed/a_dog.npy', 'REST "A dog."');
    console.log(`serve: REST "A dog." embedding rel. error ${error.toExponential(2)}`);
    // the second input is encoded on its own, not a copy of the first
    expect(relativeError(body.data[1]!.embedding, golden('expected/embed/a_dog.l2.npy'))).toBeGreaterThan(
      0.1,
    );
  });

  it('returns unit vectors with imagebind_normalize: true (the official L2 form of "A dog.")', async () => {
    const res = await fetch(`${at.http}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'imagebind-llm', input: 'A dog.', imagebind_normalize: true }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: { embedding: number[] }[] };
    // a_dog.l2.npy is the official embedding divided by its norm; a_dog.npy has the text logit scale.
    const error = expectEmbedding(
      body.data[0]!.embedding,
      'expected/embed/a_dog.l2.npy',
      'REST "A dog." normalised',
    );
    console.log(`serve: REST "A dog." unit embedding rel. error ${error.toExponential(2)}`);
    const bad = await fetch(`${at.http}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'imagebind-llm', input: 'A dog.', imagebind_normalize: 'yes' }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { param: string } }).error.param).toBe('imagebind_normalize');
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
  it.each(['0.0.0.0', '127.0.0.2'])(
    'refuses to listen on %s without API keys: exit 78, one line saying what to set',
    async (host) => {
      const proc = serve([
        '--standalone',
        '--models',
        goldenModelRepository(),
        '--host',
        host,
        '--grpc-port',
        '0',
        '--http-port',
        '0',
      ]);
      const result = await proc.exited();
      expect(result.code).toBe(78);
      const lines = proc.stderr().trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toBe(
        `invalid configuration for gateway: GATEWAY_GRPC_HOST is "${host}", GATEWAY_HTTP_HOST is "${host}" without API keys: set GATEWAY_API_KEYS (tenant:key,...) or bind 127.0.0.1 or ::1`,
      );
    },
  );

  it('serves --host 127.0.0.2 with keys: a request without one is 401', async () => {
    const proc = serve([
      '--standalone',
      '--models',
      goldenModelRepository(),
      '--host',
      '127.0.0.2',
      '--api-keys',
      `team-a:${KEY}`,
      '--grpc-port',
      '0',
      '--http-port',
      '0',
    ]);
    try {
      const line = await proc.waitForLine((l) => l['event'] === 'service.ready', 60_000);
      const http = `http://127.0.0.2:${String(line['httpPort'])}`;
      expect((await fetch(`${http}/v1/models`)).status).toBe(401);
      expect((await fetch(`${http}/v1/models`, { headers: { 'x-api-key': KEY } })).status).toBe(200);
    } finally {
      await stopServe(proc);
    }
  }, 90_000);

  it('the gateway does not outlive its launcher: kill -9 on `ibllm serve` ends the gateway too', async () => {
    const launcher = serve(standaloneOnAnyPorts());
    const line = await launcher.waitForLine((l) => l['event'] === 'service.ready', 60_000);
    // The ready line carries the gateway's own pid; the launcher is a different process.
    const gatewayPid = Number(line['pid']);
    expect(Number.isInteger(gatewayPid) && gatewayPid > 0).toBe(true);
    expect(childrenOf(launcher.child.pid!)).toEqual([gatewayPid]);
    expect(alive(gatewayPid)).toBe(true);
    // The launcher alone: the gateway is in a process group of its own, out of reach of stop().
    launcher.child.kill('SIGKILL');
    await launcher.exited();
    // The closed IPC channel starts a graceful drain; 30 s covers it on a loaded machine.
    await expect.poll(() => alive(gatewayPid), { timeout: 30_000, interval: 100 }).toBe(false);
  }, 90_000);

  it('a gateway still starting when `ibllm serve` is killed with -9 exits too (before its own handlers)', async () => {
    const launcher = serve(standaloneOnAnyPorts());
    try {
      // Killed as soon as the gateway process exists: it is still loading its modules.
      let gateway: number[] = [];
      await expect
        .poll(() => (gateway = childrenOf(launcher.child.pid!)), { timeout: 10_000, interval: 5 })
        .toHaveLength(1);
      launcher.child.kill('SIGKILL');
      await launcher.exited();
      await expect.poll(() => alive(gateway[0]!), { timeout: 10_000, interval: 50 }).toBe(false);
      expect(launcher.lines.some((l) => l['event'] === 'service.ready')).toBe(false);
    } finally {
      await stopServe(launcher);
    }
  }, 60_000);

  it("Ctrl-C (SIGINT to the terminal's foreground group) reaches the launcher alone: one clean drain, exit 0", async () => {
    const launcher = serve(standaloneOnAnyPorts());
    try {
      const line = await launcher.waitForLine((l) => l['event'] === 'service.ready', 60_000);
      const gatewayPid = Number(line['pid']);
      // The harness started the launcher as the leader of its own group, as a shell would.
      process.kill(-launcher.child.pid!, 'SIGINT');
      // Had the gateway shared the group, it would see two SIGINTs (the terminal's and the
      // launcher's) and exit 1 at the second ("shutdown.forced").
      expect(await launcher.exited()).toEqual({ code: 0, signal: null });
      expect(launcher.lines.some((l) => l['event'] === 'shutdown.forced')).toBe(false);
      expect(alive(gatewayPid)).toBe(false);
    } finally {
      await stopServe(launcher);
    }
  }, 90_000);

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
      await stopServe(proc);
    }
  }, 60_000);
});
