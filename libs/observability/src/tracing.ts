import {
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Span as OtelSpan,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

/**
 * Distributed tracing (issue #17 item 10). Services open spans through this small interface and
 * carry the W3C trace context (`traceparent`, `tracestate`) explicitly: in gRPC metadata between
 * services (grpc-kit reads it on every server call and writes it on every client call) and in
 * HTTP headers at the REST edge. `startOtlpTracing` installs the OpenTelemetry SDK, exporting over
 * OTLP/HTTP, when OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise spans record nothing, cost a
 * function call, and pass the caller's context through unchanged, so a trace survives a hop that
 * does not export.
 */

/** The W3C trace-context headers of a span: what a downstream call sends to become its child. */
export type TraceCarrier = Readonly<Record<string, string>>;

/** Header / metadata keys of the W3C trace context. */
export const TRACE_HEADERS = ['traceparent', 'tracestate'] as const;

export type SpanAttributes = Readonly<Record<string, string | number | boolean>>;

export interface Span {
  setAttribute(key: string, value: string | number | boolean): void;
  recordError(error: unknown): void;
  end(): void;
  /** Headers for calls made on behalf of this span (its children). */
  readonly carrier: TraceCarrier;
}

export interface SpanOptions {
  readonly attributes?: SpanAttributes;
  /** The caller's trace context (incoming headers); none starts a new trace. */
  readonly parent?: TraceCarrier;
  /** `server` for a span that answers a call, `internal` (default) for a step inside one. */
  readonly kind?: 'server' | 'internal';
}

export interface Tracer {
  startSpan(name: string, options?: SpanOptions): Span;
}

/** The trace-context entries of a header or metadata map (first value of each). */
export function traceCarrierOf(get: (key: string) => string | undefined): TraceCarrier {
  const carrier: Record<string, string> = {};
  for (const key of TRACE_HEADERS) {
    const value = get(key);
    if (typeof value === 'string' && value !== '' && value.length <= 512) carrier[key] = value;
  }
  return carrier;
}

const EMPTY: TraceCarrier = Object.freeze({});

/** Tracing off: no recording, the parent's context passed through to children. */
const NOOP_TRACER: Tracer = {
  startSpan: (_name, options) => ({
    setAttribute: () => undefined,
    recordError: () => undefined,
    end: () => undefined,
    carrier: options?.parent ?? EMPTY,
  }),
};

let current: Tracer = NOOP_TRACER;
/** The SDK started by startOtlpTracing, for flushTracing. */
let exporting: { readonly flush: () => Promise<void> } | undefined;

export function setTracer(tracer: Tracer | undefined): void {
  current = tracer ?? NOOP_TRACER;
}

export function getTracer(): Tracer {
  return current;
}

/** Runs `fn` inside a span that ends when it settles and records a thrown error. */
export async function withSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const span = current.startSpan(name, options);
  try {
    return await fn(span);
  } catch (error) {
    span.recordError(error);
    throw error;
  } finally {
    span.end();
  }
}

const propagator = new W3CTraceContextPropagator();

class OtelSpanAdapter implements Span {
  readonly carrier: TraceCarrier;

  constructor(private readonly span: OtelSpan) {
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
    this.carrier = carrier;
  }

  setAttribute(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }

  recordError(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    this.span.recordException(err);
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') this.span.setAttribute('error.code', code);
    this.span.setStatus({ code: SpanStatusCode.ERROR, message: err.message.slice(0, 500) });
  }

  end(): void {
    this.span.end();
  }
}

export interface OtlpTracingOptions {
  /** `service.name` of every span (the deployable: gateway, encoder-vision, decoder, ...). */
  readonly serviceName: string;
  readonly serviceVersion?: string;
  /**
   * OTEL_EXPORTER_OTLP_ENDPOINT: the collector's base URL; spans go to `<endpoint>/v1/traces`
   * (OTLP/HTTP, JSON), as the OpenTelemetry specification has it for this variable.
   */
  readonly endpoint: string;
  /** How long spans wait before a batch is sent (ms); default 1000. */
  readonly flushDelayMs?: number;
}

/** The OTLP/HTTP traces URL for a base endpoint (a trailing slash or /v1/traces tolerated). */
export function otlpTracesUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, '');
  return base.endsWith('/v1/traces') ? base : `${base}/v1/traces`;
}

/**
 * Installs the OpenTelemetry SDK as this process's tracer: spans are batched and exported over
 * OTLP/HTTP. Returns `shutdown`, which flushes what is buffered (call it on SIGTERM).
 */
export function startOtlpTracing(options: OtlpTracingOptions): { shutdown: () => Promise<void> } {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName,
      ...(options.serviceVersion === undefined ? {} : { [ATTR_SERVICE_VERSION]: options.serviceVersion }),
    }),
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter({ url: otlpTracesUrl(options.endpoint) }), {
        scheduledDelayMillis: options.flushDelayMs ?? 1000,
      }),
    ],
  });
  const tracer = provider.getTracer('imagebind-llm');
  exporting = { flush: () => provider.forceFlush() };
  setTracer({
    startSpan: (name, spanOptions) => {
      const parent =
        spanOptions?.parent === undefined
          ? ROOT_CONTEXT
          : propagator.extract(ROOT_CONTEXT, spanOptions.parent, defaultTextMapGetter);
      const span = tracer.startSpan(
        name,
        {
          kind: spanOptions?.kind === 'server' ? SpanKind.SERVER : SpanKind.INTERNAL,
          ...(spanOptions?.attributes === undefined ? {} : { attributes: spanOptions.attributes }),
        },
        parent,
      );
      return new OtelSpanAdapter(span);
    },
  });
  return {
    shutdown: async () => {
      setTracer(undefined);
      exporting = undefined;
      await provider.shutdown();
    },
  };
}

/**
 * Sends the spans still buffered (a no-op when tracing is off); the shutdown path awaits it before
 * the process exits, within `timeoutMs` so a collector that is down cannot hold the exit.
 */
export async function flushTracing(timeoutMs = 2000): Promise<void> {
  const sdk = exporting;
  if (sdk === undefined) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    sdk.flush().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    }),
  ]);
  if (timer !== undefined) clearTimeout(timer);
}
