/**
 * Tracing hooks. Services open spans through this small interface; a deployment that wants
 * OpenTelemetry installs an adapter with `setTracer` at boot. The default records nothing, so the
 * hooks cost a function call when tracing is off.
 */
export interface Span {
  setAttribute(key: string, value: string | number | boolean): void;
  recordError(error: unknown): void;
  end(): void;
}

export interface Tracer {
  startSpan(name: string, attributes?: Readonly<Record<string, string | number | boolean>>): Span;
}

const NOOP_SPAN: Span = {
  setAttribute: () => undefined,
  recordError: () => undefined,
  end: () => undefined,
};

const NOOP_TRACER: Tracer = { startSpan: () => NOOP_SPAN };

let current: Tracer = NOOP_TRACER;

export function setTracer(tracer: Tracer | undefined): void {
  current = tracer ?? NOOP_TRACER;
}

export function getTracer(): Tracer {
  return current;
}

/** Runs `fn` inside a span that ends when it settles and records a thrown error. */
export async function withSpan<T>(
  name: string,
  attributes: Readonly<Record<string, string | number | boolean>>,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const span = current.startSpan(name, attributes);
  try {
    return await fn(span);
  } catch (error) {
    span.recordError(error);
    throw error;
  } finally {
    span.end();
  }
}
