import { EventEmitter } from 'node:events';
import type { ArgumentsHost, ExecutionContext } from '@nestjs/common';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { createLogger, MemoryLog } from '@imagebind-llm/observability';
import type { Request, Response } from 'express';
import { describe, expect, it } from 'vitest';
import type { AccessControl, Credentials } from '../access';
import { ApiKeyGuard } from './api-key.guard';
import { OpenAiErrorFilter } from './openai-error.filter';
import { restContextOf } from './request-context';
import { streamResponse } from './stream-response';

/** Just enough of Express' response for the guard, the filter and streamResponse. */
class FakeResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  writableFinished = false;
  ended = false;
  readonly headers: Record<string, string> = {};
  readonly chunks: string[] = [];
  body: unknown;

  setHeader(name: string, value: string): this {
    this.headers[name.toLowerCase()] = value;
    return this;
  }
  status(code: number): this {
    this.statusCode = code;
    return this;
  }
  json(body: unknown): this {
    this.body = body;
    this.headersSent = true;
    this.ended = true;
    return this;
  }
  write(chunk: string): boolean {
    this.headersSent = true;
    this.chunks.push(chunk);
    return true;
  }
  end(): this {
    this.ended = true;
    this.writableFinished = true;
    return this;
  }
  /** The client goes away before the answer is complete. */
  disconnect(): void {
    this.emit('close');
  }
}

function fakeRequest(headers: Record<string, string> = {}): Request {
  return { method: 'POST', path: '/v1/embeddings', headers } as unknown as Request;
}

function host(req: Request, res: FakeResponse): ExecutionContext & ArgumentsHost {
  const http = { getRequest: () => req, getResponse: () => res as unknown as Response };
  return { switchToHttp: () => http } as unknown as ExecutionContext & ArgumentsHost;
}

/** Admits the key "good" as tenant alice; anything else is UNAUTHENTICATED. */
const access: AccessControl = {
  required: true,
  rateLimitStore: 'memory',
  async admit(credentials: Credentials) {
    await Promise.resolve();
    if (credentials.authorization === 'Bearer good' || credentials.apiKey === 'good') return 'alice';
    throw new DomainError(ErrorCode.Unauthenticated, 'missing or unknown API key');
  },
};

function setup(): { guard: ApiKeyGuard; filter: OpenAiErrorFilter; log: MemoryLog } {
  const log = new MemoryLog();
  const logger = createLogger({ service: 'test', level: 'info', destination: log });
  return { guard: new ApiKeyGuard(access, logger), filter: new OpenAiErrorFilter(logger), log };
}

describe('ApiKeyGuard', () => {
  it('opens the call (request id echoed) and admits the tenant of the key', async () => {
    const { guard } = setup();
    const req = fakeRequest({ 'x-request-id': 'req-1', 'x-api-key': 'good' });
    const res = new FakeResponse();
    await expect(guard.canActivate(host(req, res))).resolves.toBe(true);
    expect(res.headers['x-request-id']).toBe('req-1');
    const ctx = restContextOf(req)!;
    expect({ tenant: ctx.tenant, requestId: ctx.requestId }).toEqual({ tenant: 'alice', requestId: 'req-1' });
    expect(ctx.signal.aborted).toBe(false);
    res.disconnect();
    expect(ctx.signal.aborted).toBe(true);
  });

  it('refuses a bad key, and the filter answers 401 in OpenAI shape with the request id header', async () => {
    const { guard, filter } = setup();
    const req = fakeRequest({ authorization: 'Bearer bad' });
    const res = new FakeResponse();
    const refusal = await guard.canActivate(host(req, res)).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(DomainError);
    filter.catch(refusal, host(req, res));
    expect(res.statusCode).toBe(401);
    expect(res.headers['x-request-id']).toMatch(/.+/);
    expect(res.body).toEqual({
      error: {
        message: 'missing or unknown API key',
        type: 'authentication_error',
        param: null,
        code: 'UNAUTHENTICATED',
      },
    });
  });
});

describe('OpenAiErrorFilter', () => {
  it("tells a service's error about inputs[i] by the content part it came from, logged at info", async () => {
    const { guard, filter, log } = setup();
    const req = fakeRequest({ 'x-api-key': 'good', 'x-request-id': 'req-2' });
    const res = new FakeResponse();
    await guard.canActivate(host(req, res));
    restContextOf(req)!.withInputs({ inputPaths: ['input[0]', 'imagebind_inputs[0]'] });
    const error = new DomainError(ErrorCode.UnsupportedMedia, 'inputs[1]: the audio does not decode', {
      field: 'inputs[1]',
    });
    filter.catch(error, host(req, res));
    expect(res.statusCode).toBe(415);
    expect(res.body).toMatchObject({
      error: { message: 'imagebind_inputs[0]: the audio does not decode', param: 'imagebind_inputs[0]' },
    });
    expect(log.lines).toEqual([
      expect.objectContaining({ level: 'info', event: 'rest.failed', requestId: 'req-2', status: 415 }),
    ]);
  });

  it('answers a fault of our own with 500 naming the request id, logged at error with its stack', async () => {
    const { guard, filter, log } = setup();
    const req = fakeRequest({ 'x-api-key': 'good', 'x-request-id': 'req-3' });
    const res = new FakeResponse();
    await guard.canActivate(host(req, res));
    filter.catch(new TypeError('x is undefined'), host(req, res));
    expect(res.statusCode).toBe(500);
    expect((res.body as { error: { message: string } }).error.message).toContain('(request id req-3)');
    expect(log.lines).toEqual([expect.objectContaining({ level: 'error', requestId: 'req-3' })]);
    expect(JSON.stringify(log.lines[0])).toContain('x is undefined');
  });

  it("tells the router's and the parser's errors as DomainErrors", () => {
    const { filter } = setup();
    const res = new FakeResponse();
    filter.catch(Object.assign(new Error('Unexpected token b'), { status: 400 }), host(fakeRequest(), res));
    expect(res.statusCode).toBe(400);
    expect((res.body as { error: { message: string } }).error.message).toBe(
      'the request body is not valid JSON: Unexpected token b',
    );
  });

  it('only ends a response whose stream has started', async () => {
    const { filter } = setup();
    const res = new FakeResponse();
    async function* failing(): AsyncGenerator<string> {
      yield await Promise.resolve('line 1\n');
      throw new DomainError(ErrorCode.DependencyUnavailable, 'the store went away');
    }
    const error = await streamResponse(
      res as unknown as Response,
      new AbortController().signal,
      failing(),
      (r) => r.status(200),
    ).catch((e: unknown) => e);
    filter.catch(error, host(fakeRequest(), res));
    expect({ status: res.statusCode, chunks: res.chunks, ended: res.ended, body: res.body }).toEqual({
      status: 200,
      chunks: ['line 1\n'],
      ended: true,
      body: undefined,
    });
  });
});

describe('streamResponse', () => {
  it('leaves the status unsent when the stream fails before its first chunk', async () => {
    const res = new FakeResponse();
    let started = false;
    // eslint-disable-next-line require-yield -- fails before its first chunk
    async function* notFound(): AsyncGenerator<string> {
      await Promise.resolve();
      throw new DomainError(ErrorCode.NotFound, 'no job j1');
    }
    await expect(
      streamResponse(res as unknown as Response, new AbortController().signal, notFound(), () => {
        started = true;
      }),
    ).rejects.toThrow('no job j1');
    expect({ started, headersSent: res.headersSent }).toEqual({ started: false, headersSent: false });
  });

  it('stops reading, and closes the stream, once the client has gone away', async () => {
    const res = new FakeResponse();
    const client = new AbortController();
    let closed = false;
    async function* endless(): AsyncGenerator<string> {
      try {
        for (let i = 0; ; i++) {
          if (i === 2) client.abort();
          yield await Promise.resolve(`event ${i}\n`);
        }
      } finally {
        closed = true;
      }
    }
    await streamResponse(res as unknown as Response, client.signal, endless(), (r) => r.status(200));
    expect(res.chunks).toEqual(['event 0\n', 'event 1\n']);
    expect(closed).toBe(true);
  });
});
