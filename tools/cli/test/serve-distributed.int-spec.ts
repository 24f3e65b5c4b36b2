// `ibllm serve --distributed`: every service its own process, started, wired and seeded by the
// launcher on the golden tiny-a repository, answering with the official greedy tokens (the visual
// cache on, so the retriever must have seeded itself from the repository); SIGTERM stops every
// child and exits 0; kill -9 of the launcher leaves no child behind; a child that dies takes the
// platform down with a message naming it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { json } from 'node:stream/consumers';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@imagebind-llm/grpc-kit';
import { gatewayV1 } from '@imagebind-llm/proto';
import {
  chatBody,
  collectGenerate,
  GOLDEN_DEMO_QUESTION,
  goldenDemoCase,
  goldenDemoChatBody,
  goldenDemoRequest,
  goldenModelRepository,
  parseChatStream,
  postChatCompletion,
  startProcess,
  type RunningProcess,
} from '@imagebind-llm/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const CLI = join(__dirname, '..', 'bin', 'ibllm.js');
/** What the official code answered for girl.jpg + girl_bgm.wav and the demo question (greedy, cache on). */
const DEMO = goldenDemoCase();
const SERVICES = [
  'encoder-vision',
  'encoder-audio',
  'encoder-text',
  'encoder-point',
  'retriever',
  'bind',
  'decoder',
  'gateway',
];
/** Eight processes load on a 2-core machine at once; the standalone test allows one 60 s. */
const READY_TIMEOUT_MS = 150_000;
/** A drain after SIGTERM or a closed IPC channel, on a loaded machine. */
const EXIT_TIMEOUT_MS = 40_000;

interface Ready {
  readonly pid: number;
  readonly gateway: { readonly grpc: string; readonly http: string };
  readonly services: { name: string; pid: number; grpc: string; http: string }[];
}

function launch(repo: string, extra: string[] = [], env: Record<string, string> = {}): RunningProcess {
  return startProcess(
    process.execPath,
    [CLI, 'serve', '--distributed', '--models', repo, '--grpc-port', '0', '--http-port', '0', ...extra],
    // One ONNX Runtime thread per process: eight processes share two cores.
    { env: { PATH: process.env['PATH'], LOG_LEVEL: 'info', INTRA_OP_THREADS: '1', ...env } },
  );
}

/** One exported span as the OTLP/HTTP JSON encoding carries it, with its process's service.name. */
interface ReceivedSpan {
  readonly service: string;
  readonly name: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
}

interface OtlpJson {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
    scopeSpans?: { spans?: { name: string; traceId: string; spanId: string; parentSpanId?: string }[] }[];
  }[];
}

/** An OpenTelemetry collector in this process: accepts OTLP/HTTP JSON on /v1/traces. */
async function startOtlpReceiver(): Promise<{ server: Server; url: string; spans: ReceivedSpan[] }> {
  const spans: ReceivedSpan[] = [];
  const collect = (req: IncomingMessage, body: OtlpJson): void => {
    for (const rs of req.url === '/v1/traces' ? (body.resourceSpans ?? []) : []) {
      const service =
        rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
      for (const s of (rs.scopeSpans ?? []).flatMap((ss) => ss.spans ?? [])) {
        spans.push({
          service,
          name: s.name,
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? '',
        });
      }
    }
  };
  const server = createServer((req, res) => {
    void json(req).then((body) => {
      collect(req, body as OtlpJson);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans };
}

async function platformReady(proc: RunningProcess): Promise<Ready> {
  const line = await proc.waitForLine((l) => l['event'] === 'platform.ready', READY_TIMEOUT_MS);
  return line as unknown as Ready;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Ends whatever a failed test left running (only the pids this file started). */
function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
}

/**
 * Runs `body` on a launcher of the test's own, ready; afterwards nothing it started is left
 * running. With `logDir`, the services log into a folder of the test's own (a launcher killed with
 * SIGKILL cannot remove a temporary one), removed at the end.
 */
async function withOwnLauncher(
  options: { extra?: string[]; logDir?: boolean },
  body: (launcher: RunningProcess, ready: Ready, logDir: string | undefined) => Promise<void>,
): Promise<void> {
  const logDir = options.logDir ? mkdtempSync(join(tmpdir(), 'serve-distributed-')) : undefined;
  const launcher = launch(goldenModelRepository(), [
    ...(options.extra ?? []),
    ...(logDir === undefined ? [] : ['--log-dir', logDir]),
  ]);
  let pids: number[] = [];
  try {
    const ready = await platformReady(launcher);
    pids = ready.services.map((s) => s.pid);
    await body(launcher, ready, logDir);
  } finally {
    await launcher.stop('SIGKILL');
    killAll(pids);
    if (logDir !== undefined) rmSync(logDir, { recursive: true, force: true });
  }
}

describe('ibllm serve --distributed', () => {
  let repo: string;
  let launcher: RunningProcess;
  let ready: Ready;
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;

  beforeAll(async () => {
    repo = goldenModelRepository();
    // Every service exports its spans to a collector in this process (OpenTelemetry, OTLP/HTTP).
    otlp = await startOtlpReceiver();
    launcher = launch(repo, [], { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url });
    ready = await platformReady(launcher);
  }, READY_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    await launcher?.stop('SIGKILL');
    killAll(ready?.services.map((s) => s.pid) ?? []);
    otlp?.server.close();
  });

  it('runs every service as its own process and prints a summary of them', async () => {
    expect(ready.services.map((s) => s.name)).toEqual(SERVICES);
    const pids = ready.services.map((s) => s.pid);
    expect(new Set([...pids, launcher.child.pid]).size).toBe(SERVICES.length + 1);
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(true);
    // Each pid is the one the service itself reported in its own service.ready line.
    for (const s of ready.services) {
      const own = launcher.lines.find((l) => l['event'] === 'service.ready' && l['service'] === s.name);
      expect(own?.['pid'], s.name).toBe(s.pid);
      expect(s.grpc).toBe(`127.0.0.1:${String(own?.['grpcPort'])}`);
    }
    // The retriever filled its visual cache from the repository (MODEL_REPO, no extra variable).
    const retriever = launcher.lines.find(
      (l) => l['event'] === 'service.ready' && l['service'] === 'retriever',
    );
    expect(retriever?.['seeded']).toBeGreaterThan(0);
    // stderr and stdout arrive apart: the table may come just after the platform.ready line.
    await expect.poll(() => launcher.stderr(), { timeout: 5_000 }).toMatch(/service\s+pid\s+gRPC\s+HTTP/);
    const table = launcher.stderr();
    for (const s of ready.services) {
      expect(table).toMatch(new RegExp(`^${s.name}\\s+${s.pid}\\s+${s.grpc}\\s+${s.http}$`, 'm'));
    }
  });

  it('streams the official greedy tokens through the gateway (decode/demo_image+audio_knn-on)', async () => {
    expect(DEMO.instruction).toBe(GOLDEN_DEMO_QUESTION);
    const client = createClient(gatewayV1.GatewayServiceClient, ready.gateway.grpc);
    const { ids, text } = await collectGenerate(client, goldenDemoRequest()).finally(() => client.close());
    expect(ids).toEqual(DEMO.generated_ids);
    expect(text.trim()).toBe(DEMO.text_stripped);
  }, 90_000);

  it('answers REST chat with the official text (SSE), as the README asks it', async () => {
    const res = await postChatCompletion(ready.gateway.http, goldenDemoChatBody());
    expect(res.status).toBe(200);
    const { events, text } = parseChatStream(await res.text());
    expect(events.at(-1)).toBe('[DONE]');
    expect(text.trim()).toBe(DEMO.text_stripped);
    // The README's own request (an ImageBind text input, cache on by default) answers too.
    const readme = await postChatCompletion(
      ready.gateway.http,
      chatBody(
        [
          { type: 'text', text: 'Describe the scene.' },
          { type: 'text', text: 'A dog playing on the beach.', imagebind_modality: true },
        ],
        { stream: true, max_tokens: 32 },
      ),
    );
    expect(readme.status).toBe(200);
    const body = await readme.text();
    expect(body).not.toMatch(/"error"/);
    expect(body.trimEnd().endsWith('data: [DONE]')).toBe(true);
  }, 90_000);

  it('traces one chat request across every service on its path (W3C context, OTLP export)', async () => {
    // The client's own trace context: every span of the request must join this trace.
    const traceId = randomBytes(16).toString('hex');
    const clientSpan = randomBytes(8).toString('hex');
    const res = await fetch(`${ready.gateway.http}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${clientSpan}-01` },
      body: JSON.stringify(goldenDemoChatBody()),
    });
    expect(res.status).toBe(200);
    expect(parseChatStream(await res.text()).text.trim()).toBe(DEMO.text_stripped);
    // image + audio inputs, the visual cache, the bind network, the decoder (tokenize + stream).
    const path = ['gateway', 'encoder-vision', 'encoder-audio', 'retriever', 'bind', 'decoder'];
    const ofTrace = (): ReceivedSpan[] => otlp.spans.filter((s) => s.traceId === traceId);
    await expect
      .poll(() => [...new Set(ofTrace().map((s) => s.service))].sort(), { timeout: 20_000, interval: 250 })
      .toEqual([...path].sort());
    // Wait for the decoder's stream span too (it ends with the last token).
    await expect
      .poll(() => ofTrace().map((s) => s.name), { timeout: 10_000 })
      .toEqual(expect.arrayContaining(['decoder.prefill', 'decoder.stream']));
    const spans = ofTrace();
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const root = spans.find((s) => s.name === 'POST /v1/chat/completions');
    expect(root?.service).toBe('gateway');
    expect(root?.parentSpanId).toBe(clientSpan);
    // One tree: every other span's parent is a span of this trace, back to the gateway's.
    for (const s of spans) {
      if (s === root) continue;
      expect(byId.has(s.parentSpanId), `${s.service} ${s.name}`).toBe(true);
    }
    const names = spans.map((s) => `${s.service} ${s.name}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'encoder-vision imagebind.encoder.v1.EncoderService/Encode',
        'encoder-audio imagebind.encoder.v1.EncoderService/Encode',
        'retriever imagebind.retriever.v1.RetrieverService/Search',
        'bind imagebind.bind.v1.BindService/Project',
        'decoder imagebind.decoder.v1.DecoderService/Generate',
      ]),
    );
  }, 90_000);

  it(
    'stops every child on SIGTERM and exits 0',
    async () => {
      const pids = ready.services.map((s) => s.pid);
      expect(await launcher.stop('SIGTERM', EXIT_TIMEOUT_MS)).toEqual({ code: 0, signal: null });
      for (const pid of pids) expect(alive(pid), `pid ${pid} after SIGTERM`).toBe(false);
      expect(launcher.lines.filter((l) => l['event'] === 'shutdown.done')).toHaveLength(SERVICES.length);
      // The temporary folder of the services' logs goes with a clean stop.
      const logDir = /\(their logs: (.+)\)$/m.exec(launcher.stderr())?.[1];
      expect(logDir).toBeDefined();
      expect(existsSync(logDir!)).toBe(false);
    },
    EXIT_TIMEOUT_MS + 10_000,
  );
});

describe('ibllm serve --distributed, when a process goes away', () => {
  it(
    'leaves no child behind when the launcher is killed with SIGKILL',
    async () => {
      await withOwnLauncher({ logDir: true }, async (launcher, ready, logDir) => {
        const pids = ready.services.map((s) => s.pid);
        await launcher.stop('SIGKILL');
        // Each child's IPC channel closes: it drains and exits as on SIGTERM.
        await expect.poll(() => pids.filter(alive), { timeout: EXIT_TIMEOUT_MS, interval: 200 }).toEqual([]);
        // ... and logged its drain to the end, into a file that outlived the launcher.
        expect(readFileSync(join(logDir!, 'gateway.log'), 'utf8')).toContain('"event":"shutdown.done"');
      });
    },
    READY_TIMEOUT_MS + EXIT_TIMEOUT_MS + 10_000,
  );

  it(
    'stops the rest and exits 1 naming the service when one dies',
    async () => {
      await withOwnLauncher({ logDir: true }, async (launcher, ready, logDir) => {
        const pids = ready.services.map((s) => s.pid);
        const decoder = ready.services.find((s) => s.name === 'decoder')!;
        process.kill(decoder.pid, 'SIGKILL');
        expect(await launcher.exited()).toEqual({ code: 1, signal: null });
        const said = launcher.stderr();
        expect(said).toContain(
          `ibllm serve: decoder (pid ${decoder.pid}) exited with signal SIGKILL; stopping every service. Its last lines (all in ${join(logDir!, 'decoder.log')}):`,
        );
        // Its last lines follow, among them its ready line.
        expect(said).toMatch(/^ {2}\{.*"event":"service\.ready","service":"decoder"/m);
        expect(pids.filter(alive)).toEqual([]);
        // After a failure the logs stay, each service's whole output in its own file.
        expect(said).toContain(`the services' logs are kept in ${logDir}`);
        for (const name of SERVICES) {
          expect(readFileSync(join(logDir!, `${name}.log`), 'utf8'), name).toContain(
            '"event":"service.ready"',
          );
        }
      });
    },
    READY_TIMEOUT_MS + EXIT_TIMEOUT_MS + 10_000,
  );
});

describe('ibllm serve --distributed with a public --host', () => {
  it(
    'gives the gateway the host and keys (401 without one) while the services stay on 127.0.0.1',
    async () => {
      const key = 'k-0123456789abcdef0123';
      const extra = ['--host', '127.0.0.2', '--api-keys', `team-a:${key}`];
      await withOwnLauncher({ extra }, async (launcher, ready) => {
        const pids = ready.services.map((s) => s.pid);
        expect(ready.gateway.http).toMatch(/^http:\/\/127\.0\.0\.2:\d+$/);
        expect(ready.gateway.grpc).toMatch(/^127\.0\.0\.2:\d+$/);
        for (const s of ready.services.filter((x) => x.name !== 'gateway')) {
          expect(s.grpc, s.name).toMatch(/^127\.0\.0\.1:\d+$/);
        }
        expect((await fetch(`${ready.gateway.http}/v1/models`)).status).toBe(401);
        expect(
          (await fetch(`${ready.gateway.http}/v1/models`, { headers: { 'x-api-key': key } })).status,
        ).toBe(200);
        expect(await launcher.stop('SIGTERM', EXIT_TIMEOUT_MS)).toEqual({ code: 0, signal: null });
        expect(pids.filter(alive)).toEqual([]);
      });
    },
    READY_TIMEOUT_MS + EXIT_TIMEOUT_MS + 10_000,
  );
});

describe('ibllm serve --distributed, its command line', () => {
  const run = async (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const proc = startProcess(process.execPath, [CLI, 'serve', ...args], {
      env: { PATH: process.env['PATH'] },
    });
    const { code } = await proc.exited();
    return {
      code,
      stdout: proc.lines.map((l) => (typeof l['raw'] === 'string' ? l['raw'] : JSON.stringify(l))).join('\n'),
      stderr: proc.stderr(),
    };
  };

  it('is described by `ibllm serve --help`', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('[--standalone | --distributed]');
    expect(help.stdout).toContain('--distributed runs every service as its own process');
    expect(help.stdout).toContain('[--log-dir DIR]');
  });

  it.each([
    [
      ['--distributed'],
      'ibllm: --distributed needs --models REPO (build one with `ibllm models demo --out REPO`)',
    ],
    [
      ['--distributed', '--standalone', '--models', '.'],
      'ibllm: --standalone and --distributed exclude each other: one process, or one per service',
    ],
    [
      ['--log-dir', '/tmp/x'],
      'ibllm: --log-dir is for --distributed (the other modes log to standard output)',
    ],
  ])('refuses %j with exit 2 and one line', async (args, line) => {
    const result = await run(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`${line}\n`);
  });
});
