import { once } from 'node:events';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  bindV1,
  commonV1,
  decoderV1,
  loadDescriptorSet,
  retrieverV1,
  SERVICE_NAMES,
} from '@imagebind-llm/proto';
import { createLogger, MemoryLog, ServiceMetrics } from '@imagebind-llm/observability';
import { afterEach, describe, expect, it } from 'vitest';
import {
  callServerStream,
  callUnary,
  checkHealth,
  createClient,
  listServicesByReflection,
  throwIfAborted,
  GrpcServer,
  type CallContext,
  type ServiceHandlers,
} from './index';

// libs/testing builds on grpc-kit, so grpc-kit's own tests set up their server directly.
interface Harness {
  server: GrpcServer;
  address: string;
  log: MemoryLog;
  close(graceMs?: number): Promise<void>;
}

async function startGrpcTestServer(
  register: (server: GrpcServer) => void,
  options: { maxReceiveMessageBytes?: number; descriptorSet?: Buffer; ready?: boolean } = {},
): Promise<Harness> {
  const log = new MemoryLog();
  const server = new GrpcServer({
    host: '127.0.0.1',
    port: 0,
    logger: createLogger({ service: 'grpc-kit-test', level: 'debug', destination: log }),
    metrics: new ServiceMetrics('grpc-kit-test'),
    maxReceiveMessageBytes: options.maxReceiveMessageBytes ?? 4 * 1024 * 1024,
    ...(options.descriptorSet === undefined ? {} : { descriptorSet: options.descriptorSet }),
  });
  register(server);
  const port = await server.start();
  if (options.ready !== false) server.setReady(true);
  return {
    server,
    address: `127.0.0.1:${port}`,
    log,
    close: async (graceMs = 1_000) => server.shutdown(graceMs),
  };
}

const tensor = (values: number[]): commonV1.Tensor => ({
  dtype: commonV1.DataType.DATA_TYPE_FLOAT32,
  shape: [values.length],
  data: Buffer.from(new Float32Array(values).buffer),
});

function bindHandlers(
  overrides: Partial<ServiceHandlers<typeof bindV1.BindServiceService>> = {},
): ServiceHandlers<typeof bindV1.BindServiceService> {
  return {
    project: async (request) => {
      await Promise.resolve();
      if (request.queries === undefined) throw DomainError.invalidInput('queries: required', 'queries');
      return { visualQueries: request.queries, model: { name: 'bind', version: '1' } };
    },
    getModelStatus: () => Promise.resolve({ models: [] }),
    ...overrides,
  };
}

function decoderHandlers(
  generate: ServiceHandlers<typeof decoderV1.DecoderServiceService>['generate'],
): ServiceHandlers<typeof decoderV1.DecoderServiceService> {
  return {
    generate,
    tokenize: () => Promise.reject(DomainError.notImplemented('no tokenizer in this test')),
    getModelStatus: () => Promise.resolve({ models: [], activeSequences: 0, freeKvPositions: 0 }),
  };
}

let harness: Harness | undefined;
afterEach(async () => {
  await harness?.close(200);
  harness = undefined;
});

async function unaryError(promise: Promise<unknown>): Promise<DomainError> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: unknown) => e as DomainError,
  );
}

describe('grpc-kit server and client on loopback', () => {
  it('serves a typed unary handler and echoes the caller request id in the headers', async () => {
    harness = await startGrpcTestServer((s) =>
      s.addService(SERVICE_NAMES.bind, bindV1.BindServiceService, bindHandlers()),
    );
    const client = createClient(bindV1.BindServiceClient, harness.address);
    const md = new Metadata();
    md.set('x-request-id', 'req-abc');
    const headers = new Promise<Metadata>((resolve, reject) => {
      const call = client.project({ queries: tensor([1, 2, 3]) }, md, {}, (err) => err && reject(err));
      call.on('metadata', resolve);
    });
    expect((await headers).get('x-request-id')).toEqual(['req-abc']);
    const res = await callUnary(client.project.bind(client), { queries: tensor([0.5]) });
    expect(
      new Float32Array(
        Buffer.from(res.visualQueries!.data).buffer.slice(res.visualQueries!.data.byteOffset),
      )[0],
    ).toBe(0.5);
    client.close();
  });

  it('maps a DomainError to its status with the code in trailers, and logs it with the request id', async () => {
    harness = await startGrpcTestServer((s) =>
      s.addService(SERVICE_NAMES.bind, bindV1.BindServiceService, bindHandlers()),
    );
    const client = createClient(bindV1.BindServiceClient, harness.address);
    const raw = await new Promise<ServiceError>((resolve) => {
      const md = new Metadata();
      md.set('x-request-id', 'req-bad');
      client.project({}, md, {}, (err) => resolve(err!));
    });
    expect(raw.code).toBe(status.INVALID_ARGUMENT);
    expect(raw.details).toBe('queries: required');
    expect(raw.metadata.get('ibllm-error-code')).toEqual(['INVALID_INPUT']);
    expect(raw.metadata.get('ibllm-error-field')).toEqual(['queries']);
    const e = await unaryError(callUnary(client.project.bind(client), {}));
    expect(e).toBeInstanceOf(DomainError);
    expect(e.code).toBe(ErrorCode.InvalidInput);
    expect(
      harness.log.lines.some((l) => l['requestId'] === 'req-bad' && l['msg'] === 'queries: required'),
    ).toBe(true);
    client.close();
  });

  it('turns an unexpected exception into INTERNAL without leaking it, and logs the stack', async () => {
    harness = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.bind,
        bindV1.BindServiceService,
        bindHandlers({
          project: () => {
            throw new TypeError('db password is hunter2');
          },
        }),
      ),
    );
    const client = createClient(bindV1.BindServiceClient, harness.address);
    const e = await unaryError(callUnary(client.project.bind(client), {}));
    expect(e.code).toBe(ErrorCode.Internal);
    expect(e.message).not.toContain('hunter2');
    const logged = harness.log.lines.find((l) => l['level'] === 'error');
    expect(JSON.stringify(logged)).toContain('hunter2');
    client.close();
  });

  it('aborts the handler signal when the deadline passes and reports DEADLINE_EXCEEDED', async () => {
    let seen: CallContext | undefined;
    harness = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.bind,
        bindV1.BindServiceService,
        bindHandlers({
          project: async (_req, ctx) => {
            seen = ctx;
            await once(ctx.signal, 'abort');
            throwIfAborted(ctx);
            return {};
          },
        }),
      ),
    );
    const client = createClient(bindV1.BindServiceClient, harness.address);
    const started = Date.now();
    const e = await unaryError(callUnary(client.project.bind(client), {}, { timeoutMs: 150 }));
    expect(e.code).toBe(ErrorCode.DeadlineExceeded);
    // The handler waits for its abort signal forever: only the 150 ms deadline can end the call.
    // The bound tells that apart with 13x room for a loaded machine.
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(Number.isFinite(seen!.deadline)).toBe(true);
    await expect.poll(() => seen!.signal.aborted).toBe(true);
    client.close();
  });

  it('streams messages in order and stops the handler when the client cancels', async () => {
    let aborted = false;
    harness = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.decoder,
        decoderV1.DecoderServiceService,
        decoderHandlers(async function* (_req, ctx) {
          ctx.signal.addEventListener('abort', () => {
            aborted = true;
          });
          for (let i = 0; ; i++) {
            throwIfAborted(ctx);
            yield { tokens: [{ id: 100 + i, index: i, text: `t${i}`, logprob: 0 }], finishReason: 0 };
            await new Promise((r) => setTimeout(r, 5));
          }
        }),
      ),
    );
    const client = createClient(decoderV1.DecoderServiceClient, harness.address);
    const ids: number[] = [];
    for await (const msg of callServerStream(client.generate.bind(client), {
      promptTokenIds: [1],
      resumeFromTokenIds: [],
      returnPrefillLogits: false,
      returnLayerOffsets: false,
    })) {
      ids.push(msg.tokens[0]!.id);
      if (ids.length === 5) break;
    }
    expect(ids).toEqual([100, 101, 102, 103, 104]);
    await expect.poll(() => aborted).toBe(true);
    client.close();
  });

  it('ends a stream with the domain status a handler throws midway', async () => {
    harness = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.decoder,
        decoderV1.DecoderServiceService,
        decoderHandlers(async function* () {
          yield { tokens: [{ id: 1, index: 0, text: 'a', logprob: 0 }], finishReason: 0 };
          await Promise.resolve();
          throw DomainError.overloaded('KV cache full', 250);
        }),
      ),
    );
    const client = createClient(decoderV1.DecoderServiceClient, harness.address);
    const got: number[] = [];
    let error: DomainError | undefined;
    try {
      for await (const m of callServerStream(client.generate.bind(client), {
        promptTokenIds: [1],
        resumeFromTokenIds: [],
        returnPrefillLogits: false,
        returnLayerOffsets: false,
      })) {
        got.push(m.tokens[0]!.id);
      }
    } catch (e) {
      error = e as DomainError;
    }
    expect(got).toEqual([1]);
    expect(error?.code).toBe(ErrorCode.Overloaded);
    expect(error?.message).toBe('KV cache full');
    client.close();
  });

  it('refuses a request larger than the configured message limit with RESOURCE_EXHAUSTED', async () => {
    harness = await startGrpcTestServer(
      (s) => s.addService(SERVICE_NAMES.bind, bindV1.BindServiceService, bindHandlers()),
      { maxReceiveMessageBytes: 1024 },
    );
    const client = createClient(bindV1.BindServiceClient, harness.address);
    const e = await unaryError(
      callUnary(client.project.bind(client), { queries: tensor(new Array<number>(2048).fill(1)) }),
    );
    expect(e.code).toBe(ErrorCode.Overloaded); // RESOURCE_EXHAUSTED from grpc-js itself
    client.close();
  });

  it('reports health per service and overall, NOT_SERVING until ready', async () => {
    harness = await startGrpcTestServer(
      (s) => s.addService(SERVICE_NAMES.bind, bindV1.BindServiceService, bindHandlers()),
      { ready: false },
    );
    expect(await checkHealth(harness.address)).toBe('NOT_SERVING');
    harness.server.setReady(true);
    expect(await checkHealth(harness.address)).toBe('SERVING');
    expect(await checkHealth(harness.address, SERVICE_NAMES.bind)).toBe('SERVING');
    await expect(checkHealth(harness.address, 'no.such.Service')).rejects.toMatchObject({
      code: status.NOT_FOUND,
    });
  });

  it('lets calls in flight finish during a graceful shutdown, and aborts them after the grace period', async () => {
    const abortable = (ms: number, ctx: CallContext): Promise<void> =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        });
      });
    // The shutdown must start while a call is inside its handler. Waiting a fixed 50 ms for that
    // raced on a loaded 2-core machine (the call had not arrived yet): the handler says when.
    let arrived!: () => void;
    let inHandler = new Promise<void>((r) => (arrived = r));
    harness = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.bind,
        bindV1.BindServiceService,
        bindHandlers({
          project: async (req, ctx) => {
            arrived();
            await abortable(req.model?.name === 'forever' ? 60_000 : 300, ctx);
            throwIfAborted(ctx);
            return { visualQueries: req.queries, model: req.model };
          },
        }),
      ),
    );
    const client = createClient(bindV1.BindServiceClient, harness.address);
    const slow = callUnary(client.project.bind(client), { model: { name: 'slow', version: '' } });
    await inHandler;
    await harness.server.shutdown(5_000);
    await expect(slow).resolves.toMatchObject({ model: { name: 'slow' } });
    client.close();
    await harness.close();

    harness = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.bind,
        bindV1.BindServiceService,
        bindHandlers({
          project: async (req, ctx) => {
            arrived();
            await abortable(60_000, ctx);
            throwIfAborted(ctx);
            return { visualQueries: req.queries };
          },
        }),
      ),
    );
    const client2 = createClient(bindV1.BindServiceClient, harness.address);
    inHandler = new Promise<void>((r) => (arrived = r));
    const stuck = unaryError(callUnary(client2.project.bind(client2), {}));
    await inHandler;
    const started = Date.now();
    await harness.server.shutdown(200);
    // The grace period is 200 ms; the bound only tells "aborted after the grace period" from
    // "waited for the 60 s handler", with 10x room for a loaded machine's scheduling.
    expect(Date.now() - started).toBeLessThan(2_000);
    const e = await stuck;
    expect(e.code).toBe(ErrorCode.DependencyUnavailable);
    client2.close();
  });
});

describe('propagation through a hop', () => {
  it('carries the request id and deadline downstream, and cancels the downstream call with its parent', async () => {
    let downstream: CallContext | undefined;
    let reachedAt = 0;
    const inner = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.bind,
        bindV1.BindServiceService,
        bindHandlers({
          project: async (_req, ctx) => {
            reachedAt = Date.now();
            downstream = ctx;
            await once(ctx.signal, 'abort');
            throwIfAborted(ctx);
            return {};
          },
        }),
      ),
    );
    const innerClient = createClient(bindV1.BindServiceClient, inner.address);
    harness = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.decoder,
        decoderV1.DecoderServiceService,
        decoderHandlers(async function* (_req, ctx) {
          yield { tokens: [], finishReason: 0 };
          await callUnary(innerClient.project.bind(innerClient), {}, { parent: ctx });
        }),
      ),
    );
    const outer = createClient(decoderV1.DecoderServiceClient, harness.address);
    const md = new Metadata();
    md.set('x-request-id', 'hop-1');
    const sentAt = Date.now();
    const deadline = sentAt + 20_000;
    const call = outer.generate(
      { promptTokenIds: [], resumeFromTokenIds: [], returnPrefillLogits: false, returnLayerOffsets: false },
      md,
      { deadline },
    );
    call.on('error', () => undefined);
    await once(call, 'data');
    await expect.poll(() => downstream).toBeDefined();
    expect(downstream!.requestId).toBe('hop-1');
    // grpc-timeout travels as a relative duration (rounded up to whole ms), and each hop rebuilds
    // the absolute deadline from its own arrival time: it can only be late by the time the call
    // spent in transit (sent → downstream handler) plus 1 ms of rounding per hop.
    expect(downstream!.deadline).toBeLessThanOrEqual(deadline + (reachedAt - sentAt) + 2);
    expect(downstream!.deadline).toBeGreaterThan(Date.now());
    call.cancel();
    await expect.poll(() => downstream!.signal.aborted).toBe(true);
    expect((downstream!.signal.reason as DomainError).code).toBe(ErrorCode.Cancelled);
    outer.close();
    innerClient.close();
    await inner.close(100);
  });
});

describe('retry interceptor', () => {
  const FAST = { maxAttempts: 4, initialBackoffMs: 1, maxBackoffMs: 2 };

  /** A bind server whose Project fails with `failure(n)` on call n (1-based) until it returns undefined. */
  async function flakyBind(failure: (n: number) => DomainError | undefined): Promise<{
    calls: { requestId: string; at: number }[];
  }> {
    const calls: { requestId: string; at: number }[] = [];
    harness = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.bind,
        bindV1.BindServiceService,
        bindHandlers({
          project: async (request, ctx) => {
            calls.push({ requestId: ctx.requestId, at: Date.now() });
            await Promise.resolve();
            const error = failure(calls.length);
            if (error !== undefined) throw error;
            return { visualQueries: request.queries, model: { name: 'bind', version: '1' } };
          },
        }),
      ),
    );
    return { calls };
  }

  it('resends an idempotent call that failed UNAVAILABLE after the server sent its headers', async () => {
    // grpc-kit servers send headers (the request id) before the handler runs; grpc-js's own
    // retryPolicy would treat the call as committed there and never retry it.
    const { calls } = await flakyBind((n) =>
      n < 3 ? new DomainError(ErrorCode.ModelNotReady, 'warming up') : undefined,
    );
    const client = createClient(bindV1.BindServiceClient, harness!.address, { retry: FAST });
    const md = new Metadata();
    md.set('x-request-id', 'req-retry');
    const headers = new Promise<Metadata>((resolve, reject) => {
      const call = client.project({ queries: tensor([1]) }, md, {}, (err) => err && reject(err));
      call.on('metadata', resolve);
    });
    expect((await headers).get('x-request-id')).toEqual(['req-retry']);
    expect(calls.map((c) => c.requestId)).toEqual(['req-retry', 'req-retry', 'req-retry']);
    client.close();
  });

  it('gives up on other codes at once, and on UNAVAILABLE after maxAttempts', async () => {
    let error: DomainError = DomainError.invalidInput('nope');
    const { calls } = await flakyBind(() => error);
    const client = createClient(bindV1.BindServiceClient, harness!.address, { retry: FAST });
    const project = client.project.bind(client);
    expect(await unaryError(callUnary(project, { queries: tensor([1]) }))).toMatchObject({
      code: ErrorCode.InvalidInput,
    });
    expect(calls).toHaveLength(1);
    error = DomainError.unavailable('downstream is down');
    expect(await unaryError(callUnary(project, { queries: tensor([1]) }))).toMatchObject({
      code: ErrorCode.DependencyUnavailable,
      message: 'downstream is down',
    });
    expect(calls).toHaveLength(1 + FAST.maxAttempts);
    client.close();
  });

  it('waits at least the server retry hint, and not at all when the hint outlasts the deadline', async () => {
    let hintMs = 40;
    const { calls } = await flakyBind((n) =>
      n === 1 || n === 3
        ? new DomainError(ErrorCode.ModelNotReady, 'warming up', { retryAfterMs: hintMs })
        : undefined,
    );
    const client = createClient(bindV1.BindServiceClient, harness!.address, { retry: FAST });
    const project = client.project.bind(client);
    await callUnary(project, { queries: tensor([1]) });
    expect(calls).toHaveLength(2);
    expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(hintMs);

    hintMs = 60_000;
    const started = Date.now();
    const error = await unaryError(callUnary(project, { queries: tensor([1]) }, { timeoutMs: 5_000 }));
    // The server's own answer, at once, not a DEADLINE_EXCEEDED after a pointless wait.
    expect(error.code).toBe(ErrorCode.ModelNotReady);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(calls).toHaveLength(3);
    client.close();
  });

  it('stops waiting and answers CANCELLED when the caller aborts during a backoff', async () => {
    const { calls } = await flakyBind(
      () => new DomainError(ErrorCode.ModelNotReady, 'warming up', { retryAfterMs: 60_000 }),
    );
    const client = createClient(bindV1.BindServiceClient, harness!.address, { retry: FAST });
    const controller = new AbortController();
    const pending = unaryError(
      callUnary(client.project.bind(client), { queries: tensor([1]) }, { signal: controller.signal }),
    );
    await expect.poll(() => calls.length).toBe(1);
    controller.abort();
    expect((await pending).code).toBe(ErrorCode.Cancelled);
    expect(calls).toHaveLength(1);
    client.close();
  });

  it('sends a method without a declared idempotency_level once', async () => {
    let deletes = 0;
    const fail = (): Promise<never> => Promise.reject(DomainError.notImplemented('not in this test'));
    harness = await startGrpcTestServer((s) =>
      s.addService(SERVICE_NAMES.retriever, retrieverV1.RetrieverServiceService, {
        search: fail,
        upsert: fail,
        getCollection: fail,
        // eslint-disable-next-line require-yield
        importIndex: async function* () {
          await fail();
        },
        delete: async () => {
          deletes++;
          await Promise.resolve();
          throw DomainError.unavailable('store restarting');
        },
      }),
    );
    const client = createClient(retrieverV1.RetrieverServiceClient, harness.address, { retry: FAST });
    const error = await unaryError(callUnary(client.delete.bind(client), { collection: 'c', ids: [1] }));
    expect(error.code).toBe(ErrorCode.DependencyUnavailable);
    expect(deletes).toBe(1);
    client.close();
  });
});

describe('reflection', () => {
  it('serves the descriptor set so tools can list the services', async () => {
    harness = await startGrpcTestServer(
      (s) => s.addService(SERVICE_NAMES.bind, bindV1.BindServiceService, bindHandlers()),
      { descriptorSet: loadDescriptorSet() },
    );
    const names = await listServicesByReflection(harness.address);
    expect(names).toContain('imagebind.bind.v1.BindService');
    // The descriptor set holds every contract; only the hosted services are advertised.
    expect(names).not.toContain('imagebind.gateway.v1.GatewayService');
    expect(names).not.toContain('imagebind.decoder.v1.DecoderService');
  });
});

describe('undecodable requests', () => {
  /** Sends raw bytes as the request of a unary method, bypassing the generated encoder. */
  async function rawUnary(address: string, path: string, bytes: Buffer): Promise<ServiceError | null> {
    const grpc = await import('@grpc/grpc-js');
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    try {
      return await new Promise<ServiceError | null>((resolve) => {
        client.makeUnaryRequest(
          path,
          (b: Buffer) => b,
          (b: Buffer) => b,
          bytes,
          (error) => resolve(error),
        );
      });
    } finally {
      client.close();
    }
  }

  it('answers INVALID_ARGUMENT (not INTERNAL) without calling the handler', async () => {
    let called = 0;
    harness = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.bind,
        bindV1.BindServiceService,
        bindHandlers({
          project: () => {
            called++;
            return Promise.resolve({ model: { name: 'bind', version: '1' } });
          },
        }),
      ),
    );
    // A field tag whose varint never ends: no protobuf decoder can read it.
    const error = await rawUnary(
      harness.address,
      '/imagebind.bind.v1.BindService/Project',
      Buffer.from([0xff, 0xff, 0xff]),
    );
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toMatch(
      /^the request bytes are not a valid protobuf message for \/imagebind\.bind\.v1\.BindService\/Project: /,
    );
    expect(error?.metadata.get('ibllm-error-code')).toEqual(['INVALID_INPUT']);
    expect(called).toBe(0);
    // Well-formed bytes still reach the handler.
    expect(
      await rawUnary(harness.address, '/imagebind.bind.v1.BindService/Project', Buffer.alloc(0)),
    ).toBeNull();
    expect(called).toBe(1);
  });

  it('answers INVALID_ARGUMENT on a server stream too', async () => {
    let called = 0;
    harness = await startGrpcTestServer((s) =>
      s.addService(
        SERVICE_NAMES.decoder,
        decoderV1.DecoderServiceService,
        decoderHandlers(async function* () {
          called++;
          await Promise.resolve();
          yield* [];
        }),
      ),
    );
    const grpc = await import('@grpc/grpc-js');
    const client = new grpc.Client(harness.address, grpc.credentials.createInsecure());
    const call = client.makeServerStreamRequest(
      '/imagebind.decoder.v1.DecoderService/Generate',
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from([0x0a, 0x05, 0x01]), // field 1, length 5, but only one byte follows
    );
    call.on('data', () => undefined);
    const error = await new Promise<ServiceError>((resolve) => call.on('error', resolve));
    client.close();
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toMatch(/DecoderService\/Generate: /);
    expect(called).toBe(0);
  });
});
