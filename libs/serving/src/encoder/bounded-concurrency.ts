import { DomainError, ErrorCode } from '@imagebind-llm/errors';

/**
 * Runs at most `limit` tasks at once with at most `maxWaiting` more waiting their turn; beyond that
 * a task is refused with OVERLOADED at once. Preprocessing (decode, resample, FPS) sits in front of
 * the batcher, so it needs its own bound or a burst would hold every request's decoded tensors.
 */
export class BoundedConcurrency {
  private running = 0;
  private readonly waiting: { start: () => void }[] = [];

  constructor(
    private readonly name: string,
    private readonly limit: number,
    private readonly maxWaiting: number,
    /** Retry hint sent with OVERLOADED. */
    private readonly retryAfterMs: number,
  ) {
    if (!Number.isSafeInteger(limit) || limit < 1)
      throw new RangeError(`${name}: limit must be ≥ 1, got ${limit}`);
    if (!Number.isSafeInteger(maxWaiting) || maxWaiting < 0) {
      throw new RangeError(`${name}: maxWaiting must be ≥ 0, got ${maxWaiting}`);
    }
  }

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `task` when a slot is free; a waiting task whose signal aborts leaves the line (CANCELLED). */
  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  private async acquire(signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted === true) throw cancelled(this.name, signal);
    if (this.running < this.limit) {
      this.running++;
      return;
    }
    if (this.waiting.length >= this.maxWaiting) {
      throw DomainError.overloaded(
        `${this.name}: ${this.running} inputs are being preprocessed and ${this.waiting.length} wait; ` +
          `retry after ${this.retryAfterMs} ms`,
        this.retryAfterMs,
      );
    }
    await new Promise<void>((resolve, reject) => {
      const entry = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = (): void => {
        const index = this.waiting.indexOf(entry);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(cancelled(this.name, signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private release(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next task, so `running` stays the same.
    if (next !== undefined) next.start();
    else this.running--;
  }
}

function cancelled(name: string, signal: AbortSignal | undefined): DomainError {
  const reason: unknown = signal?.reason;
  if (reason instanceof DomainError) return reason;
  return new DomainError(
    ErrorCode.Cancelled,
    `${name}: the caller cancelled the request`,
    {},
    { cause: reason },
  );
}
