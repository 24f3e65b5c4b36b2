import { ErrorCode, isDomainError } from '@imagebind-llm/errors';
import type { BatchEvent } from '@imagebind-llm/inference';
import type { InferenceMetrics } from '@imagebind-llm/observability';

/** The `outcome` label of `ibllm_inference_requests_total`. */
export type RequestOutcome = 'ok' | 'overloaded' | 'expired' | 'cancelled' | 'failed' | 'invalid';

export function requestOutcome(error: unknown): RequestOutcome {
  if (error === undefined) return 'ok';
  if (!isDomainError(error)) return 'failed';
  switch (error.code) {
    case ErrorCode.Overloaded:
    case ErrorCode.RateLimited:
      return 'overloaded';
    case ErrorCode.DeadlineExceeded:
      return 'expired';
    case ErrorCode.Cancelled:
      return 'cancelled';
    case ErrorCode.InvalidInput:
    case ErrorCode.UnsupportedMedia:
    case ErrorCode.PayloadTooLarge:
    case ErrorCode.ContextOverflow:
    case ErrorCode.NotFound:
    case ErrorCode.AlreadyExists:
    case ErrorCode.FailedPrecondition:
    case ErrorCode.Unauthenticated:
    case ErrorCode.PermissionDenied:
      return 'invalid';
    case ErrorCode.DependencyUnavailable:
    case ErrorCode.ModelNotReady:
    case ErrorCode.NotImplemented:
    case ErrorCode.Internal:
      return 'failed';
  }
}

/** Queue depth of one batched model, by its metrics label. */
export interface QueueDepthSource {
  (): readonly { readonly label: string; readonly queuedUnits: number }[];
}

/**
 * Feeds InferenceMetrics from batcher events: batch size (units), queue delay and execute time per
 * batch, request outcomes, and the queue-depth gauge KEDA scales on (ARCHITECTURE §7). The gauge
 * is refreshed whenever the queue changes: after a request enters or leaves, and just after a batch
 * finishes (once the batcher has dispatched the next one).
 */
export class BatchingMetrics {
  private readonly sources: QueueDepthSource[] = [];

  constructor(private readonly metrics: InferenceMetrics) {}

  /** Adds a model whose queue depth the gauge shows; its labels appear at 0 right away. */
  track(source: QueueDepthSource): void {
    this.sources.push(source);
    this.refreshQueueDepth();
  }

  onBatch(label: string, event: BatchEvent): void {
    this.metrics.batchSize.observe({ model: label }, event.units);
    this.metrics.queueDelaySeconds.observe({ model: label }, event.queueDelayMs / 1000);
    this.metrics.batchExecuteSeconds.observe({ model: label }, event.executeMs / 1000);
    // onBatch runs before the batcher dispatches what waited behind this batch.
    setImmediate(() => this.refreshQueueDepth());
  }

  request(label: string, error?: unknown): void {
    this.metrics.requests.inc({ model: label, outcome: requestOutcome(error) });
  }

  refreshQueueDepth(): void {
    for (const source of this.sources) {
      for (const { label, queuedUnits } of source())
        this.metrics.queueDepth.set({ model: label }, queuedUnits);
    }
  }
}
