import { DomainError, ErrorCode } from '@imagebind-llm/errors';

export interface KvAdmissionOptions {
  /** KV-cache positions all running sequences may hold together. */
  readonly budgetPositions: number;
  /** Sequences that may run at once (the engine's batch size). */
  readonly maxSequences: number;
  /** Requests that may wait for room; beyond it a request is refused at once. */
  readonly maxWaiting: number;
  /** Retry hint for a refused request, in milliseconds. */
  readonly retryAfterMs?: () => number;
}

export interface KvAdmissionStatus {
  /** Sequences holding a reservation. */
  readonly active: number;
  /** Requests queued for room. */
  readonly waiting: number;
  readonly reservedPositions: number;
  readonly freePositions: number;
  readonly budgetPositions: number;
}

/** Room held by one admitted sequence; `release()` is idempotent. */
export interface KvReservation {
  readonly positions: number;
  readonly released: boolean;
  release(): void;
}

interface Waiter {
  readonly positions: number;
  readonly grant: (r: KvReservation) => void;
  readonly refuse: (error: unknown) => void;
  readonly detach: () => void;
}

function abortError(signal: AbortSignal): DomainError {
  const reason: unknown = signal.reason;
  return reason instanceof DomainError
    ? reason
    : new DomainError(ErrorCode.Cancelled, 'the request was cancelled while it waited for KV-cache room');
}

/**
 * Admission control of the decoder's KV memory (ARCHITECTURE §6, §8): a sequence runs only once
 * its worst-case KV positions fit the budget; others wait in a bounded FIFO, and when that is full
 * a request gets RESOURCE_EXHAUSTED at once instead of queueing without bound. The FIFO is strict,
 * so a long request at its head is not starved by short ones behind it. Pure bookkeeping: no
 * clocks, no I/O; the caller passes an AbortSignal that carries cancellation and the deadline.
 */
export class KvAdmission {
  private readonly queue: Waiter[] = [];
  private active = 0;
  private reserved = 0;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly options: KvAdmissionOptions) {
    if (!Number.isInteger(options.budgetPositions) || options.budgetPositions < 1) {
      throw new RangeError(`budgetPositions must be a positive integer, got ${options.budgetPositions}`);
    }
    if (!Number.isInteger(options.maxSequences) || options.maxSequences < 1) {
      throw new RangeError(`maxSequences must be a positive integer, got ${options.maxSequences}`);
    }
    if (!Number.isInteger(options.maxWaiting) || options.maxWaiting < 0) {
      throw new RangeError(`maxWaiting must be a non-negative integer, got ${options.maxWaiting}`);
    }
  }

  get budgetPositions(): number {
    return this.options.budgetPositions;
  }

  status(): KvAdmissionStatus {
    return {
      active: this.active,
      waiting: this.queue.length,
      reservedPositions: this.reserved,
      freePositions: this.options.budgetPositions - this.reserved,
      budgetPositions: this.options.budgetPositions,
    };
  }

  /** Calls `listener` after every change of the status; returns the unsubscribe function. */
  watch(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Reserves `positions` for one sequence: at once when it fits and nobody waits ahead of it,
   * else after queueing. Rejects with INVALID_INPUT when it can never fit, OVERLOADED when the
   * queue is full, or the signal's reason when it aborts while waiting.
   */
  async acquire(positions: number, signal?: AbortSignal): Promise<KvReservation> {
    if (!Number.isInteger(positions) || positions < 1) {
      throw new RangeError(`positions must be a positive integer, got ${positions}`);
    }
    if (positions > this.options.budgetPositions) {
      throw DomainError.invalidInput(
        `the sequence needs ${positions} KV-cache positions but this replica's whole budget is ` +
          `${this.options.budgetPositions}; lower max_new_tokens or shorten the prompt`,
        'stopping.max_new_tokens',
      );
    }
    if (signal?.aborted === true) throw abortError(signal);
    if (this.queue.length === 0 && this.fits(positions)) return this.grant(positions);
    if (this.queue.length >= this.options.maxWaiting) {
      const s = this.status();
      throw DomainError.overloaded(
        `the decoder is full (${s.active} sequences running, ${s.freePositions} of ${s.budgetPositions} ` +
          `KV positions free, ${s.waiting} requests waiting); retry later or on another replica`,
        this.options.retryAfterMs?.(),
      );
    }
    return new Promise<KvReservation>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.queue.indexOf(waiter);
        if (i < 0) return;
        this.queue.splice(i, 1);
        reject(abortError(signal!));
        // The head may have been the blocker of everyone behind it.
        this.pump();
        this.changed();
      };
      const waiter: Waiter = {
        positions,
        grant: resolve,
        refuse: reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      this.changed();
    });
  }

  /** Refuses every waiting request with `error` (shutdown). */
  refuseWaiting(error: unknown): void {
    for (const w of this.queue.splice(0)) {
      w.detach();
      w.refuse(error);
    }
    this.changed();
  }

  private fits(positions: number): boolean {
    return (
      this.active < this.options.maxSequences && this.reserved + positions <= this.options.budgetPositions
    );
  }

  private grant(positions: number): KvReservation {
    this.active += 1;
    this.reserved += positions;
    let released = false;
    const reservation: KvReservation = {
      positions,
      get released() {
        return released;
      },
      release: () => {
        if (released) return;
        released = true;
        this.active -= 1;
        this.reserved -= positions;
        this.pump();
        this.changed();
      },
    };
    this.changed();
    return reservation;
  }

  /** Admits waiters from the head while they fit (FIFO: the first that does not fit stops it). */
  private pump(): void {
    while (this.queue.length > 0 && this.fits(this.queue[0]!.positions)) {
      const w = this.queue.shift()!;
      w.detach();
      w.grant(this.grant(w.positions));
    }
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}
