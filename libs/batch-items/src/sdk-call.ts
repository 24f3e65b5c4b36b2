import type { CallOptions } from '@imagebind-llm/client';
import type { ApiCall } from './item-processor';

/** An item's call as SDK call options (deadline, cancellation, W3C trace context). */
export function sdkCall(call: ApiCall): CallOptions {
  return {
    signal: call.signal,
    timeoutMs: call.timeoutMs,
    ...(call.trace === undefined ? {} : { traceContext: { ...call.trace } }),
  };
}
