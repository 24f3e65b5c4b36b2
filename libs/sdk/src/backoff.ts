import type { RetryOptions } from './client-options';
import { ImageBindError } from './image-bind-error';

/**
 * Delay before retry number `retry` (1 = the wait after the first failure): exponential, capped,
 * with "equal jitter" (half fixed, half random) so clients that failed together do not retry
 * together, yet never retry immediately. A server hint (`ibllm-retry-after-ms`) is a floor.
 */
export function backoffDelay(
  policy: RetryOptions,
  retry: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** (retry - 1));
  const jittered = ceiling / 2 + random() * (ceiling / 2);
  return Math.max(jittered, retryAfterMs ?? 0);
}

/** Waits `ms`, or rejects with CANCELLED as soon as `signal` aborts. */
export async function sleep(ms: number, signal: AbortSignal | undefined, requestId: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(cancelledError(signal, requestId));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(cancelledError(signal!, requestId));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The error a call aborted through its AbortSignal ends with; `cause` is the abort reason. */
export function cancelledError(signal: AbortSignal, requestId: string): ImageBindError {
  return ImageBindError.aborted(signal, requestId);
}
