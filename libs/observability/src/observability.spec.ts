import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { json } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import {
  acceptRequestId,
  createLogger,
  getTracer,
  PreprocessMetrics,
  registerQueueJobsGauge,
  requestLogger,
  ServiceMetrics,
  setTracer,
  type PreprocessPoolSnapshot,
  startOtlpTracing,
  withSpan,
  type Span,
} from './index';

function capture(): { stream: Writable; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n'))
        if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { stream, lines };
}

describe('logger', () => {
  it('writes one JSON object per line with level name, ISO time, service and request id', () => {
    const { stream, lines } = capture();
    const logger = createLogger({ service: 'svc', level: 'info', destination: stream });
    requestLogger(logger, 'abc-123', { method: '/x/Y' }).info({ n: 1 }, 'hello');
    logger.debug('dropped below level');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'info',
      service: 'svc',
      requestId: 'abc-123',
      method: '/x/Y',
      n: 1,
      msg: 'hello',
    });
    expect(new Date(lines[0]!['time'] as string).toISOString()).toBe(lines[0]!['time']);
  });

  it('serialises errors with type, message and stack', () => {
    const { stream, lines } = capture();
    createLogger({ service: 'svc', level: 'info', destination: stream }).error(
      { err: new RangeError('boom') },
      'failed',
    );
    expect(lines[0]!['err']).toMatchObject({ type: 'RangeError', message: 'boom' });
    expect((lines[0]!['err'] as { stack: string }).stack).toContain('RangeError: boom');
  });
});

describe('acceptRequestId', () => {
  it('keeps a sane incoming id and replaces junk with a UUID', () => {
    expect(acceptRequestId('req-42.a:b_c')).toBe('req-42.a:b_c');
    for (const junk of ['', 'has space', 'x'.repeat(129), '{"inject":1}', 7, undefined]) {
      expect(acceptRequestId(junk)).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});

describe('ServiceMetrics', () => {
  it('exposes the go-grpc-prometheus names and process metrics with a service label', async () => {
    const m = new ServiceMetrics('gateway');
    m.grpcServerHandled.inc({ grpc_type: 'unary', grpc_service: 's', grpc_method: 'M', grpc_code: 'OK' });
    m.grpcServerHandlingSeconds.observe({ grpc_type: 'unary', grpc_service: 's', grpc_method: 'M' }, 0.003);
    m.ready.set(1);
    const { contentType, body } = await m.scrape();
    expect(contentType).toContain('text/plain');
    expect(body).toContain(
      'grpc_server_handled_total{grpc_type="unary",grpc_service="s",grpc_method="M",grpc_code="OK",service="gateway"} 1',
    );
    expect(body).toContain('grpc_server_handling_seconds_bucket');
    expect(body).toContain('ibllm_ready{service="gateway"} 1');
    expect(body).toContain('process_cpu_user_seconds_total');
  });

  it('keeps registries of two instances apart', async () => {
    const a = new ServiceMetrics('a');
    const b = new ServiceMetrics('b');
    a.ready.set(1);
    expect((await b.scrape()).body).toContain('ibllm_ready{service="b"} 0');
  });
});

describe('PreprocessMetrics', () => {
  it('reads the pool at each scrape: 0 before it starts, then its gauges and growing counters', async () => {
    const m = new ServiceMetrics('encoder-vision');
    let pool: PreprocessPoolSnapshot | undefined;
    new PreprocessMetrics(m, () => pool);
    const value = async (name: string): Promise<number> => {
      const line = (await m.scrape()).body.split('\n').find((l) => l.startsWith(`${name}{`));
      return Number(line?.split(' ').at(-1));
    };
    expect(await value('ibllm_preprocess_workers')).toBe(0);
    expect(await value('ibllm_preprocess_answers_total')).toBe(0);
    pool = { queued: 3, running: 2, workers: 2, answers: 10, answerMessages: 4 };
    expect(await value('ibllm_preprocess_queued')).toBe(3);
    expect(await value('ibllm_preprocess_running')).toBe(2);
    expect(await value('ibllm_preprocess_workers')).toBe(2);
    expect(await value('ibllm_preprocess_answers_total')).toBe(10);
    expect(await value('ibllm_preprocess_answer_messages_total')).toBe(4);
    pool = { queued: 0, running: 0, workers: 2, answers: 25, answerMessages: 9 };
    expect(await value('ibllm_preprocess_queued')).toBe(0);
    expect(await value('ibllm_preprocess_answers_total')).toBe(25);
    expect(await value('ibllm_preprocess_answer_messages_total')).toBe(9);
  });
});

describe('tracing hooks', () => {
  it('passes spans to the installed tracer and records errors', async () => {
    const events: string[] = [];
    const span = (name: string): Span => ({
      setAttribute: (k, v) => events.push(`${name}.${k}=${String(v)}`),
      recordError: (e) => events.push(`${name}.error=${(e as Error).message}`),
      end: () => events.push(`${name}.end`),
      carrier: {},
    });
    setTracer({ startSpan: (name) => span(name) });
    try {
      await withSpan('ok', {}, async (s) => {
        s.setAttribute('k', 1);
        return Promise.resolve();
      });
      await expect(withSpan('bad', {}, () => Promise.reject(new Error('x')))).rejects.toThrow('x');
    } finally {
      setTracer(undefined);
    }
    expect(events).toEqual(['ok.k=1', 'ok.end', 'bad.error=x', 'bad.end']);
  });
});

describe('registerQueueJobsGauge', () => {
  it('reads the counts at scrape time and keeps the last values when a read fails', async () => {
    const m = new ServiceMetrics('batch-worker');
    const reads = [
      { waiting: 7, prioritized: 2, active: 3, delayed: 0 },
      new Error('redis down'),
      { waiting: 1, prioritized: 0, active: 5, delayed: 0 },
    ];
    registerQueueJobsGauge(m, 'items', () => {
      const next = reads.shift();
      if (next === undefined) return Promise.reject(new Error('no more reads'));
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    });
    const first = (await m.scrape()).body;
    expect(first).toContain('ibllm_batch_queue_jobs{queue="items",state="waiting",service="batch-worker"} 7');
    expect(first).toContain(
      'ibllm_batch_queue_jobs{queue="items",state="prioritized",service="batch-worker"} 2',
    );
    const second = (await m.scrape()).body;
    expect(second).toContain('ibllm_batch_queue_jobs{queue="items",state="active",service="batch-worker"} 3');
    // The failure is counted during that scrape; the registry serialises the counter concurrently,
    // so it shows from the next scrape on.
    const third = (await m.scrape()).body;
    expect(third).toContain('ibllm_batch_queue_read_failures_total{queue="items",service="batch-worker"} 1');
    expect(third).toContain('ibllm_batch_queue_jobs{queue="items",state="waiting",service="batch-worker"} 1');
  });
});

describe('OpenTelemetry tracing over OTLP/HTTP', () => {
  it('is off by default: spans record nothing and pass the caller’s trace context through', () => {
    const parent = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
    const span = getTracer().startSpan('hop', { parent });
    expect(span.carrier).toEqual(parent);
    span.end();
  });

  it('exports parent and child spans of one trace to the collector, with the service name', async () => {
    const bodies: unknown[] = [];
    const server = createServer((req, res) => {
      void json(req).then((body) => {
        bodies.push({ path: req.url, type: req.headers['content-type'], body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const tracing = startOtlpTracing({ serviceName: 'unit-test', endpoint: `http://127.0.0.1:${port}/` });
    try {
      const root = getTracer().startSpan('POST /v1/chat/completions', { kind: 'server' });
      expect(root.carrier['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      await withSpan('encode', { parent: root.carrier, attributes: { inputs: 2 } }, async () =>
        Promise.resolve(),
      );
      await expect(
        withSpan('decode', { parent: root.carrier }, () => Promise.reject(new Error('no room'))),
      ).rejects.toThrow('no room');
      root.end();
    } finally {
      await tracing.shutdown();
      server.close();
    }
    expect(bodies).toHaveLength(1);
    const sent = bodies[0] as { path: string; type: string; body: OtlpTraces };
    expect(sent.path).toBe('/v1/traces');
    expect(sent.type).toMatch(/^application\/json/);
    const resource = sent.body.resourceSpans[0]!;
    expect(resource.resource.attributes).toContainEqual({
      key: 'service.name',
      value: { stringValue: 'unit-test' },
    });
    const spans = resource.scopeSpans.flatMap((s) => s.spans);
    const byName = new Map(spans.map((s) => [s.name, s]));
    const root = byName.get('POST /v1/chat/completions')!;
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([root.traceId]));
    expect(byName.get('encode')!.parentSpanId).toBe(root.spanId);
    expect(byName.get('decode')!.parentSpanId).toBe(root.spanId);
    expect(byName.get('decode')!.status).toMatchObject({ code: 2, message: 'no room' });
    expect(byName.get('encode')!.attributes).toContainEqual({ key: 'inputs', value: { intValue: 2 } });
    // Off again after shutdown.
    expect(getTracer().startSpan('after').carrier).toEqual({});
  });
});

interface OtlpTraces {
  resourceSpans: {
    resource: { attributes: unknown[] };
    scopeSpans: {
      spans: {
        name: string;
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        status: unknown;
        attributes: unknown[];
      }[];
    }[];
  }[];
}
